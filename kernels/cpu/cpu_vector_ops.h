// The CPU backend's small vectorized pieces, each with AVX-512, AVX2 and portable paths: a dot
// product (attention scores), a softmax (attention probabilities), widening of half-precision
// data (KV rows) and the erf GELU. The
// matrix product lives in cpu_gemm.h.
#pragma once

#include <cstddef>

#include "kernels/cpu/cpu_isa.h"
#include "runtime/base/dtype.h"

namespace strata {

// sum x[j] y[j] over j < n, in float32 (attention scores).
float Dot(CpuIsa isa, const float* x, const float* y, int n);

// y[i] = GELU(x[i]) with the exact (erf) form; the vector paths evaluate erf 16 or 8 lanes at a
// time with glibc's vector math library (libmvec), the portable path calls erff.
void GeluErf(CpuIsa isa, const float* x, float* y, size_t n);

// x[j] = exp(x[j] - max x) / sum, in place (attention probabilities); exp through libmvec on the
// vector paths.
void Softmax(CpuIsa isa, float* x, int n);

// n elements of type `t` widened to float32 (KV cache rows).
void Widen(CpuIsa isa, DType t, const void* src, float* dst, size_t n);

}  // namespace strata
