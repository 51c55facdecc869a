// CUDA device discovery. Built whenever nvcc is present; safe on machines without a driver:
// cudaGetDeviceCount then fails and leaves its out-parameter untouched, so check the code.
#include <cuda_runtime.h>

#include "kernels/backend.h"

namespace strata {

int CudaDeviceCount() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky error for later callers
    return 0;
  }
  return n;
}

}  // namespace strata
