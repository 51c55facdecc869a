// File: kernels/cpu/cpu_quant_gemm_tiles.h
// The packed-weight kernel on 256-bit integer lanes, included by cpu_quant_gemm_avx2.cc and
// cpu_quant_gemm_avx512.cc, each compiled for its own instruction set. Weights are interleaved in
// groups of 8 rows (packed_blocks.h): lane j of a 256-bit register holds 4 consecutive quants of
// row j, so one integer multiply-add against 4 activation bytes broadcast to every lane advances
// the 8 rows' dot products at once, and a group's 8 outputs leave in one store (no horizontal
// sums). `Dot` adds to each 32-bit lane the four products of unsigned weight bytes and signed
// activation bytes: vpdpbusd with VNNI, vpmaddubsw + vpmaddwd on AVX2 (its 16-bit pair sums stay
// below 32768: |w| <= 128 and |x| <= 127, or w <= 15).
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "runtime/base/packed_blocks.h"
#include "runtime/base/weight_format.h"

namespace strata::qgemm {

inline __m256i Broadcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

// A group's 8 half scales as floats.
inline __m256 Halves(const uint16_t* h) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h))); }

// Writes (or adds) the 8 outputs of a group for one activation row; `valid` of them are real rows.
inline void StoreGroup(__m256 v, float* y, int valid, bool accumulate) {
  if (valid == packed::kGroup) {
    if (accumulate) v = _mm256_add_ps(v, _mm256_loadu_ps(y));
    _mm256_storeu_ps(y, v);
    return;
  }
  alignas(32) float lanes[packed::kGroup];
  _mm256_store_ps(lanes, v);
  for (int j = 0; j < valid; ++j) y[j] = accumulate ? y[j] + lanes[j] : lanes[j];
}

// One group of 8 weight rows against R activation rows (R independent accumulators).
template <int R, bool kUnsignedDot, class Dot>
inline void GroupTile(uint32_t type, const packed::XBlock* x, int blocks, const void* group, float* y, int64_t ldy,
                      int valid, bool accumulate, Dot dot) {
  __m256 acc[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
  if (type == WeightFormat::kPackedI8 || type == WeightFormat::kPackedI8x16) {
    // Weights stored as w + 128. VNNI: vpdpbusd on them directly, less 128 x the activations'
    // sum; AVX2 (whose 16-bit pair sums would overflow on 255 x 127): w back, |w| as the
    // unsigned bytes and the activations taking w's sign. Elements 0..15 (steps 0-3) and 16..31
    // (steps 4-7) are summed apart, for I8x16's two scales.
    const bool pair = type == WeightFormat::kPackedI8x16;
    const size_t stride = packed::GroupBlockBytes(type);
    for (int b = 0; b < blocks; ++b) {
      const char* at = static_cast<const char*>(group) + b * stride;
      const uint8_t* q = pair ? reinterpret_cast<const packed::I8PairGroup*>(at)->q
                              : reinterpret_cast<const packed::I8Group*>(at)->q;
      const __m256 d_lo = Halves(pair ? reinterpret_cast<const packed::I8PairGroup*>(at)->d_lo
                                      : reinterpret_cast<const packed::I8Group*>(at)->d);
      const __m256 d_hi = pair ? Halves(reinterpret_cast<const packed::I8PairGroup*>(at)->d_hi) : d_lo;
      __m256i magnitude[8], sign[8];
#pragma GCC unroll 8
      for (int s = 0; s < 8; ++s) {
        const __m256i stored = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 32 * s));
        if constexpr (kUnsignedDot) {
          magnitude[s] = stored;
        } else {
          sign[s] = _mm256_xor_si256(stored, _mm256_set1_epi8(static_cast<char>(0x80)));  // w
          magnitude[s] = _mm256_sign_epi8(sign[s], sign[s]);
        }
      }
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        const packed::XBlock& xb = x[static_cast<size_t>(r) * blocks + b];
        __m256i lo = _mm256_setzero_si256(), hi = _mm256_setzero_si256();
#pragma GCC unroll 4
        for (int s = 0; s < 4; ++s) {
          if constexpr (kUnsignedDot) {
            lo = dot(lo, magnitude[s], Broadcast4(xb.q + 4 * s));
            hi = dot(hi, magnitude[s + 4], Broadcast4(xb.q + 16 + 4 * s));
          } else {
            lo = dot(lo, magnitude[s], _mm256_sign_epi8(Broadcast4(xb.q + 4 * s), sign[s]));
            hi = dot(hi, magnitude[s + 4], _mm256_sign_epi8(Broadcast4(xb.q + 16 + 4 * s), sign[s + 4]));
          }
        }
        if constexpr (kUnsignedDot) {
          lo = _mm256_sub_epi32(lo, _mm256_set1_epi32(128 * xb.sum[0]));
          hi = _mm256_sub_epi32(hi, _mm256_set1_epi32(128 * xb.sum[1]));
        }
        const __m256 xd = _mm256_set1_ps(xb.d);
        if (pair) {
          acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(lo), _mm256_mul_ps(d_lo, xd), acc[r]);
          acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(hi), _mm256_mul_ps(d_hi, xd), acc[r]);
        } else {
          acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(lo, hi)), _mm256_mul_ps(d_lo, xd), acc[r]);
        }
      }
    }
  } else {
    const auto* wg = static_cast<const packed::U4Group*>(group);
    const __m256i low = _mm256_set1_epi8(0x0F);
    for (int b = 0; b < blocks; ++b) {
      const packed::U4Group& w = wg[b];
      __m256i q[8];  // q[s]: elements 4s..4s+3 (s < 4) and 16 + 4(s-4).. (s >= 4) of each row
#pragma GCC unroll 4
      for (int s = 0; s < 4; ++s) {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.q + 32 * s));
        q[s] = _mm256_and_si256(v, low);
        q[s + 4] = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
      }
      const __m256 d = Halves(w.d), m = Halves(w.m);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        const packed::XBlock& xb = x[static_cast<size_t>(r) * blocks + b];
        __m256i s0 = _mm256_setzero_si256(), s1 = _mm256_setzero_si256();
