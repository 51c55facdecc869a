// File: tests/gpu_test_support.h
// The one rule for whether a GPU test runs: with a CUDA device it runs; without one it skips
// with the reason, unless STRATA_REQUIRE_GPU=1 (a GPU machine's run), which turns the skip into a
// failure; a CUDA runtime that fails for any other reason (a driver too old for the toolkit)
// always fails, naming the error, so that no GPU test can pass by skipping on a broken machine.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "kernels/backend.h"

namespace strata::testing {

inline bool GpuRequired() {
  const char* v = std::getenv("STRATA_REQUIRE_GPU");
  return v != nullptr && std::strcmp(v, "1") == 0;
}

}  // namespace strata::testing

// In a test body or SetUp: returns (skipping or failing) unless a CUDA device answers.
#define STRATA_NEED_GPU(what)                                                                          \
  do {                                                                                                 \
    const absl::StatusOr<int> strata_gpus = ::strata::CudaDevices();                                   \
    if (!strata_gpus.ok()) {                                                                           \
      GTEST_FAIL() << (what) << ": the CUDA runtime fails: " << strata_gpus.status().message();        \
    }                                                                                                  \
    if (*strata_gpus <= 0) {                                                                           \
      if (::strata::testing::GpuRequired()) GTEST_FAIL() << (what) << ": STRATA_REQUIRE_GPU=1 but no " \
                                                                         "CUDA device answers";        \
      GTEST_SKIP() << "no CUDA device answers: " << (what) << " needs a GPU";                          \
    }                                                                                                  \
  } while (0)
