// The GPU tests' skip rule (tests/gpu_test_support.h) seen from outside, by running the probe
// test as a program: without a device it skips, and STRATA_REQUIRE_GPU=1 makes the same run fail
// with the reason, so a GPU machine's run can never pass by skipping.
#include <gtest/gtest.h>

#include <string>

#include "kernels/backend.h"
#include "tests/shell.h"

namespace strata {
namespace {

using ::strata::testing::RunShell;
using ::strata::testing::ShellResult;

TEST(GpuSkipRule, RequiredGpuTurnsTheSkipIntoAFailure) {
  const absl::StatusOr<int> gpus = CudaDevices();
  if (gpus.ok() && *gpus > 0) GTEST_SKIP() << "a CUDA device answers here: the probe runs for real";
  const std::string probe = std::string(STRATA_CUDA_PROBE_TEST) + " --gtest_filter=CudaProbe.* 2>&1";
  const ShellResult plain = RunShell(probe);
  const ShellResult required = RunShell("STRATA_REQUIRE_GPU=1 " + probe);
  if (gpus.ok()) {  // no device: the plain run skips (and passes), the required one fails
    EXPECT_EQ(plain.code, 0) << plain.out;
    EXPECT_NE(plain.out.find("SKIPPED"), std::string::npos) << plain.out;
    EXPECT_NE(required.code, 0) << required.out;
    EXPECT_NE(required.out.find("STRATA_REQUIRE_GPU=1 but no CUDA device answers"), std::string::npos)
        << required.out;
  } else {  // a broken runtime: both fail, naming it
    EXPECT_NE(plain.code, 0) << plain.out;
    EXPECT_NE(plain.out.find("the CUDA runtime fails"), std::string::npos) << plain.out;
  }
}

}  // namespace
}  // namespace strata
