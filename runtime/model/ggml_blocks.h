// File: runtime/model/ggml_blocks.h
// llama.cpp's tensor element types (ggml_type ids as GGUF files store them): their block shape and
// bytes for every known id, and exact dequantization to float for the ones Strata loads (F32,
// F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K), bit for bit as ggml's
// dequantize_row_* and gguf-py's reference (float32 arithmetic in ggml's order, no fused
// multiply-add: this file is compiled with -ffp-contract=off).
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"

namespace strata {

struct GgmlType {
  uint32_t id;
  const char* name;
  int block_elems;  // elements per block (1 for plain scalars)
  int block_bytes;
  bool dequantizable;  // DequantizeGgml handles it
};

// The entry of a ggml_type id, or null for an id no known llama.cpp writes.
const GgmlType* FindGgmlType(uint32_t id);
// "Q4_K", or "type 39" for an unknown id.
std::string GgmlTypeName(uint32_t id);

// Bytes of `elems` elements (a multiple of the type's block) of type `t`.
inline uint64_t GgmlBytes(const GgmlType& t, uint64_t elems) {
  return elems / static_cast<uint64_t>(t.block_elems) * static_cast<uint64_t>(t.block_bytes);
}

// Writes `elems` floats (a multiple of the block) dequantized from `src` (GgmlBytes of them).
absl::Status DequantizeGgml(uint32_t type_id, const uint8_t* src, int64_t elems, float* dst);

}  // namespace strata
