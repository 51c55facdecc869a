// The packed-weight kernel on AVX-512 machines. With AVX512-VNNI, two adjacent groups of 8
// weight rows are multiplied at once in 512-bit registers (PairTile): each activation broadcast
// and each vpdpbusd then serve 16 rows, half the broadcasts per product of the 256-bit kernel
// (cpu_quant_gemm_tiles.h), which takes a last lone group. Without VNNI: AVX2's instructions.
#include "kernels/cpu/cpu_quant_gemm.h"
#include "kernels/cpu/cpu_quant_gemm_tiles.h"

namespace strata::qgemm {
namespace {

// 16 half scales, 8 from each group, as floats.
inline __m512 Halves16(const uint16_t* lo, const uint16_t* hi) {
  return _mm512_cvtph_ps(_mm256_set_m128i(_mm_loadu_si128(reinterpret_cast<const __m128i*>(hi)),
                                          _mm_loadu_si128(reinterpret_cast<const __m128i*>(lo))));
}

// 32 bytes of group 0 in the low half, the same bytes of group 1 in the high half.
inline __m512i Join(const uint8_t* g0, const uint8_t* g1) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(g0))),
                            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(g1)), 1);
}

inline __m512i Broadcast4x16(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

// Weight rows of groups `g0` and `g1` (16 rows, all real) against R activation rows.
template <int R>
void PairTile(uint32_t type, const packed::XBlock* x, int blocks, const char* g0, const char* g1, float* y,
              int64_t ldy, bool accumulate) {
  __m512 acc[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
  if (type == WeightFormat::kPackedI8 || type == WeightFormat::kPackedI8x16) {
    // Stored as w + 128: vpdpbusd on them, less 128 x the activations' half-block sums.
    const bool pair = type == WeightFormat::kPackedI8x16;
    const size_t stride = packed::GroupBlockBytes(type);
    for (int b = 0; b < blocks; ++b) {
      const char* at0 = g0 + b * stride;
      const char* at1 = g1 + b * stride;
      const auto* p0 = reinterpret_cast<const packed::I8PairGroup*>(at0);
      const auto* p1 = reinterpret_cast<const packed::I8PairGroup*>(at1);
      const auto* s0 = reinterpret_cast<const packed::I8Group*>(at0);
      const auto* s1 = reinterpret_cast<const packed::I8Group*>(at1);
      const uint8_t* q0 = pair ? p0->q : s0->q;
      const uint8_t* q1 = pair ? p1->q : s1->q;
      const __m512 d_lo = pair ? Halves16(p0->d_lo, p1->d_lo) : Halves16(s0->d, s1->d);
      const __m512 d_hi = pair ? Halves16(p0->d_hi, p1->d_hi) : d_lo;
      __m512i w[8];
#pragma GCC unroll 8
      for (int s = 0; s < 8; ++s) w[s] = Join(q0 + 32 * s, q1 + 32 * s);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        const packed::XBlock& xb = x[static_cast<size_t>(r) * blocks + b];
        __m512i lo = _mm512_setzero_si512(), hi = _mm512_setzero_si512();
#pragma GCC unroll 4
        for (int s = 0; s < 4; ++s) {
          lo = _mm512_dpbusd_epi32(lo, w[s], Broadcast4x16(xb.q + 4 * s));
          hi = _mm512_dpbusd_epi32(hi, w[s + 4], Broadcast4x16(xb.q + 16 + 4 * s));
        }
        lo = _mm512_sub_epi32(lo, _mm512_set1_epi32(128 * xb.sum[0]));
        hi = _mm512_sub_epi32(hi, _mm512_set1_epi32(128 * xb.sum[1]));
        const __m512 xd = _mm512_set1_ps(xb.d);
        if (pair) {
          acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(lo), _mm512_mul_ps(d_lo, xd), acc[r]);
          acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(hi), _mm512_mul_ps(d_hi, xd), acc[r]);
        } else {
          acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(lo, hi)), _mm512_mul_ps(d_lo, xd), acc[r]);
        }
      }
    }
  } else {
    const auto* w0 = reinterpret_cast<const packed::U4Group*>(g0);
    const auto* w1 = reinterpret_cast<const packed::U4Group*>(g1);
    const __m512i low = _mm512_set1_epi8(0x0F);
    for (int b = 0; b < blocks; ++b) {
      __m512i q[8];  // as GroupTile's, 16 rows wide
#pragma GCC unroll 4
      for (int s = 0; s < 4; ++s) {
        const __m512i v = Join(w0[b].q + 32 * s, w1[b].q + 32 * s);
        q[s] = _mm512_and_si512(v, low);
        q[s + 4] = _mm512_and_si512(_mm512_srli_epi16(v, 4), low);
      }
      const __m512 d = Halves16(w0[b].d, w1[b].d), m = Halves16(w0[b].m, w1[b].m);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        const packed::XBlock& xb = x[static_cast<size_t>(r) * blocks + b];
        __m512i s0 = _mm512_setzero_si512(), s1 = _mm512_setzero_si512();
#pragma GCC unroll 4
        for (int s = 0; s < 4; ++s) {
          s0 = _mm512_dpbusd_epi32(s0, q[s], Broadcast4x16(xb.q + 4 * s));
          s1 = _mm512_dpbusd_epi32(s1, q[s + 4], Broadcast4x16(xb.q + 16 + 4 * s));
        }
        const __m512 sum = _mm512_cvtepi32_ps(_mm512_add_epi32(s0, s1));
        acc[r] = _mm512_fmadd_ps(sum, _mm512_mul_ps(d, _mm512_set1_ps(xb.d)), acc[r]);
        acc[r] = _mm512_fmadd_ps(m, _mm512_set1_ps(xb.s), acc[r]);
      }
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    __m512 v = acc[r];
    if (accumulate) v = _mm512_add_ps(v, _mm512_loadu_ps(y + r * ldy));
    _mm512_storeu_ps(y + r * ldy, v);
  }
}

