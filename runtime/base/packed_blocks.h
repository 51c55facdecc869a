// File: runtime/base/packed_blocks.h
// Strata's in-memory layouts for block-quantized weight matrices (WeightFormat::PackedI8 and
// PackedU4), and for activations quantized to 8 bits per block of 32. GGUF blocks are repacked
// into these once at load (ggml_blocks.h, PackGgml): every format reduced to one of three shapes
// so that one kernel per instruction set serves them all. Scales are IEEE halves, as in the GGUF
// blocks (Q8_0 and Q4_1 blocks keep their GGUF size, 34 and 20 bytes per 32; the kernels widen 8 scales with
// one vcvtph2ps); a K-quant's sub-block scale d x scale is rounded to a half once here (a relative
// 2^-11 at most, against the 2^-8 of the 8-bit activations it multiplies).
//
// A matrix is first written row by row (I8Block / U4Block, k / 32 per row), then interleaved
// (InterleaveRows) into groups of 8 rows: a group's block b holds the 8 rows' scales side by side
// and their quants so that 4 consecutive elements of row j sit in 32-bit lane j of a 256-bit
// register; one integer multiply-add of such a register by 4 activation bytes broadcast to every
// lane (vpdpbusd) advances 8 output rows at once. The last group is padded with zero rows.
#pragma once

#include <cstddef>
#include <cstdint>

namespace strata::packed {

constexpr int kBlock = 32;  // elements per block
constexpr int kGroup = 8;   // rows per interleaved group

// Row-major forms (what repacking and quantizing write first).
// w[i] = d * q[i]  (Q8_0, Q5_0).
struct I8Block {
  uint16_t d;  // half
  int8_t q[kBlock];
};
// w[i] = d[i / 16] * q[i]  (Q6_K: each sub-block of 16 with its d x scale).
struct I8PairBlock {
  uint16_t d[2];  // halves
  int8_t q[kBlock];
};
// w[i] = d * q(i) + m, q in 0..15: element i < 16 in the low nibble of q[i], element i + 16 in
// its high nibble, as ggml's Q4_0/Q4_1 (Q4_0: m = -8 d; Q4_K: each sub-block of 32 with its
// d x scale and -dmin x min).
struct U4Block {
  uint16_t d;  // half
  uint16_t m;  // half
  uint8_t q[kBlock / 2];
};

// Interleaved forms: block b of rows 8g..8g+7.
// q[s * 32 + j * 4 + e] = element 4 s + e of row j (s < 8) plus 128, as an unsigned byte (the
// unsigned operand of vpdpbusd; the kernels subtract 128 x the activations' sum).
struct I8Group {
  uint16_t d[kGroup];  // halves
  uint8_t q[kGroup * kBlock];
};
// As I8Group, with the scales of elements 0..15 and 16..31 apart.
struct I8PairGroup {
  uint16_t d_lo[kGroup];  // halves
  uint16_t d_hi[kGroup];
  uint8_t q[kGroup * kBlock];  // plus 128, as I8Group's
};
// q[s * 32 + j * 4 + e]: element 4 s + e of row j in the low nibble, element 16 + 4 s + e in the
// high one (s < 4).
struct U4Group {
  uint16_t d[kGroup];  // halves
  uint16_t m[kGroup];
  uint8_t q[kGroup * kBlock / 2];
};

// An activation block: x[i] ~ d * q[i], q[i] in -127..127; s = d x the sum of q (what a U4
// block's minimum multiplies); sum[0], sum[1]: the sums of q[0..15] and q[16..31].
struct XBlock {
  float d;
  float s;
  int8_t q[kBlock];
  int32_t sum[2];
};

static_assert(sizeof(I8Block) == 34 && sizeof(U4Block) == 20 && sizeof(I8PairBlock) == 36 &&
                  sizeof(I8Group) == 8 * 34 && sizeof(U4Group) == 8 * 20 && sizeof(I8PairGroup) == 8 * 36 &&
                  sizeof(XBlock) == 48,
              "packed layouts");

// `type` is WeightFormat::kPackedI8, kPackedI8x16 or kPackedU4. `rows`: n rows of k / 32 row-major blocks;
// `groups`: ceil(n / 8) groups of k / 32 interleaved blocks.
void InterleaveRows(uint32_t type, const void* rows, int64_t n, int64_t k, void* groups);
// Bytes of one interleaved block of a group (8 rows x 32 elements) of packed type `type`.
size_t GroupBlockBytes(uint32_t type);
// Row r of an interleaved matrix as k floats.
void DequantizeInterleavedRow(uint32_t type, const void* groups, int64_t r, int64_t k, float* y);

}  // namespace strata::packed
