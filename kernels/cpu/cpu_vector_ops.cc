#include "kernels/cpu/cpu_vector_ops.h"

// GCC 12 reports the _mm512_undefined_* inside its own intrinsic headers as maybe-uninitialized
// (GCC bug 105593, fixed in 13); the warning points into the header, so it is silenced there.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace strata {
namespace {

#define STRATA_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,fma,f16c")))
#define STRATA_AVX2 __attribute__((target("avx2,fma,f16c")))

// ---- AVX-512 ----

// 16 elements of type T from element j, widened to float32; `mask` selects a tail.
template <DType T>
STRATA_AVX512 inline __m512 Load16(const void* row, size_t j, __mmask16 mask) {
  if constexpr (T == DType::kF32) {
    return _mm512_maskz_loadu_ps(mask, static_cast<const float*>(row) + j);
  } else {
    const __m256i h = _mm256_maskz_loadu_epi16(mask, static_cast<const uint16_t*>(row) + j);
    if constexpr (T == DType::kF16) {
      return _mm512_cvtph_ps(h);
    } else {  // BF16 is the top half of a float32
      return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
  }
}

STRATA_AVX512 inline __mmask16 TailMask16(size_t left) {
  return static_cast<__mmask16>(left >= 16 ? 0xFFFF : (1u << left) - 1);
}

// glibc's erff over 16 and 8 lanes (libmvec, x86-64 vector function ABI, glibc >= 2.35).
extern "C" __m512 _ZGVeN16v_erff(__m512 x);
extern "C" __m256 _ZGVdN8v_erff(__m256 x);
extern "C" __m512 _ZGVeN16v_expf(__m512 x);
extern "C" __m256 _ZGVdN8v_expf(__m256 x);

// Scores past the end of a row are set to -inf so that their exp is 0 and the lanes can be
// summed with the rest.
STRATA_AVX512 void SoftmaxAvx512(float* x, int n) {
  __m512 mx = _mm512_set1_ps(-INFINITY);
  for (int j = 0; j < n; j += 16) {
    const __mmask16 mask = TailMask16(static_cast<size_t>(n - j));
    mx = _mm512_max_ps(mx, _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), mask, x + j));
  }
  const __m512 m = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
  __m512 sum = _mm512_setzero_ps();
  for (int j = 0; j < n; j += 16) {
    const __mmask16 mask = TailMask16(static_cast<size_t>(n - j));
    const __m512 e = _ZGVeN16v_expf(_mm512_sub_ps(_mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), mask, x + j), m));
    sum = _mm512_add_ps(sum, e);
    _mm512_mask_storeu_ps(x + j, mask, e);
  }
  const __m512 inv = _mm512_set1_ps(1.f / _mm512_reduce_add_ps(sum));
  for (int j = 0; j < n; j += 16) {
    const __mmask16 mask = TailMask16(static_cast<size_t>(n - j));
    _mm512_mask_storeu_ps(x + j, mask, _mm512_mul_ps(_mm512_maskz_loadu_ps(mask, x + j), inv));
  }
}

STRATA_AVX512 void GeluErfAvx512(const float* x, float* y, size_t n) {
  const __m512 half = _mm512_set1_ps(0.5f), one = _mm512_set1_ps(1.f), rsqrt2 = _mm512_set1_ps(0.70710678118654752f);
  for (size_t i = 0; i < n; i += 16) {
    const __mmask16 mask = TailMask16(n - i);
    const __m512 v = _mm512_maskz_loadu_ps(mask, x + i);
    const __m512 e = _ZGVeN16v_erff(_mm512_mul_ps(v, rsqrt2));
    _mm512_mask_storeu_ps(y + i, mask, _mm512_mul_ps(_mm512_mul_ps(half, v), _mm512_add_ps(one, e)));
  }
}

STRATA_AVX512 float DotAvx512(const float* x, const float* y, int n) {
  __m512 acc0 = _mm512_setzero_ps(), acc1 = acc0;
  int j = 0;
  for (; j + 32 <= n; j += 32) {
    acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + j), _mm512_loadu_ps(y + j), acc0);
    acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(x + j + 16), _mm512_loadu_ps(y + j + 16), acc1);
  }
  for (; j < n; j += 16) {
    const __mmask16 mask = TailMask16(static_cast<size_t>(n - j));
    acc0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, x + j), _mm512_maskz_loadu_ps(mask, y + j), acc0);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

template <DType T>
STRATA_AVX512 void WidenAvx512(const void* src, float* dst, size_t n) {
  for (size_t i = 0; i < n; i += 16) {
    const __mmask16 mask = TailMask16(n - i);
    _mm512_mask_storeu_ps(dst + i, mask, Load16<T>(src, i, mask));
  }
}

// ---- AVX2 (no masked loads for 16-bit data: tails go element by element) ----

STRATA_AVX2 inline float Sum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