constexpr int kPairMinRows = 4;

// A lambda, not a function: Rows takes it by type, so each call inlines.
constexpr auto kDotVnni = [](__m256i acc, __m256i u, __m256i s) { return _mm256_dpbusd_epi32(acc, u, s); };

}  // namespace

void RowsAvx512(uint32_t type, const packed::XBlock* x, int m, const void* w, int n0, int n1, int k, float* y,
                int64_t ldy, bool accumulate) {
  static const bool vnni = __builtin_cpu_supports("avx512vnni");
  if (!vnni) return RowsAvx2(type, x, m, w, n0, n1, k, y, ldy, accumulate);
  const int blocks = k / packed::kBlock;
  const size_t group_bytes = static_cast<size_t>(blocks) * packed::GroupBlockBytes(type);
  // Below 4 activation rows (decode) the weights stream past once whatever the width, and the
  // 256-bit kernel keeps one stream per thread: measured faster there (240M Q4_K_M, 1 thread:
  // 142 tokens/s with pairs, 178-192 without).
  int n = m < kPairMinRows ? n1 : n0;
  for (; n + 2 * packed::kGroup <= n1; n += 2 * packed::kGroup) {
    const char* g0 = static_cast<const char*>(w) + (n / packed::kGroup) * group_bytes;
    const char* g1 = g0 + group_bytes;
    int i = 0;
    for (; i + 4 <= m; i += 4) PairTile<4>(type, x + static_cast<size_t>(i) * blocks, blocks, g0, g1, y + i * ldy + n, ldy, accumulate);
    switch (m - i) {
      case 3: PairTile<3>(type, x + static_cast<size_t>(i) * blocks, blocks, g0, g1, y + i * ldy + n, ldy, accumulate); break;
      case 2: PairTile<2>(type, x + static_cast<size_t>(i) * blocks, blocks, g0, g1, y + i * ldy + n, ldy, accumulate); break;
      case 1: PairTile<1>(type, x + static_cast<size_t>(i) * blocks, blocks, g0, g1, y + i * ldy + n, ldy, accumulate); break;
      default: break;
    }
  }
  if (m < kPairMinRows) n = n0;
  if (n < n1) Rows<true>(type, x, m, w, n, n1, k, y, ldy, accumulate, kDotVnni);  // a last group of 8 (or fewer)
}

}  // namespace strata::qgemm
