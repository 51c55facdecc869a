// The one file that knows which backends exist in this build.
#include "absl/strings/str_cat.h"
#include "kernels/backend.h"
#include "kernels/cpu/cpu_backend.h"

namespace strata {

absl::StatusOr<std::unique_ptr<Backend>> CreateBackend(const BackendOptions& options) {
  if (options.device == "cpu") return std::unique_ptr<Backend>(new CpuBackend(options.threads));
  if (options.device == "cuda") {
    const int n = CudaDeviceCount();
    if (n <= 0)
      return absl::FailedPreconditionError(
          "--device cuda: no CUDA device answers on this machine (or CUDA was not compiled in)");
    return absl::UnimplementedError(absl::StrCat(
        "--device cuda: ", n, " device(s) found, but the CUDA backend's kernels are not part of "
        "this build yet; use --device cpu"));
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown device '", options.device, "' (cpu or cuda)"));
}

}  // namespace strata
