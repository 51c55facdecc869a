// File: kernels/cuda/cuda_module.h
// The CUDA backend is built as a module of its own (libstrata_cuda.so) that the registry loads
// only when a job asks for --device cuda: linking cuBLAS into the executable cost every CPU run
// about 146 MiB of resident memory (cuBLASLt's code and the tables its static initializers fill)
// and part of its start-up time. These are the module's two entry points, looked up by name.
#pragma once

#include <string>

#include "kernels/backend.h"

// Bumped whenever Backend, BackendOptions or these signatures change: the loader refuses a
// module built from other sources (a stale libstrata_cuda.so would crash, not fail).
constexpr int kStrataCudaModuleAbi = 4;
extern "C" int StrataCudaModuleAbi();
// CUDA devices that answer: 0 for cudaErrorNoDevice, -1 with the runtime's error name and text in
// *error for any other failure.
extern "C" int StrataCudaDeviceCount(std::string* error);
// A new backend for options.device_index, or null with the reason in *error.
extern "C" strata::Backend* StrataCreateCudaBackend(const strata::BackendOptions* options, std::string* error);
