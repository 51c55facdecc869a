// File: kernels/cpu/cpu_quant_gemm.h
// y = x W^T (+ y) with W in a packed block layout (runtime/base/packed_blocks.h: PackedI8 from
// Q8_0/Q5_0, PackedI8x16 from Q6_K, PackedU4 from Q4_0/Q4_1/Q4_K), as llama.cpp's CPU path computes it: each activation
// row is quantized once to 8 bits per block of 32 (scale max|x| / 127, rounded to nearest), each
// block's product is an exact integer dot product, scaled by the two block scales (and for U4
// the block minimum times the activations' block sum) and summed in float.
//
// W is interleaved in groups of 8 rows (packed_blocks.h). Work is split by whole groups over
// `threads` threads of the one OpenMP pool; each thread reads its weight groups once per tile of
// 32 activation rows (once per call while m <= 32, so a decode step streams the weights once
// whatever the batch), the tile staying in L1 cache. The instruction set is the caller's choice
// (DetectCpuIsa): AVX2 (vpmaddubsw), AVX-512 with VNNI (vpdpbusd on 256-bit lanes; AVX2's code
// where the CPU has no VNNI) or portable C++.
#pragma once

#include <cstdint>

#include "kernels/cpu/cpu_isa.h"
#include "runtime/base/packed_blocks.h"
#include "runtime/base/weight_format.h"

namespace strata {

// y[m, n] (+)= x[m, k] W^T with W packed, x quantized to 8 bits per block of 32 first; with
// `reuse_x`, the previous call's quantized rows are taken when that call (on this thread) had
// the same x, m and k.
void QuantGemm(CpuIsa isa, const WeightFormat& w_format, const float* x, int m, const void* w, int n, int k, float* y,
               bool accumulate, int threads, bool reuse_x = false);

// m rows of k activations (k a multiple of 32) as m x k/32 blocks.
void QuantizeActivations(const float* x, int m, int k, packed::XBlock* out);

// Row `row` of a packed (interleaved) matrix of k columns as floats (d q, d q + m).
void DequantizePackedRow(const WeightFormat& f, const void* w, int64_t row, int k, float* y);

namespace qgemm {
// Weight rows [n0, n1) (n0 a multiple of 8) against activation rows [0, m) (m <= kTileRows), per
// instruction set.
void RowsPortable(uint32_t type, const packed::XBlock* x, int m, const void* w, int n0, int n1, int k, float* y,
                  int64_t ldy, bool accumulate);
void RowsAvx2(uint32_t type, const packed::XBlock* x, int m, const void* w, int n0, int n1, int k, float* y,
              int64_t ldy, bool accumulate);
void RowsAvx512(uint32_t type, const packed::XBlock* x, int m, const void* w, int n0, int n1, int k, float* y,
                int64_t ldy, bool accumulate);
constexpr int kTileRows = 32;
}  // namespace qgemm

}  // namespace strata