#pragma GCC unroll 4
        for (int s = 0; s < 4; ++s) {
          s0 = dot(s0, q[s], Broadcast4(xb.q + 4 * s));
          s1 = dot(s1, q[s + 4], Broadcast4(xb.q + 16 + 4 * s));
        }
        const __m256 sum = _mm256_cvtepi32_ps(_mm256_add_epi32(s0, s1));
        acc[r] = _mm256_fmadd_ps(sum, _mm256_mul_ps(d, _mm256_set1_ps(xb.d)), acc[r]);
        acc[r] = _mm256_fmadd_ps(m, _mm256_set1_ps(xb.s), acc[r]);
      }
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) StoreGroup(acc[r], y + r * ldy, valid, accumulate);
}

// Weight rows [n0, n1) (n0 a multiple of 8) against activation rows [0, m).
// kUnsignedDot: `dot` takes any unsigned byte (vpdpbusd), not only |w| <= 128 (vpmaddubsw).
template <bool kUnsignedDot, class Dot>
inline void Rows(uint32_t type, const packed::XBlock* x, int m, const void* w, int n0, int n1, int k, float* y,
                 int64_t ldy, bool accumulate, Dot dot) {
  const int blocks = k / packed::kBlock;
  const size_t group_bytes = static_cast<size_t>(blocks) * packed::GroupBlockBytes(type);
  for (int n = n0; n < n1; n += packed::kGroup) {
    const void* group = static_cast<const char*>(w) + (n / packed::kGroup) * group_bytes;
    const int valid = std::min(packed::kGroup, n1 - n);
    int i = 0;
    for (; i + 4 <= m; i += 4)  // four activation rows share each unpacked weight block
      GroupTile<4, kUnsignedDot>(type, x + static_cast<size_t>(i) * blocks, blocks, group, y + i * ldy + n, ldy, valid, accumulate, dot);
    switch (m - i) {
      case 3: GroupTile<3, kUnsignedDot>(type, x + static_cast<size_t>(i) * blocks, blocks, group, y + i * ldy + n, ldy, valid, accumulate, dot); break;
      case 2: GroupTile<2, kUnsignedDot>(type, x + static_cast<size_t>(i) * blocks, blocks, group, y + i * ldy + n, ldy, valid, accumulate, dot); break;
      case 1: GroupTile<1, kUnsignedDot>(type, x + static_cast<size_t>(i) * blocks, blocks, group, y + i * ldy + n, ldy, valid, accumulate, dot); break;
      default: break;
    }
  }
}

}  // namespace strata::qgemm
