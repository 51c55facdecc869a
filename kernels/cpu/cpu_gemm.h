// The CPU backend's matrix product y = x W^T (+ y) for every activation row count: one decode
// row, a batch of decode rows, or a prefill chunk. W is [n, k] in the nn.Linear layout, stored
// as F32, BF16 or F16 and widened to float32 in registers as it is read (exact: no rounding of
// weights or activations), accumulation in float32.
//
// The work is split by output columns over `threads` threads of the one OpenMP pool, each thread
// reading a contiguous run of weight rows exactly once per call (while m <= gemm::kMBlock), so a
// decode step streams the weights once whatever the batch. The instruction set is the caller's
// choice (DetectCpuIsa): AVX-512 and AVX2 register tiles (cpu_gemm_tiles.h), or OpenBLAS on
// float32 rows as the portable path, run single-threaded inside our own threads so that no second
// thread pool competes for the cores.
#pragma once

#include <cstdint>

#include "kernels/cpu/cpu_isa.h"
#include "runtime/base/dtype.h"

namespace strata {

void Gemm(CpuIsa isa, DType w_dtype, const float* x, int m, const void* w, int n, int k, float* y, bool accumulate,
          int threads);

namespace gemm {
// Output columns [n0, n1) on the calling thread, per instruction set (y has row stride ldy).
void ColumnsAvx512(DType t, const float* x, int m, const void* w, int n0, int n1, int k, float* y, int64_t ldy,
                   bool accumulate);
void ColumnsAvx2(DType t, const float* x, int m, const void* w, int n0, int n1, int k, float* y, int64_t ldy,
                 bool accumulate);
void ColumnsPortable(DType t, const float* x, int m, const void* w, int n0, int n1, int k, float* y, int64_t ldy,
                     bool accumulate);
}  // namespace gemm

}  // namespace strata
