// File: runtime/base/weight_format.h
// How one weight tensor's elements are stored: plain elements of a DType, or llama.cpp blocks
// (Q8_0, Q4_K, ...: `block_elems` consecutive elements of a row in `block_bytes`). A checkpoint
// gives it per tensor (a GGUF file mixes formats); the loader keeps one per loaded tensor and
// passes it with the tensor to the backend.
#pragma once

#include <cstdint>
#include <string>

#include "runtime/base/dtype.h"

namespace strata {

struct WeightFormat {
  static constexpr uint32_t kPlain = 0xffffffffu;
  // Strata's own layouts that block formats are repacked into at load (packed_blocks.h); ids
  // outside ggml's range.
  static constexpr uint32_t kPackedI8 = 0x10000u, kPackedU4 = 0x10001u, kPackedI8x16 = 0x10002u;
  uint32_t ggml_type = kPlain;  // the block format's ggml_type id; kPlain: elements of `dtype`
  DType dtype = DType::kF32;
  int block_elems = 1;
  int block_bytes = 4;
  const char* block_name = nullptr;  // "Q4_K"

  static WeightFormat Plain(DType t) { return {kPlain, t, 1, static_cast<int>(DTypeSize(t)), nullptr}; }
  static WeightFormat PackedI8() { return {kPackedI8, DType::kF32, 32, 34, "I8x32"}; }
  static WeightFormat PackedU4() { return {kPackedU4, DType::kF32, 32, 20, "U4x32"}; }
  static WeightFormat PackedI8x16() { return {kPackedI8x16, DType::kF32, 32, 36, "I8x16"}; }
  bool plain() const { return ggml_type == kPlain; }
  bool packed() const { return ggml_type == kPackedI8 || ggml_type == kPackedU4 || ggml_type == kPackedI8x16; }
  // Bytes of a [rows, cols] tensor (cols a multiple of block_elems); packed layouts hold whole
  // groups of 8 rows (packed_blocks.h).
  int64_t Bytes(int64_t rows, int64_t cols) const {
    const int64_t held = packed() ? (rows + 7) / 8 * 8 : rows;
    return held * (cols / block_elems) * block_bytes;
  }
  // "F32", "BF16", "Q4_K".
  std::string Name() const { return plain() ? DTypeName(dtype) : block_name; }
  bool operator==(const WeightFormat& o) const {
    return ggml_type == o.ggml_type && (!plain() || dtype == o.dtype);
  }
  bool operator!=(const WeightFormat& o) const { return !(*this == o); }
};

}  // namespace strata
