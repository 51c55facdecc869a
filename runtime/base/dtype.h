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
inline uint16_t FloatToF16(float f) {
  _Float16 h = static_cast<_Float16>(f);
  uint16_t u;
  std::memcpy(&u, &h, 2);
  return u;
}
inline float F16ToFloat(uint16_t u) {
  _Float16 h;
  std::memcpy(&h, &u, 2);
  return static_cast<float>(h);
}

// Converts `n` elements of type `t` at `src` to float.
void ToFloat(DType t, const void* src, float* dst, size_t n);
// Converts `n` floats to type `t` at `dst`.
void FromFloat(DType t, const float* src, void* dst, size_t n);

}  // namespace strata
