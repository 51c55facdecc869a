// File: kernels/cpu/cpu_quant_gemm_tiles.h
// The packed-weight row kernel on 256-bit integer lanes, included by cpu_quant_gemm_avx2.cc and
// cpu_quant_gemm_avx512.cc, each compiled for its own instruction set. `Dot` gives the eight
// 32-bit sums of products of 32 unsigned bytes (weights) with 32 signed bytes (activations):
// vpmaddubsw + vpmaddwd on AVX2, vpdpbusd with VNNI. Four activation rows share each weight
// block as it is loaded and unpacked.
#pragma once

#include <immintrin.h>

#include <algorithm>

#include "runtime/base/packed_blocks.h"
#include "runtime/base/weight_format.h"

namespace strata::qgemm {

inline float HorizontalSum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

template <int R, class Dot>
inline void RowTile(uint32_t type, const packed::XBlock* x, int blocks, const void* w_row, float* y, int64_t ldy,
                    bool accumulate, Dot dot) {
  __m256 acc[R];
  float min_term[R];
  for (int r = 0; r < R; ++r) {
    acc[r] = _mm256_setzero_ps();
    min_term[r] = 0;
  }
  if (type == WeightFormat::kPackedI8) {
    const auto* wb = static_cast<const packed::I8Block*>(w_row);
    for (int b = 0; b < blocks; ++b) {
      const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb[b].q));
      const __m256i magnitude = _mm256_sign_epi8(q, q);  // |q| as unsigned bytes; x takes q's sign
      for (int r = 0; r < R; ++r) {
        const packed::XBlock& xb = x[static_cast<size_t>(r) * blocks + b];
        const __m256i xs = _mm256_sign_epi8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb.q)), q);
        acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(wb[b].d * xb.d), _mm256_cvtepi32_ps(dot(magnitude, xs)), acc[r]);
      }
    }
  } else {
    const auto* wb = static_cast<const packed::U4Block*>(w_row);
    const __m256i low = _mm256_set1_epi8(0x0F);
    for (int b = 0; b < blocks; ++b) {
      const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(wb[b].q));
      // Elements 0..15 (low nibbles) in the low lane, 16..31 (high nibbles) in the high one.
      const __m256i q = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(raw, 4), raw), low);
      for (int r = 0; r < R; ++r) {
        const packed::XBlock& xb = x[static_cast<size_t>(r) * blocks + b];
        const __m256i xq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb.q));
        acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(wb[b].d * xb.d), _mm256_cvtepi32_ps(dot(q, xq)), acc[r]);
        min_term[r] += wb[b].m * xb.d * static_cast<float>(xb.sum);
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    float& out = y[r * ldy];
    const float v = HorizontalSum(acc[r]) + min_term[r];
    out = accumulate ? out + v : v;
  }
}

template <class Dot>
inline void Rows(uint32_t type, const packed::XBlock* x, int m, const void* w, int n0, int n1, int k, float* y,
                 int64_t ldy, bool accumulate, Dot dot) {
  const int blocks = k / packed::kBlock;
  const size_t row_bytes = static_cast<size_t>(blocks) *
                           (type == WeightFormat::kPackedI8 ? sizeof(packed::I8Block) : sizeof(packed::U4Block));
  for (int n = n0; n < n1; ++n) {
    const void* row = static_cast<const char*>(w) + n * row_bytes;
    int i = 0;
    for (; i + 4 <= m; i += 4)
      RowTile<4>(type, x + static_cast<size_t>(i) * blocks, blocks, row, y + i * ldy + n, ldy, accumulate, dot);
    switch (m - i) {
      case 3: RowTile<3>(type, x + static_cast<size_t>(i) * blocks, blocks, row, y + i * ldy + n, ldy, accumulate, dot); break;
      case 2: RowTile<2>(type, x + static_cast<size_t>(i) * blocks, blocks, row, y + i * ldy + n, ldy, accumulate, dot); break;
      case 1: RowTile<1>(type, x + static_cast<size_t>(i) * blocks, blocks, row, y + i * ldy + n, ldy, accumulate, dot); break;
      default: break;
    }
  }
}

}  // namespace strata::qgemm
