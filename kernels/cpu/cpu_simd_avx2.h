// AVX2 vector operations for the kernel templates (cpu_gemm_tiles.h). Included only by
// translation units compiled with -mavx2 -mfma -mf16c -mno-avx512f, so that nothing in them
// needs more than AVX2 whatever -march the rest of the build uses.
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "runtime/base/dtype.h"

namespace strata {

struct Avx2 {
  using V = __m256;
  static constexpr int kLanes = 8;
  // Register tiles (16 vector registers): 3 x 4 accumulators for m >= 3 (12 + 3 activation
  // vectors + 1 weight vector), 1-2 rows x 6 below.
  static constexpr int kRows = 3, kCols = 4, kSmallCols = 6;

  static V Zero() { return _mm256_setzero_ps(); }
  static V Load(const float* p) { return _mm256_loadu_ps(p); }
  template <DType T>
  static V LoadWidened(const void* row, int64_t j) {
    if constexpr (T == DType::kF32) {
      return _mm256_loadu_ps(static_cast<const float*>(row) + j);
    } else {
      const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(row) + j));
      if constexpr (T == DType::kF16) {
        return _mm256_cvtph_ps(h);
      } else {
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
      }
    }
  }
  static V Add(V a, V b) { return _mm256_add_ps(a, b); }
  static V Fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static float Sum(V v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
};

}  // namespace strata
