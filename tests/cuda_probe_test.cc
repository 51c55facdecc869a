// GPU label: device discovery through the CUDA runtime. Skips with a message where no device
// answers (CI and the development machines have the toolkit but no GPU).
#include <gtest/gtest.h>

#include "kernels/backend.h"

namespace strata {
namespace {

TEST(CudaProbe, DeviceCountAndBackendRequest) {
  const int n = CudaDeviceCount();
  if (n <= 0) GTEST_SKIP() << "no CUDA device answers on this machine";
  EXPECT_GT(n, 0);
  auto backend = CreateBackend({"cuda", 0, 0});
  // The CUDA kernels are not in this build yet: asking for them must fail loudly, never silently
  // fall back to the CPU.
  EXPECT_FALSE(backend.ok());
}

}  // namespace
}  // namespace strata
