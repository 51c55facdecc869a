// GPU label: device discovery through the CUDA runtime. Skips with a message where no device
// answers (CI and the development machines have the toolkit but no GPU), fails under
// STRATA_REQUIRE_GPU=1 or when the runtime itself fails (tests/gpu_test_support.h); the cpu test
// GpuProbe.RequiredGpuFailsWithoutOne shows that it can.
#include <gtest/gtest.h>

#include "kernels/backend.h"
#include "tests/gpu_test_support.h"

namespace strata {
namespace {

TEST(CudaProbe, DeviceCountAndBackendRequest) {
  STRATA_NEED_GPU("the CUDA probe");
  const int n = CudaDeviceCount();
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
