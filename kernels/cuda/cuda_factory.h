// File: kernels/cuda/cuda_factory.h
// The CUDA backend's constructor as the registry sees it: defined by cuda_loader.cc (which loads
// the CUDA module) when CUDA is compiled, by no_cuda.cc (an error naming the build) otherwise.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "kernels/backend.h"

namespace strata {

absl::StatusOr<std::unique_ptr<Backend>> CreateCudaBackend(const BackendOptions& options);

}  // namespace strata
