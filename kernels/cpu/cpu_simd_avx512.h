// AVX-512 vector operations for the kernel templates (cpu_gemm_tiles.h). Included only by
// translation units compiled with -mavx512f -mavx512bw -mavx512vl -mfma -mf16c.
#pragma once

// GCC 12 reports the _mm512_undefined_* inside its own intrinsic headers as (maybe-)uninitialized
// (GCC bug 105593, fixed in 13); the warning points into the header, so it is silenced there.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <cstdint>

#include "runtime/base/dtype.h"

namespace strata {

struct Avx512 {
  using V = __m512;
  static constexpr int kLanes = 16;
  // Register tiles (32 vector registers): 4 activation rows x 6 weight rows of accumulators for
  // m >= 4 (24 accumulators + 4 activation vectors + 1 weight vector), 1-3 rows x 8 below.
  static constexpr int kRows = 4, kCols = 6, kSmallCols = 8;

  static V Zero() { return _mm512_setzero_ps(); }
  static V Load(const float* p) { return _mm512_loadu_ps(p); }
  // kLanes weights of type T from element j of a row, widened to float32 (exact).
  template <DType T>
  static V LoadWidened(const void* row, int64_t j) {
    if constexpr (T == DType::kF32) {
      return _mm512_loadu_ps(static_cast<const float*>(row) + j);
    } else {
      const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(row) + j));
      if constexpr (T == DType::kF16) {
        return _mm512_cvtph_ps(h);
      } else {  // BF16 is the top half of a float32
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
      }
    }
  }
  static V Add(V a, V b) { return _mm512_add_ps(a, b); }
  static V Fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static float Sum(V v) { return _mm512_reduce_add_ps(v); }
};

}  // namespace strata
