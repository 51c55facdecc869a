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
#include <cstring>

#include "runtime/base/dtype.h"

namespace strata {
namespace gemm {
// Internal linkage: each instruction set's translation unit gets its own copies, compiled with
// its own flags (one shared out-of-line copy could carry the wider set's instructions).
namespace {

// Longest k block for large m: a 4 x 1024 float activation tile (16 KiB) and a 6 x 1024 weight
// tile (24 KiB F32) fit a 48 KiB L1 together; at small m the whole row is one block. Measured on
// the Intel Xeon VM, F32, m = 512, one thread: blocks of 512 ran at 83 GFLOP/s, 1024 at 108
// (fewer horizontal sums per tile), whole rows of 3072 at 72 (the tiles left L1).
constexpr int kKBlock = 1024;
// Activation rows per block: 256 x 512 floats = 512 KiB stays in L2 while the weights stream.
constexpr int kMBlock = 256;

// One weight widened (the k tail), written here rather than calling dtype.h's inline helpers: an
// out-of-line copy of those compiled with this file's flags could be the one the linker keeps.
template <DType T>
inline float WeightAt(const char* row, int64_t j) {
  if constexpr (T == DType::kF32) {
    return reinterpret_cast<const float*>(row)[j];
  } else {
    uint16_t h;
    std::memcpy(&h, row + 2 * j, 2);
    if constexpr (T == DType::kF16) {
      _Float16 f;
      std::memcpy(&f, &h, 2);
      return static_cast<float>(f);
    } else {
      const uint32_t u = static_cast<uint32_t>(h) << 16;
      float f;
      std::memcpy(&f, &u, 4);
      return f;
    }
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

// One weight row dotted with one activation row, four vectors of k per step into four
// accumulators: W is read as one sequential stream.
template <class S, DType T>
inline float RowDot(const float* x, const char* w, int k) {
  using V = typename S::V;
  constexpr int L = S::kLanes;
  V a0 = S::Zero(), a1 = a0, a2 = a0, a3 = a0;
  int j = 0;
  for (; j + 4 * L <= k; j += 4 * L) {
    a0 = S::Fma(S::Load(x + j), S::template LoadWidened<T>(w, j), a0);
    a1 = S::Fma(S::Load(x + j + L), S::template LoadWidened<T>(w, j + L), a1);
    a2 = S::Fma(S::Load(x + j + 2 * L), S::template LoadWidened<T>(w, j + 2 * L), a2);
    a3 = S::Fma(S::Load(x + j + 3 * L), S::template LoadWidened<T>(w, j + 3 * L), a3);
  }
  for (; j + L <= k; j += L) a0 = S::Fma(S::Load(x + j), S::template LoadWidened<T>(w, j), a0);
  float s = S::Sum(S::Add(S::Add(a0, a1), S::Add(a2, a3)));
  for (; j < k; ++j) s += x[j] * WeightAt<T>(w, j);
  return s;
}

// A tile of `rows` (1..S::kRows) activation rows, the row count chosen at run time.
template <class S, DType T, int RN>
inline void TileRows(int rows, const float* x, int64_t ldx, const char* w, size_t row_bytes, int k0, int kb, float* y,
                     int64_t ldy, bool add) {
  static_assert(S::kRows <= 4, "TileRows covers tiles of up to 4 rows");
  switch (rows) {
    case 1: return Tile<S, T, 1, RN>(x, ldx, w, row_bytes, k0, kb, y, ldy, add);
    case 2: return Tile<S, T, 2, RN>(x, ldx, w, row_bytes, k0, kb, y, ldy, add);
    case 3: return Tile<S, T, 3, RN>(x, ldx, w, row_bytes, k0, kb, y, ldy, add);
    case 4:
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
    // Batch-1 decode over half-precision weights: one row at a time. Measured on the Intel Xeon
    // VM (AVX-512, Pythia-160M LM head, 1 thread): BF16 10.2 GB/s with 8-row tiles, 13.2 one row
    // at a time; F16 9.4 and 13.9 (the probe: 14.2). Interleaving the reads of 8 rows 1.5 KiB
    // apart defeats the prefetchers once they share pages; F32 rows are 3 KiB and 8-row tiles read
    // them at 15.3 (one row: 14.0). The earlier kernel's one-row-at-a-time also led on a Zen 5 VM.
    if (T != DType::kF32 && m == 1) {
      for (; n < n1; ++n) {
        const float d = RowDot<S, T>(x, wrow(n), k);
        y[n] = accumulate ? y[n] + d : d;
      }
      return;
    }
    for (; n + RN <= n1; n += RN) TileRows<S, T, RN>(m, x, k, wrow(n), row_bytes, 0, k, y + n, ldy, accumulate);
    for (; n < n1; ++n) TileRows<S, T, 1>(m, x, k, wrow(n), row_bytes, 0, k, y + n, ldy, accumulate);
    return;
  }
  constexpr int RM = S::kRows, RN = S::kCols;
  // Equal blocks of at most kKBlock (a multiple of the vector width): 1100 runs as 2 x 560, not
  // 1024 + 76.
  const int blocks = m <= 2 * RM ? 1 : (k + kKBlock - 1) / kKBlock;
  const int kblock = blocks == 1 ? k : ((k + blocks - 1) / blocks + S::kLanes - 1) / S::kLanes * S::kLanes;
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
