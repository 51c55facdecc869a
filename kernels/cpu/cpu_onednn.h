// Large matrix products of the CPU backend through oneDNN's matmul (Debian's libdnnl 2.6): its
// brgemm kernels are JIT-compiled for the CPU at hand (AVX2, AVX-512, AMX) and run on the same
// OpenMP thread pool as ours. Measured on the Intel Xeon VM (AVX-512 + AMX), one thread,
// n = 3072, k = 768, weights in their checkpoint layout (no reorder, no copy):
//
//   rows m              1     16     64    512   (GFLOP/s)
//   Strata's tiles     14     96    109     88-108
//   oneDNN f32          9     80    128    143
//   oneDNN bf16 (AMX)  15    233    573    919
//   OpenBLAS 0.3.21    14     61     77     95   (SkylakeX kernels; BLIS 0.9 the same)
//
// So products of at least kMinRows rows go to oneDNN (prefill, large decode batches) and
// smaller ones stay on Strata's kernels (cpu_gemm.h), which read the weights at the memory's
// speed. F32 weights stay exact float32 arithmetic; BF16 weights multiply on AMX / AVX512-BF16
// with the activations rounded to BF16 (as llama.cpp and PyTorch do for BF16 models); F16 weights
// have no fast oneDNN 2.6 path on these CPUs and stay on Strata's kernels.
#pragma once

#include <map>
#include <memory>
#include <tuple>
#include <vector>

#include "runtime/base/dtype.h"

namespace strata {

class OneDnnMatmul {
 public:
  // Row counts handed to oneDNN: the product is cut into chunks of kChunkRows, then kMinRows;
  // one primitive is compiled per chunk size and weight shape (oneDNN 2.x runs fixed shapes
  // fastest).
  static constexpr int kMinRows = 64;
  static constexpr int kChunkRows = 256;

  OneDnnMatmul();
  ~OneDnnMatmul();

  // y[i, :] (+)= x[i, :] W^T for rows i < the returned count (a multiple of kMinRows, possibly 0:
  // the caller computes the rest). W is [n, k] of type t.
  int Run(DType t, const float* x, int m, const void* w, int n, int k, float* y, bool accumulate);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace strata
