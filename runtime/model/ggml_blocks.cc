#include "runtime/model/ggml_blocks.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "runtime/base/dtype.h"
#include "runtime/base/packed_blocks.h"

namespace strata {
namespace {

constexpr int kQK = 32;    // elements of a Q4_0..Q8_1 block
constexpr int kQKK = 256;  // elements of a K-quant super-block

// Every id llama.cpp writes (gguf-py's GGMLQuantizationType; 31-33 and 36-38 were removed).
constexpr GgmlType kTypes[] = {
    {0, "F32", 1, 4, true},         {1, "F16", 1, 2, true},         {2, "Q4_0", kQK, 18, true},
    {3, "Q4_1", kQK, 20, true},     {6, "Q5_0", kQK, 22, true},     {7, "Q5_1", kQK, 24, true},
    {8, "Q8_0", kQK, 34, true},     {9, "Q8_1", kQK, 36, false},    {10, "Q2_K", kQKK, 84, false},
    {11, "Q3_K", kQKK, 110, false}, {12, "Q4_K", kQKK, 144, true},  {13, "Q5_K", kQKK, 176, true},
    {14, "Q6_K", kQKK, 210, true},  {15, "Q8_K", kQKK, 292, false}, {16, "IQ2_XXS", kQKK, 66, false},
    {17, "IQ2_XS", kQKK, 74, false}, {18, "IQ3_XXS", kQKK, 98, false}, {19, "IQ1_S", kQKK, 50, false},
    {20, "IQ4_NL", kQK, 18, false}, {21, "IQ3_S", kQKK, 110, false}, {22, "IQ2_S", kQKK, 82, false},
    {23, "IQ4_XS", kQKK, 136, false}, {24, "I8", 1, 1, false},      {25, "I16", 1, 2, false},
    {26, "I32", 1, 4, false},       {27, "I64", 1, 8, false},       {28, "F64", 1, 8, false},
    {29, "IQ1_M", kQKK, 56, false}, {30, "BF16", 1, 2, true},       {34, "TQ1_0", kQKK, 54, false},
    {35, "TQ2_0", kQKK, 66, false},
};

float Half(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return F16ToFloat(h);
}

// K-quants' packed 6-bit scale and min of sub-block j (ggml's get_scale_min_k4).
void ScaleMinK4(int j, const uint8_t* q, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

void Q4_0(const uint8_t* b, float* y) {  // d, qs[16]: low nibbles are 0..15, high ones 16..31
  const float d = Half(b);
  for (int j = 0; j < kQK / 2; ++j) {
    y[j] = static_cast<float>((b[2 + j] & 0x0F) - 8) * d;
    y[j + kQK / 2] = static_cast<float>((b[2 + j] >> 4) - 8) * d;
  }
}

void Q4_1(const uint8_t* b, float* y) {  // d, m, qs[16]
  const float d = Half(b), m = Half(b + 2);
  for (int j = 0; j < kQK / 2; ++j) {
    y[j] = static_cast<float>(b[4 + j] & 0x0F) * d + m;
    y[j + kQK / 2] = static_cast<float>(b[4 + j] >> 4) * d + m;
  }
}

void Q5_0(const uint8_t* b, float* y) {  // d, qh (u32: the fifth bits), qs[16]
  const float d = Half(b);
  uint32_t qh;
  std::memcpy(&qh, b + 2, 4);
  for (int j = 0; j < kQK / 2; ++j) {
    const int x0 = (b[6 + j] & 0x0F) | static_cast<int>(((qh >> j) << 4) & 0x10);
    const int x1 = (b[6 + j] >> 4) | static_cast<int>((qh >> (j + 12)) & 0x10);
    y[j] = static_cast<float>(x0 - 16) * d;
    y[j + kQK / 2] = static_cast<float>(x1 - 16) * d;
  }
}

void Q5_1(const uint8_t* b, float* y) {  // d, m, qh, qs[16]
  const float d = Half(b), m = Half(b + 2);
  uint32_t qh;
  std::memcpy(&qh, b + 4, 4);
  for (int j = 0; j < kQK / 2; ++j) {
    const int x0 = (b[8 + j] & 0x0F) | static_cast<int>(((qh >> j) << 4) & 0x10);
    const int x1 = (b[8 + j] >> 4) | static_cast<int>((qh >> (j + 12)) & 0x10);
    y[j] = static_cast<float>(x0) * d + m;
    y[j + kQK / 2] = static_cast<float>(x1) * d + m;
  }
}

void Q8_0(const uint8_t* b, float* y) {  // d, qs[32] int8
  const float d = Half(b);
  for (int j = 0; j < kQK; ++j) y[j] = static_cast<float>(static_cast<int8_t>(b[2 + j])) * d;
}

void Q4_K(const uint8_t* b, float* y) {  // d, dmin, scales[12], qs[128]
  const float d = Half(b), dmin = Half(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* q = b + 16;
  for (int c = 0, is = 0; c < 4; ++c, is += 2, q += 32) {  // 64 elements: two sub-blocks
    uint8_t sc, m;
    ScaleMinK4(is, scales, &sc, &m);
    const float d1 = d * sc, m1 = dmin * m;
    ScaleMinK4(is + 1, scales, &sc, &m);
    const float d2 = d * sc, m2 = dmin * m;
    for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>(q[l] & 0xF) - m1;
    for (int l = 0; l < 32; ++l) *y++ = d2 * static_cast<float>(q[l] >> 4) - m2;
  }
}

void Q5_K(const uint8_t* b, float* y) {  // d, dmin, scales[12], qh[32], qs[128]
  const float d = Half(b), dmin = Half(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* qh = b + 16;
  const uint8_t* ql = b + 48;
  uint8_t u1 = 1, u2 = 2;
  for (int c = 0, is = 0; c < 4; ++c, is += 2, ql += 32, u1 <<= 2, u2 <<= 2) {
    uint8_t sc, m;
    ScaleMinK4(is, scales, &sc, &m);
    const float d1 = d * sc, m1 = dmin * m;
    ScaleMinK4(is + 1, scales, &sc, &m);
    const float d2 = d * sc, m2 = dmin * m;
    for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
    for (int l = 0; l < 32; ++l) *y++ = d2 * static_cast<float>((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
  }
}

void Q6_K(const uint8_t* b, float* y) {  // ql[128], qh[64], scales[16] int8, d (last)
  const float d = Half(b + 208);
  const uint8_t* ql = b;
  const uint8_t* qh = b + 128;
  const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
  for (int n = 0; n < 2; ++n, y += 128, ql += 64, qh += 32, sc += 8) {
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const int q1 = static_cast<int>((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
      const int q2 = static_cast<int>((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
      const int q3 = static_cast<int>((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      const int q4 = static_cast<int>((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      y[l] = d * sc[is] * static_cast<float>(q1);
      y[l + 32] = d * sc[is + 2] * static_cast<float>(q2);
      y[l + 64] = d * sc[is + 4] * static_cast<float>(q3);
      y[l + 96] = d * sc[is + 6] * static_cast<float>(q4);
    }
  }
}

}  // namespace

const GgmlType* FindGgmlType(uint32_t id) {
  for (const GgmlType& t : kTypes)
    if (t.id == id) return &t;
  return nullptr;
}

std::string GgmlTypeName(uint32_t id) {
  const GgmlType* t = FindGgmlType(id);
  return t ? t->name : absl::StrCat("type ", id);
}

absl::Status DequantizeGgml(uint32_t type_id, const uint8_t* src, int64_t elems, float* dst) {
  const GgmlType* t = FindGgmlType(type_id);
  if (t == nullptr || !t->dequantizable)
    return absl::UnimplementedError(absl::StrCat("ggml type ", GgmlTypeName(type_id), " cannot be loaded (F32, F16, BF16, "
                                                 "Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K and Q6_K can)"));
  if (elems < 0 || elems % t->block_elems != 0)
    return absl::InvalidArgumentError(absl::StrCat(elems, " elements are not whole ", t->name, " blocks"));
  if (elems == 0) return absl::OkStatus();  // (an empty tensor's buffers may be null)
  void (*block)(const uint8_t*, float*) = nullptr;
  switch (type_id) {
    case 0: std::memcpy(dst, src, static_cast<size_t>(elems) * 4); return absl::OkStatus();
    case 1:
      for (int64_t i = 0; i < elems; ++i) dst[i] = Half(src + 2 * i);
      return absl::OkStatus();
    case 30:
      for (int64_t i = 0; i < elems; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        dst[i] = Bf16ToFloat(h);
      }
      return absl::OkStatus();
    case 2: block = Q4_0; break;
    case 3: block = Q4_1; break;
    case 6: block = Q5_0; break;
    case 7: block = Q5_1; break;
    case 8: block = Q8_0; break;
    case 12: block = Q4_K; break;
    case 13: block = Q5_K; break;
    case 14: block = Q6_K; break;
  }
  for (int64_t i = 0; i < elems / t->block_elems; ++i) block(src + i * t->block_bytes, dst + i * t->block_elems);
  return absl::OkStatus();
}

WeightFormat PackedFormatFor(uint32_t type_id) {
  switch (type_id) {
    case 6:
    case 8: return WeightFormat::PackedI8();
    case 14: return WeightFormat::PackedI8x16();
    case 2:
    case 3:
    case 12: return WeightFormat::PackedU4();
    default: return WeightFormat::Plain(DType::kF32);
  }
}

namespace {

// The U4 nibble order (element i low, i + 16 high) from 32 values 0..15.
void PutNibbles(const uint8_t* v, uint8_t* q) {
  for (int j = 0; j < 16; ++j) q[j] = static_cast<uint8_t>(v[j] | (v[j + 16] << 4));
}

}  // namespace

namespace {

// The half nearest `v` that is >= v (HalfAtLeast) or <= v (HalfAtMost): scales and minimums
// rounded so that every element still fits the block's 8 or 4 bits.
uint16_t HalfAtLeast(float v) {
  uint16_t h = FloatToF16(v);
  if (F16ToFloat(h) < v) h = (h & 0x8000) ? (h == 0x8000 ? 0x0001 : h - 1) : h + 1;  // one step up
  return h;
}
uint16_t HalfAtMost(float v) {
  uint16_t h = FloatToF16(v);
  if (F16ToFloat(h) > v) h = (h & 0x8000) ? h + 1 : (h == 0 ? 0x8001 : h - 1);  // one step down
  return h;
}

}  // namespace

void QuantizeToPacked(const float* src, int64_t elems, const WeightFormat& f, void* dst) {
  for (int64_t i = 0; i < elems / packed::kBlock; ++i) {
    const float* x = src + i * packed::kBlock;
    if (f.ggml_type == WeightFormat::kPackedI8) {
      auto& b = static_cast<packed::I8Block*>(dst)[i];
      float amax = 0;
      for (int j = 0; j < packed::kBlock; ++j) amax = std::max(amax, std::fabs(x[j]));
      b.d = HalfAtLeast(amax / 127.f);  // the quants are taken against the half scale they meet
      const float d = F16ToFloat(b.d), inv = d > 0 ? 1.f / d : 0.f;
      for (int j = 0; j < packed::kBlock; ++j)
        b.q[j] = static_cast<int8_t>(std::clamp(std::lround(x[j] * inv), -127L, 127L));
    } else {
      auto& b = static_cast<packed::U4Block*>(dst)[i];
      float lo = x[0], hi = x[0];
      for (int j = 1; j < packed::kBlock; ++j) {
        lo = std::min(lo, x[j]);
        hi = std::max(hi, x[j]);
      }
      b.m = HalfAtMost(lo);
      const float m = F16ToFloat(b.m);
      b.d = HalfAtLeast((hi - m) / 15.f);
      const float d = F16ToFloat(b.d), inv = d > 0 ? 1.f / d : 0.f;
      uint8_t v[packed::kBlock];
      for (int j = 0; j < packed::kBlock; ++j)
        v[j] = static_cast<uint8_t>(std::clamp(std::lround((x[j] - m) * inv), 0L, 15L));
      PutNibbles(v, b.q);
    }
  }
}

namespace {

// One Q4_K super-block (144 bytes) of `x` (256 floats).
void QuantizeQ4KBlock(const float* x, uint8_t* b) {
  float scale[8], min[8];  // per sub-block: x = scale * q - min, q in 0..15
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < 8; ++j) {
    float lo = x[32 * j], hi = x[32 * j];
    for (int l = 1; l < 32; ++l) {
      lo = std::min(lo, x[32 * j + l]);
      hi = std::max(hi, x[32 * j + l]);
    }
    lo = std::min(lo, 0.f);  // the min is stored as a non-negative amount subtracted
    scale[j] = (hi - lo) / 15.f;
    min[j] = -lo;
    max_scale = std::max(max_scale, scale[j]);
    max_min = std::max(max_min, min[j]);
  }
  const uint16_t dh = FloatToF16(max_scale / 63.f), mh = FloatToF16(max_min / 63.f);
  std::memcpy(b, &dh, 2);
  std::memcpy(b + 2, &mh, 2);
  const float d = F16ToFloat(dh), dmin = F16ToFloat(mh);
  uint8_t* scales = b + 4;
  std::memset(scales, 0, 12);
  uint8_t ls[8], lm[8];
  for (int j = 0; j < 8; ++j) {
    ls[j] = static_cast<uint8_t>(std::clamp(d > 0 ? std::lround(scale[j] / d) : 0L, 0L, 63L));
    lm[j] = static_cast<uint8_t>(std::clamp(dmin > 0 ? std::lround(min[j] / dmin) : 0L, 0L, 63L));
    if (j < 4) {  // ggml's packing, which ScaleMinK4 reads back
      scales[j] |= ls[j];
      scales[j + 4] |= lm[j];
    } else {
      scales[j + 4] = static_cast<uint8_t>((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
      scales[j - 4] |= static_cast<uint8_t>((ls[j] >> 4) << 6);
      scales[j] |= static_cast<uint8_t>((lm[j] >> 4) << 6);
    }
  }
  uint8_t L[256];
  for (int j = 0; j < 8; ++j) {
    const float dj = d * ls[j], mj = dmin * lm[j];
    for (int l = 0; l < 32; ++l)
      L[32 * j + l] = static_cast<uint8_t>(dj > 0 ? std::clamp(std::lround((x[32 * j + l] + mj) / dj), 0L, 15L) : 0);
  }
  uint8_t* q = b + 16;  // 64 elements per 32 bytes: the first 32 in the low nibbles
  for (int c = 0; c < 4; ++c, q += 32)
    for (int l = 0; l < 32; ++l) q[l] = static_cast<uint8_t>(L[64 * c + l] | (L[64 * c + 32 + l] << 4));
}

}  // namespace

void QuantizeQ4K(const float* src, int64_t elems, uint8_t* dst) {
  for (int64_t i = 0; i < elems / kQKK; ++i) QuantizeQ4KBlock(src + i * kQKK, dst + i * 144);
}

absl::Status QuantizeFloatsAs(uint32_t ggml_type, const float* src, int64_t elems, void* dst) {
  switch (ggml_type) {
    case 8:  // Q8_0
      QuantizeToPacked(src, elems, WeightFormat::PackedI8(), dst);
      return absl::OkStatus();
    case 3:  // Q4_1
      QuantizeToPacked(src, elems, WeightFormat::PackedU4(), dst);
      return absl::OkStatus();
    case 12: {  // Q4_K: ggml's blocks first, then repacked as a Q4_K file's are
      if (elems % kQKK != 0) return absl::InvalidArgumentError(absl::StrCat(elems, " elements are not whole Q4_K blocks"));
      std::vector<uint8_t> blocks(static_cast<size_t>(elems / kQKK * 144));
      QuantizeQ4K(src, elems, blocks.data());
      return PackGgml(12, blocks.data(), elems, dst);
    }
    default:
      return absl::UnimplementedError(absl::StrCat("no quantizer for ggml type ", GgmlTypeName(ggml_type)));
  }
}

absl::Status PackGgml(uint32_t type_id, const uint8_t* src, int64_t elems, void* dst) {
  const GgmlType* t = FindGgmlType(type_id);
  const WeightFormat to = PackedFormatFor(type_id);
  if (t == nullptr || !to.packed())
    return absl::UnimplementedError(absl::StrCat("ggml type ", GgmlTypeName(type_id), " has no packed layout"));
  if (elems < 0 || elems % t->block_elems != 0)
    return absl::InvalidArgumentError(absl::StrCat(elems, " elements are not whole ", t->name, " blocks"));
  auto* i8 = static_cast<packed::I8Block*>(dst);
  auto* pair = static_cast<packed::I8PairBlock*>(dst);
  auto* u4 = static_cast<packed::U4Block*>(dst);
  for (int64_t i = 0; i < elems / t->block_elems; ++i) {
    const uint8_t* b = src + i * t->block_bytes;
    switch (type_id) {
      case 8: {  // d, qs[32]
        std::memcpy(&i8->d, b, 2);
        std::memcpy(i8->q, b + 2, 32);
        ++i8;
        break;
      }
      case 6: {  // d, qh, qs[16]: q - 16
        std::memcpy(&i8->d, b, 2);
        uint32_t qh;
        std::memcpy(&qh, b + 2, 4);
        for (int j = 0; j < 16; ++j) {
          i8->q[j] = static_cast<int8_t>(((b[6 + j] & 0x0F) | static_cast<int>(((qh >> j) << 4) & 0x10)) - 16);
          i8->q[j + 16] = static_cast<int8_t>(((b[6 + j] >> 4) | static_cast<int>((qh >> (j + 12)) & 0x10)) - 16);
        }
        ++i8;
        break;
      }
      case 2:  // d, qs[16]: (q - 8) d = d q - 8 d
        std::memcpy(&u4->d, b, 2);
        u4->m = FloatToF16(-8.f * Half(b));  // exact: a power of two
        std::memcpy(u4->q, b + 2, 16);
        ++u4;
        break;
      case 3:  // d, m, qs[16]
        std::memcpy(&u4->d, b, 2);
        std::memcpy(&u4->m, b + 2, 2);
        std::memcpy(u4->q, b + 4, 16);
        ++u4;
        break;
      case 14: {  // ql[128], qh[64], scales[16], d: 8 blocks of 32, each with two d x scale
        const float d = Half(b + 208);
        const uint8_t* ql = b;
        const uint8_t* qh = b + 128;
        const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
        int8_t q[256];
        for (int n = 0; n < 2; ++n, ql += 64, qh += 32)
          for (int l = 0; l < 32; ++l) {
            q[n * 128 + l] = static_cast<int8_t>(((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32);
            q[n * 128 + l + 32] = static_cast<int8_t>(((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
            q[n * 128 + l + 64] = static_cast<int8_t>(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
            q[n * 128 + l + 96] = static_cast<int8_t>(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
          }
        for (int blk = 0; blk < 8; ++blk, ++pair) {  // element e's scale is sc[e / 16]
          pair->d[0] = FloatToF16(d * static_cast<float>(sc[2 * blk]));
          pair->d[1] = FloatToF16(d * static_cast<float>(sc[2 * blk + 1]));
          std::memcpy(pair->q, q + 32 * blk, 32);
        }
        break;
      }
      case 12: {  // 8 sub-blocks of 32: d x scale, dmin x min, as Q4_K dequantizes
        const float d = Half(b), dmin = Half(b + 2);
        const uint8_t* scales = b + 4;
        const uint8_t* q = b + 16;
        for (int c = 0, is = 0; c < 4; ++c, is += 2, q += 32) {
          uint8_t sc, m, v[32];
          for (int half = 0; half < 2; ++half) {
            ScaleMinK4(is + half, scales, &sc, &m);
            u4->d = FloatToF16(d * sc);
            u4->m = FloatToF16(-(dmin * m));
            for (int l = 0; l < 32; ++l) v[l] = half == 0 ? (q[l] & 0xF) : (q[l] >> 4);
            PutNibbles(v, u4->q);
            ++u4;
          }
        }
        break;
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace strata
