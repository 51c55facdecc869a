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
  uint32_t ggml_type = kPlain;  // the block format's ggml_type id; kPlain: elements of `dtype`
  DType dtype = DType::kF32;
  int block_elems = 1;
  int block_bytes = 4;
  const char* block_name = nullptr;  // "Q4_K"

  static WeightFormat Plain(DType t) { return {kPlain, t, 1, static_cast<int>(DTypeSize(t)), nullptr}; }
  bool plain() const { return ggml_type == kPlain; }
  // Bytes of a [rows, cols] tensor (cols a multiple of block_elems).
  int64_t Bytes(int64_t rows, int64_t cols) const { return rows * (cols / block_elems) * block_bytes; }
  // "F32", "BF16", "Q4_K".
  std::string Name() const { return plain() ? DTypeName(dtype) : block_name; }
  bool operator==(const WeightFormat& o) const {
    return ggml_type == o.ggml_type && (!plain() || dtype == o.dtype);
  }
  bool operator!=(const WeightFormat& o) const { return !(*this == o); }
};

}  // namespace strata
