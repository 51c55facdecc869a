// File: runtime/base/packed_blocks.h
// Strata's in-memory layouts for block-quantized weight matrices (WeightFormat::PackedI8 and
// PackedU4), and for activations quantized to 8 bits per block of 32. GGUF blocks are repacked
// into these once at load (ggml_blocks.h, PackGgmlRow): scales widened to float so the kernels
// never convert a half, every format reduced to one of two shapes so that one kernel per
// instruction set serves them all. A row of k elements is k / 32 blocks, one after the other.
#pragma once

#include <cstdint>

namespace strata::packed {

constexpr int kBlock = 32;

// w[i] = d * q[i]  (Q8_0, Q5_0).
struct I8Block {
  float d;
  int8_t q[kBlock];
};

// w[i] = d * q(i) + m, q in 0..15: element i < 16 in the low nibble of q[i], element i + 16 in
// its high nibble, as ggml's Q4_0/Q4_1 (Q4_0: m = -8 d; Q4_K: each sub-block of 32 with its
// d x scale and -dmin x min).
struct U4Block {
  float d;
  float m;
  uint8_t q[kBlock / 2];
};

// An activation block: x[i] ~ d * q[i], q[i] in -127..127, sum = the sum of q.
struct XBlock {
  float d;
  int32_t sum;
  int8_t q[kBlock];
};

static_assert(sizeof(I8Block) == 36 && sizeof(U4Block) == 24 && sizeof(XBlock) == 40, "packed layouts");

}  // namespace strata::packed
