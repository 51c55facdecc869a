// File: kernels/cuda/cuda_check.h
// Every CUDA and cuBLAS call is checked. A failure inside a kernel sequence cannot be undone (the
// context is usually lost), so it ends the process with the call, the device and the rank; under
// mpirun that ends the job (the launcher's dead-rank handling).
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

namespace strata {

// Where errors are reported from: set once by the backend.
struct CudaErrorContext {
  int device = 0;
  int rank = 0;
};
CudaErrorContext& CudaContextForErrors();

[[noreturn]] void CudaFail(const char* call, const char* error, const char* file, int line);

}  // namespace strata

#define STRATA_CUDA(call)                                                                 \
  do {                                                                                    \
    const cudaError_t strata_e = (call);                                                  \
    if (strata_e != cudaSuccess) ::strata::CudaFail(#call, cudaGetErrorString(strata_e), __FILE__, __LINE__); \
  } while (0)

#define STRATA_CUBLAS(call)                                                               \
  do {                                                                                    \
    const cublasStatus_t strata_s = (call);                                               \
    if (strata_s != CUBLAS_STATUS_SUCCESS)                                                \
      ::strata::CudaFail(#call, cublasGetStatusString(strata_s), __FILE__, __LINE__);     \
  } while (0)

// After a kernel launch: configuration errors surface here, named by the kernel.
#define STRATA_LAUNCHED(kernel_name)                                                      \
  do {                                                                                    \
    const cudaError_t strata_e = cudaGetLastError();                                      \
    if (strata_e != cudaSuccess) ::strata::CudaFail("launch of " kernel_name, cudaGetErrorString(strata_e), __FILE__, __LINE__); \
  } while (0)
