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
  BackendOptions o;
  o.device = "cuda";
  auto backend = CreateBackend(o);
  ASSERT_TRUE(backend.ok()) << backend.status();
  EXPECT_EQ((*backend)->name(), "cuda");
  o.device_index = n;  // one past the last device: a clear error, never a crash
  EXPECT_FALSE(CreateBackend(o).ok());
}

}  // namespace
}  // namespace strata
