// The registry's side of the CUDA module (cuda_module.h): found where STRATA_CUDA_MODULE points,
// else next to the executable, in ../lib/strata beside it (installed images) or in the build
// tree; loaded once, on first use, and refused when built from other sources.
#include <dlfcn.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "kernels/cuda/cuda_factory.h"
#include "kernels/cuda/cuda_module.h"

namespace strata {
namespace {

struct CudaModule {
  decltype(&StrataCudaDeviceCount) device_count = nullptr;
  decltype(&StrataCreateCudaBackend) create = nullptr;
  std::string error;  // why it could not be loaded
};

std::string ExecutableDir() {
  char path[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);
  if (n <= 0) return ".";
  std::string p(path, static_cast<size_t>(n));
  return p.substr(0, p.rfind('/'));
}

const CudaModule& Module() {
  static CudaModule m;
  static std::once_flag once;
  std::call_once(once, [] {
    std::vector<std::string> candidates;
    const char* forced = std::getenv("STRATA_CUDA_MODULE");
    if (forced != nullptr && *forced != '\0') candidates.push_back(forced);  // only this one
    const std::string dir = ExecutableDir();
    if (candidates.empty()) {
      candidates.push_back(dir + "/" STRATA_CUDA_MODULE_NAME);
      candidates.push_back(dir + "/../lib/strata/" STRATA_CUDA_MODULE_NAME);
      candidates.push_back(STRATA_CUDA_MODULE_BUILD_PATH);
    }
    std::vector<std::string> errors;
    for (const std::string& path : candidates) {
      // A forced name may be bare (dlopen's own search); the default places must exist.
      if (forced == nullptr && access(path.c_str(), F_OK) != 0) continue;
      void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (handle == nullptr) {
        errors.push_back(dlerror());
        continue;
      }
      auto abi = reinterpret_cast<decltype(&StrataCudaModuleAbi)>(dlsym(handle, "StrataCudaModuleAbi"));
      if (abi == nullptr || abi() != kStrataCudaModuleAbi) {
        errors.push_back(absl::StrCat(path, ": a CUDA module of another Strata build (interface version ",
                                      abi ? abi() : 0, ", this binary needs ", kStrataCudaModuleAbi, ")"));
        continue;
      }
      m.device_count = reinterpret_cast<decltype(m.device_count)>(dlsym(handle, "StrataCudaDeviceCount"));
      m.create = reinterpret_cast<decltype(m.create)>(dlsym(handle, "StrataCreateCudaBackend"));
      if (m.device_count != nullptr && m.create != nullptr) return;
      errors.push_back(absl::StrCat(path, ": not a Strata CUDA module (entry points missing)"));
      m.device_count = nullptr;
      m.create = nullptr;
    }
    m.error = errors.empty() ? absl::StrCat(STRATA_CUDA_MODULE_NAME " not found (looked in ",
                                            absl::StrJoin(candidates, ", "), ")")
                             : absl::StrJoin(errors, "; ");
  });
  return m;
}

}  // namespace

int CudaDeviceCount() {
  absl::StatusOr<int> n = CudaDevices();
  return n.ok() ? *n : 0;
}

absl::StatusOr<int> CudaDevices() {
  const CudaModule& m = Module();
  if (m.device_count == nullptr) return absl::FailedPreconditionError(absl::StrCat("CUDA module: ", m.error));
  std::string error;
  const int n = m.device_count(&error);
  if (n < 0) return absl::FailedPreconditionError(error);
  return n;
}

absl::StatusOr<std::unique_ptr<Backend>> CreateCudaBackend(const BackendOptions& options) {
  const CudaModule& m = Module();
  if (m.create == nullptr) return absl::FailedPreconditionError(absl::StrCat("--device cuda: ", m.error));
  std::string error;
  Backend* b = m.create(&options, &error);
  if (b == nullptr) return absl::FailedPreconditionError(error);
  return std::unique_ptr<Backend>(b);
}

}  // namespace strata