STRATA_AVX2 void GeluErfAvx2(const float* x, float* y, size_t n) {
  const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.f), rsqrt2 = _mm256_set1_ps(0.70710678118654752f);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    const __m256 e = _ZGVdN8v_erff(_mm256_mul_ps(v, rsqrt2));
    _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_mul_ps(half, v), _mm256_add_ps(one, e)));
  }
  for (; i < n; ++i) y[i] = 0.5f * x[i] * (1.f + std::erf(x[i] * 0.70710678118654752f));
}

STRATA_AVX2 float DotAvx2(const float* x, const float* y, int n) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0;
  int j = 0;
  for (; j + 16 <= n; j += 16) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + j), _mm256_loadu_ps(y + j), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + j + 8), _mm256_loadu_ps(y + j + 8), acc1);
  }
  for (; j + 8 <= n; j += 8) acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + j), _mm256_loadu_ps(y + j), acc0);
  float sum = Sum8(_mm256_add_ps(acc0, acc1));
  for (; j < n; ++j) sum += x[j] * y[j];
  return sum;
}

STRATA_AVX2 void SoftmaxAvx2(float* x, int n) {
  float mx = -INFINITY;
  int j = 0;
  __m256 vmx = _mm256_set1_ps(-INFINITY);
  for (; j + 8 <= n; j += 8) vmx = _mm256_max_ps(vmx, _mm256_loadu_ps(x + j));
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, vmx);
  for (float v : lanes) mx = std::max(mx, v);
  for (; j < n; ++j) mx = std::max(mx, x[j]);
  const __m256 m = _mm256_set1_ps(mx);
  __m256 vsum = _mm256_setzero_ps();
  for (j = 0; j + 8 <= n; j += 8) {
    const __m256 e = _ZGVdN8v_expf(_mm256_sub_ps(_mm256_loadu_ps(x + j), m));
    vsum = _mm256_add_ps(vsum, e);
    _mm256_storeu_ps(x + j, e);
  }
  float sum = Sum8(vsum);
  for (; j < n; ++j) {
    x[j] = std::exp(x[j] - mx);
    sum += x[j];
  }
  const __m256 inv = _mm256_set1_ps(1.f / sum);
  for (j = 0; j + 8 <= n; j += 8) _mm256_storeu_ps(x + j, _mm256_mul_ps(_mm256_loadu_ps(x + j), inv));
  for (; j < n; ++j) x[j] *= 1.f / sum;
}

template <DType T>
STRATA_AVX2 void WidenAvx2(const void* src, float* dst, size_t n) {
  const uint16_t* s = static_cast<const uint16_t*>(src);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i));
    const __m256 f = T == DType::kF16 ? _mm256_cvtph_ps(h)
                                      : _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    _mm256_storeu_ps(dst + i, f);
  }
  if (i < n) ToFloat(T, s + i, dst + i, n - i);
}

}  // namespace

void GeluErf(CpuIsa isa, const float* x, float* y, size_t n) {
  if (isa == CpuIsa::kAvx512) return GeluErfAvx512(x, y, n);
  if (isa == CpuIsa::kAvx2) return GeluErfAvx2(x, y, n);
  for (size_t i = 0; i < n; ++i) y[i] = 0.5f * x[i] * (1.f + std::erf(x[i] * 0.70710678118654752f));
}

float Dot(CpuIsa isa, const float* x, const float* y, int n) {
  if (isa == CpuIsa::kAvx512) return DotAvx512(x, y, n);
  if (isa == CpuIsa::kAvx2) return DotAvx2(x, y, n);
  float sum = 0.f;
  for (int j = 0; j < n; ++j) sum += x[j] * y[j];
  return sum;
}

void Softmax(CpuIsa isa, float* x, int n) {
  if (n <= 0) return;
  if (isa == CpuIsa::kAvx512) return SoftmaxAvx512(x, n);
  if (isa == CpuIsa::kAvx2) return SoftmaxAvx2(x, n);
  float mx = x[0];
  for (int j = 1; j < n; ++j) mx = std::max(mx, x[j]);
  double sum = 0;
  for (int j = 0; j < n; ++j) {
    x[j] = std::exp(x[j] - mx);
    sum += x[j];
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (int j = 0; j < n; ++j) x[j] *= inv;
}

void Widen(CpuIsa isa, DType t, const void* src, float* dst, size_t n) {
  if (isa == CpuIsa::kPortable || t == DType::kF32) return ToFloat(t, src, dst, n);
  if (isa == CpuIsa::kAvx512)
    return t == DType::kF16 ? WidenAvx512<DType::kF16>(src, dst, n) : WidenAvx512<DType::kBF16>(src, dst, n);
  return t == DType::kF16 ? WidenAvx2<DType::kF16>(src, dst, n) : WidenAvx2<DType::kBF16>(src, dst, n);
}

}  // namespace strata
