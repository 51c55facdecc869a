#include "runtime/base/packed_blocks.h"

#include <cstring>

#include "runtime/base/dtype.h"
#include "runtime/base/weight_format.h"

namespace strata::packed {

namespace {

// Four consecutive quant bytes of a row as one word (plus 128 on each byte where `offset`).
inline void CopyWord(const void* from, uint8_t* to, bool offset) {
  uint32_t w;
  std::memcpy(&w, from, 4);
  if (offset) w ^= 0x80808080u;  // int8 + 128 as uint8, on each byte
  std::memcpy(to, &w, 4);
}

}  // namespace

size_t GroupBlockBytes(uint32_t type) {
  return type == WeightFormat::kPackedI8     ? sizeof(I8Group)
         : type == WeightFormat::kPackedI8x16 ? sizeof(I8PairGroup)
                                              : sizeof(U4Group);
}

void InterleaveRows(uint32_t type, const void* rows, int64_t n, int64_t k, void* groups) {
  const int64_t blocks = k / kBlock, ngroups = (n + kGroup - 1) / kGroup;
  // Groups are independent: the threads of a load split them (a large share of a small model's
  // load time otherwise).
#pragma omp parallel for schedule(static) if (ngroups * blocks > 4096)
  for (int64_t g = 0; g < ngroups; ++g)
    for (int64_t b = 0; b < blocks; ++b) {
      if (type == WeightFormat::kPackedI8) {
        I8Group& out = static_cast<I8Group*>(groups)[g * blocks + b];
        std::memset(&out, 0, sizeof(out));
        for (int j = 0; j < kGroup && g * kGroup + j < n; ++j) {
          const I8Block& in = static_cast<const I8Block*>(rows)[(g * kGroup + j) * blocks + b];
          out.d[j] = in.d;
          for (int s = 0; s < kBlock / 4; ++s) CopyWord(in.q + 4 * s, out.q + s * 32 + j * 4, true);
        }
      } else if (type == WeightFormat::kPackedI8x16) {
        I8PairGroup& out = static_cast<I8PairGroup*>(groups)[g * blocks + b];
        std::memset(&out, 0, sizeof(out));
        for (int j = 0; j < kGroup && g * kGroup + j < n; ++j) {
          const I8PairBlock& in = static_cast<const I8PairBlock*>(rows)[(g * kGroup + j) * blocks + b];
          out.d_lo[j] = in.d[0];
          out.d_hi[j] = in.d[1];
          for (int s = 0; s < kBlock / 4; ++s) CopyWord(in.q + 4 * s, out.q + s * 32 + j * 4, true);
        }
      } else {
        U4Group& out = static_cast<U4Group*>(groups)[g * blocks + b];
        std::memset(&out, 0, sizeof(out));
        for (int j = 0; j < kGroup && g * kGroup + j < n; ++j) {
          const U4Block& in = static_cast<const U4Block*>(rows)[(g * kGroup + j) * blocks + b];
          out.d[j] = in.d;
          out.m[j] = in.m;
          // Row-major: element i < 16 is the low nibble of q[i], element i + 16 its high nibble.
          for (int s = 0; s < 4; ++s) CopyWord(in.q + 4 * s, out.q + s * 32 + j * 4, false);
        }
      }
    }
}

void DequantizeInterleavedRow(uint32_t type, const void* groups, int64_t r, int64_t k, float* y) {
  const int64_t blocks = k / kBlock, g = r / kGroup;
  const int j = static_cast<int>(r % kGroup);
  for (int64_t b = 0; b < blocks; ++b) {
    float* out = y + b * kBlock;
    if (type == WeightFormat::kPackedI8) {
      const I8Group& in = static_cast<const I8Group*>(groups)[g * blocks + b];
      for (int s = 0; s < kBlock / 4; ++s)
        for (int e = 0; e < 4; ++e) out[4 * s + e] = F16ToFloat(in.d[j]) * static_cast<float>(in.q[s * 32 + j * 4 + e] - 128);
    } else if (type == WeightFormat::kPackedI8x16) {
      const I8PairGroup& in = static_cast<const I8PairGroup*>(groups)[g * blocks + b];
      for (int s = 0; s < kBlock / 4; ++s)
        for (int e = 0; e < 4; ++e)
          out[4 * s + e] = F16ToFloat(s < 4 ? in.d_lo[j] : in.d_hi[j]) * static_cast<float>(in.q[s * 32 + j * 4 + e] - 128);
    } else {
      const U4Group& in = static_cast<const U4Group*>(groups)[g * blocks + b];
      for (int s = 0; s < 4; ++s)
        for (int e = 0; e < 4; ++e) {
          const uint8_t v = in.q[s * 32 + j * 4 + e];
          out[4 * s + e] = F16ToFloat(in.d[j]) * static_cast<float>(v & 0xF) + F16ToFloat(in.m[j]);
          out[16 + 4 * s + e] = F16ToFloat(in.d[j]) * static_cast<float>(v >> 4) + F16ToFloat(in.m[j]);
        }
    }
  }
}

}  // namespace strata::packed
