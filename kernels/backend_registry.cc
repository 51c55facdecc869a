// The one file that knows which backends exist in this build.
#include "absl/strings/str_cat.h"
#include "kernels/backend.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cuda/cuda_factory.h"

namespace strata {

absl::StatusOr<std::unique_ptr<Backend>> CreateBackend(const BackendOptions& options) {
  if (options.device == "cpu") return std::unique_ptr<Backend>(new CpuBackend(options.threads, options.ranks_on_host));
  if (options.device == "cuda") return CreateCudaBackend(options);
  return absl::InvalidArgumentError(absl::StrCat("unknown device '", options.device, "' (cpu or cuda)"));
}

}  // namespace strata
