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
#include "runtime/base/weight_format.h"

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

// The packed layout (packed_blocks.h) a type is repacked into for the kernels: PackedI8 for
// Q8_0 and Q5_0, PackedI8x16 for Q6_K, PackedU4 for Q4_0, Q4_1 and Q4_K; Plain(F32) for the
// others (dequantized).
WeightFormat PackedFormatFor(uint32_t type_id);
// Repacks `elems` elements (whole blocks) of a type with a packed layout into it at `dst`:
// the same values (Q4_0's (q - 8) d as d q - 8 d, which may round differently in the last bit).
absl::Status PackGgml(uint32_t type_id, const uint8_t* src, int64_t elems, void* dst);

// Quantizes `elems` floats (whole blocks of 32) into a packed layout, as llama.cpp's reference
// quantizers do: PackedI8 as Q8_0 (d = max|x| / 127, q = round(x / d)), PackedU4 as Q4_1
// (m = min, d = (max - min) / 15, q = round((x - m) / d)); the scales stay float.
void QuantizeToPacked(const float* src, int64_t elems, const WeightFormat& packed, void* dst);

// Quantizes `elems` floats (whole super-blocks of 256) into Q4_K blocks (ggml's block_q4_K:
// half d and dmin, 8 sub-blocks of 32 with 6-bit scales and mins, 4-bit quants): each
// sub-block's range [min(0, lo), hi] in 15 steps, the scales and mins quantized to 6 bits of the
// super-block's largest, and the quants recomputed with the quantized scales. (llama.cpp's
// reference also searches each sub-block's scale for the least weighted error; this does not.)
void QuantizeQ4K(const float* src, int64_t elems, uint8_t* dst);

// Quantizes `elems` floats (whole blocks of `ggml_type`: Q8_0, Q4_1 or Q4_K) into that type's
// packed layout (PackedFormatFor) at `dst`: --quantization's one entry point.
absl::Status QuantizeFloatsAs(uint32_t ggml_type, const float* src, int64_t elems, void* dst);

// Writes `elems` floats (a multiple of the block) dequantized from `src` (GgmlBytes of them).
absl::Status DequantizeGgml(uint32_t type_id, const uint8_t* src, int64_t elems, float* dst);

}  // namespace strata
