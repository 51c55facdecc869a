// File: runtime/base/dtype.h
// Element types of checkpoints and KV caches, and the conversions between them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "absl/status/statusor.h"

namespace strata {

enum class DType { kF32, kF16, kBF16 };

size_t DTypeSize(DType t);
// "F32", "F16", "BF16": the safetensors spelling.
const char* DTypeName(DType t);
absl::StatusOr<DType> ParseSafetensorsDType(const std::string& s);
// Accepts "float32"/"f32", "float16"/"f16"/"half", "bfloat16"/"bf16".
absl::StatusOr<DType> ParseDTypeName(const std::string& s);
// "float32", "float16", "bfloat16": the config.json torch_dtype spelling.
const char* TorchDTypeName(DType t);

// Round-to-nearest-even float -> bfloat16 (NaN stays NaN).
inline uint16_t FloatToBf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}
inline float Bf16ToFloat(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
// IEEE half conversions in integer arithmetic (round to nearest even; NaN stays NaN), for
// compilers without _Float16 on this target (clang 14 on x86, used by the fuzz build). The
// compiler's own conversions are used where it has them; a test checks that both agree.
inline uint16_t FloatToF16Portable(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const uint32_t sign = u & 0x80000000u;
  u ^= sign;
  uint16_t o;
  if (u >= (127u + 16u) << 23) {  // 2^16 and up, inf, NaN
    o = u > (255u << 23) ? 0x7e00 : 0x7c00;
  } else if (u < 113u << 23) {  // below 2^-14: a half subnormal or zero, rounded by float addition
    const uint32_t magic_u = ((127u - 15u) + (23u - 10u) + 1u) << 23;
    float fu, magic;
    std::memcpy(&fu, &u, 4);
    std::memcpy(&magic, &magic_u, 4);
    fu += magic;
    std::memcpy(&u, &fu, 4);
    o = static_cast<uint16_t>(u - magic_u);
  } else {
    const uint32_t mant_odd = (u >> 13) & 1u;
    u += ((15u - 127u) << 23) + 0xfffu + mant_odd;  // rebias, round half to even
    o = static_cast<uint16_t>(u >> 13);
  }
  return static_cast<uint16_t>(o | (sign >> 16));
}
inline float F16ToFloatPortable(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
  uint32_t u;
  if (exp == 0) {  // zero or subnormal: mant x 2^-24, exact in float
    float f = static_cast<float>(mant) * 0x1.0p-24f;
    std::memcpy(&u, &f, 4);
    u |= sign;
  } else if (exp == 31) {
    u = sign | 0x7f800000u | (mant << 13);
  } else {
    u = sign | ((exp + 112u) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline uint16_t FloatToF16(float f) {
#if defined(__FLT16_MAX__)
  _Float16 h = static_cast<_Float16>(f);
  uint16_t u;
  std::memcpy(&u, &h, 2);
  return u;
#else
  return FloatToF16Portable(f);
#endif
}
inline float F16ToFloat(uint16_t u) {
#if defined(__FLT16_MAX__)
  _Float16 h;
  std::memcpy(&h, &u, 2);
  return static_cast<float>(h);
#else
  return F16ToFloatPortable(u);
#endif
}

// Converts `n` elements of type `t` at `src` to float.
void ToFloat(DType t, const void* src, float* dst, size_t n);
// Converts `n` floats to type `t` at `dst`.
void FromFloat(DType t, const float* src, void* dst, size_t n);

}  // namespace strata
