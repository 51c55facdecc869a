// Built instead of cuda_probe.cu when CUDA is switched off or nvcc is missing.
#include "kernels/backend.h"

namespace strata {

int CudaDeviceCount() { return 0; }

}  // namespace strata
