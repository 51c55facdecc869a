// The CPU backend's vectorized pieces, each with an AVX-512 path and a portable one: the
// matrix-vector product over weights stored as F32, BF16 or F16 rows (the nn.Linear layout: W is
// n x k, y = x W^T), widening of half-precision data, a dot product and the erf GELU.
//
// Why not only OpenBLAS: Debian's OpenBLAS 0.3.21 is built without its BF16 routines and has no
// F16 ones, and its SGEMV read at 60-75% of the machine's streaming rate where the AVX-512 loop,
// one row at a time with a non-temporal prefetch, reads at 93-96% (docs/benchmarks.md). GEMMs
// with several activation rows stay OpenBLAS SGEMMs, over float32 tiles widened from
// half-precision weights.
#pragma once

#include "runtime/base/dtype.h"

namespace strata {

// The instruction sets the CPU kernels can use; kPortable works everywhere (the tests run both).
enum class CpuIsa { kPortable, kAvx512 };

// The best set this CPU supports, unless STRATA_CPU_ISA=portable asks for the portable one.
CpuIsa DetectCpuIsa();

// y[0..n) = W x (+ y when `accumulate`) for one activation row x[0..k), on `threads` threads.
void MatVec(CpuIsa isa, DType w_dtype, const void* w, int n, int k, const float* x, float* y, bool accumulate,
            int threads);

// sum x[j] y[j] over j < n, in float32 (attention scores).
float Dot(CpuIsa isa, const float* x, const float* y, int n);

// y[i] = GELU(x[i]) with the exact (erf) form; the AVX-512 path evaluates erf 16 lanes at a time
// with glibc's vector math library (libmvec), the portable path calls erff.
void GeluErf(CpuIsa isa, const float* x, float* y, size_t n);

// n elements of type `t` widened to float32 (weight tiles, KV cache rows).
void Widen(CpuIsa isa, DType t, const void* src, float* dst, size_t n);

}  // namespace strata
