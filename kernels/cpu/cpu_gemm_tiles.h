// The register-tiled GEMM of the CPU backend, written once over a vector-operations type `S`
// (cpu_simd_avx512.h, cpu_simd_avx2.h) and instantiated in one translation unit per instruction
// set. y = x W^T (+ y) with W in the nn.Linear layout [n, k] and both x and W contiguous along k,
// so no weight is ever repacked: each tile of kRows activation rows x kCols weight rows keeps
// its dot products in vector accumulators along k and reduces them once at the end.
//
// Loop order for a thread's columns [n0, n1): k in blocks (when m is large), then activation
// rows in blocks, then weight tiles, then activation tiles. A weight tile (kCols rows x one k
// block) stays in L1 while every activation tile of the block passes over it, so each weight is
// read from memory once per step at decode batch sizes (m up to kMBlock) and the activation
// block stays in L2.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "runtime/base/dtype.h"

namespace strata {
namespace gemm {
// Internal linkage: each instruction set's translation unit gets its own copies, compiled with
// its own flags (one shared out-of-line copy could carry the wider set's instructions).
namespace {

// k block for large m: a 4 x 512 float activation tile (8 KiB) and a 6 x 512 weight tile (12 KiB
// F32) fit L1 together; at small m the whole row is one block (nothing to reuse).
constexpr int kKBlock = 512;
// Activation rows per block: 256 x 512 floats = 512 KiB stays in L2 while the weights stream.
constexpr int kMBlock = 256;

template <DType T>
inline float WeightAt(const char* row, int64_t j) {
  if constexpr (T == DType::kF32) {
    return reinterpret_cast<const float*>(row)[j];
  } else if constexpr (T == DType::kF16) {
    return F16ToFloat(reinterpret_cast<const uint16_t*>(row)[j]);
  } else {
    return Bf16ToFloat(reinterpret_cast<const uint16_t*>(row)[j]);
  }
}

// One RM x RN tile over k range [k0, k0 + kb): x points at the tile's first activation row (row
// stride ldx), w at its first weight row (row stride row_bytes), y at its first output (row stride
// ldy). `add`: y += result, else y = result.
template <class S, DType T, int RM, int RN>
inline void Tile(const float* x, int64_t ldx, const char* w, size_t row_bytes, int k0, int kb, float* y, int64_t ldy,
                 bool add) {
  using V = typename S::V;
  V acc[RM][RN];
#pragma GCC unroll 8
  for (int i = 0; i < RM; ++i)
#pragma GCC unroll 8
    for (int c = 0; c < RN; ++c) acc[i][c] = S::Zero();
  const int full = k0 + kb / S::kLanes * S::kLanes;
  for (int j = k0; j < full; j += S::kLanes) {
    V xv[RM];
#pragma GCC unroll 8
    for (int i = 0; i < RM; ++i) xv[i] = S::Load(x + i * ldx + j);
#pragma GCC unroll 8
    for (int c = 0; c < RN; ++c) {
      const V wv = S::template LoadWidened<T>(w + c * row_bytes, j);
#pragma GCC unroll 8
      for (int i = 0; i < RM; ++i) acc[i][c] = S::Fma(xv[i], wv, acc[i][c]);
    }
  }
  for (int i = 0; i < RM; ++i) {
    for (int c = 0; c < RN; ++c) {
      float s = S::Sum(acc[i][c]);
      for (int j = full; j < k0 + kb; ++j) s += x[i * ldx + j] * WeightAt<T>(w + c * row_bytes, j);
      float& out = y[i * ldy + c];
      out = add ? out + s : s;
    }
  }
}

// A tile of `rows` (1..S::kRows) activation rows, the row count chosen at run time.
template <class S, DType T, int RN>
inline void TileRows(int rows, const float* x, int64_t ldx, const char* w, size_t row_bytes, int k0, int kb, float* y,
                     int64_t ldy, bool add) {
  switch (rows) {
    case 1: return Tile<S, T, 1, RN>(x, ldx, w, row_bytes, k0, kb, y, ldy, add);
    case 2: return Tile<S, T, 2, RN>(x, ldx, w, row_bytes, k0, kb, y, ldy, add);
    case 3: return Tile<S, T, 3, RN>(x, ldx, w, row_bytes, k0, kb, y, ldy, add);
    default:
      if constexpr (S::kRows >= 4) return Tile<S, T, 4, RN>(x, ldx, w, row_bytes, k0, kb, y, ldy, add);
  }
}

// Output columns [n0, n1) of y [m, ldy] = x [m, k] W^T, W rows of type T.
template <class S, DType T>
void GemmColumns(const float* x, int m, const void* w_base, int n0, int n1, int k, float* y, int64_t ldy,
                 bool accumulate) {
  const char* w = static_cast<const char*>(w_base);
  const size_t row_bytes = static_cast<size_t>(k) * DTypeSize(T);
  auto wrow = [&](int n) { return w + static_cast<size_t>(n) * row_bytes; };
  if (m < S::kRows) {  // decode at small batch: one pass over the weights, wide weight tiles
    constexpr int RN = S::kSmallCols;
    int n = n0;
    for (; n + RN <= n1; n += RN) TileRows<S, T, RN>(m, x, k, wrow(n), row_bytes, 0, k, y + n, ldy, accumulate);
    for (; n < n1; ++n) TileRows<S, T, 1>(m, x, k, wrow(n), row_bytes, 0, k, y + n, ldy, accumulate);
    return;
  }
  constexpr int RM = S::kRows, RN = S::kCols;
  const int kblock = m <= 2 * RM ? k : kKBlock;
  for (int k0 = 0; k0 < k; k0 += kblock) {
    const int kb = std::min(kblock, k - k0);
    const bool add = accumulate || k0 > 0;
    for (int m0 = 0; m0 < m; m0 += kMBlock) {
      const int m1 = std::min(m, m0 + kMBlock);
      auto rows_over = [&](auto tile_cols, int n) {  // every activation tile of the block
        constexpr int C = decltype(tile_cols)::value;
        int i = m0;
        for (; i + RM <= m1; i += RM)
          Tile<S, T, RM, C>(x + static_cast<int64_t>(i) * k, k, wrow(n), row_bytes, k0, kb, y + i * ldy + n, ldy, add);
        if (i < m1)
          TileRows<S, T, C>(m1 - i, x + static_cast<int64_t>(i) * k, k, wrow(n), row_bytes, k0, kb, y + i * ldy + n,
                            ldy, add);
      };
      int n = n0;
      for (; n + RN <= n1; n += RN) rows_over(std::integral_constant<int, RN>(), n);
      for (; n < n1; ++n) rows_over(std::integral_constant<int, 1>(), n);
    }
  }
}

}  // namespace
}  // namespace gemm
}  // namespace strata
