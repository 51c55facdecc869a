// Built instead of the CUDA sources when CUDA is switched off or nvcc is missing.
#include "kernels/backend.h"
#include "kernels/cuda/cuda_factory.h"

namespace strata {

int CudaDeviceCount() { return 0; }
absl::StatusOr<int> CudaDevices() { return 0; }

absl::StatusOr<std::unique_ptr<Backend>> CreateCudaBackend(const BackendOptions&) {
  return absl::FailedPreconditionError(
      "--device cuda: this build has no CUDA backend (configured with STRATA_WITH_CUDA=OFF or "
      "without nvcc); rebuild with the CUDA toolkit in /usr/local/cuda");
}

}  // namespace strata
