#include "kernels/cpu/cpu_quant_gemm.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

namespace strata {

using packed::I8Block;
using packed::kBlock;
using packed::U4Block;
using packed::XBlock;

void QuantizeActivations(const float* x, int m, int k, XBlock* out) {
  const int blocks = k / kBlock;
  for (int i = 0; i < m; ++i)
    for (int b = 0; b < blocks; ++b) {
      const float* v = x + static_cast<size_t>(i) * k + b * kBlock;
      XBlock& o = out[static_cast<size_t>(i) * blocks + b];
      float amax = 0;
      for (int j = 0; j < kBlock; ++j) amax = std::max(amax, std::fabs(v[j]));
      o.d = amax / 127.f;
      const float inv = amax > 0 ? 127.f / amax : 0.f;
      int sum = 0;
      for (int j = 0; j < kBlock; ++j) {
        o.q[j] = static_cast<int8_t>(std::lround(v[j] * inv));
        sum += o.q[j];
      }
      o.sum = sum;
    }
}

void DequantizePackedRow(const WeightFormat& f, const void* row, int k, float* y) {
  const int blocks = k / kBlock;
  if (f.ggml_type == WeightFormat::kPackedI8) {
    const auto* b = static_cast<const I8Block*>(row);
    for (int i = 0; i < blocks; ++i)
      for (int j = 0; j < kBlock; ++j) y[i * kBlock + j] = b[i].d * static_cast<float>(b[i].q[j]);
  } else {
    const auto* b = static_cast<const U4Block*>(row);
    for (int i = 0; i < blocks; ++i)
      for (int j = 0; j < kBlock / 2; ++j) {
        y[i * kBlock + j] = b[i].d * static_cast<float>(b[i].q[j] & 0xF) + b[i].m;
        y[i * kBlock + j + 16] = b[i].d * static_cast<float>(b[i].q[j] >> 4) + b[i].m;
      }
  }
}

namespace qgemm {

void RowsPortable(uint32_t type, const XBlock* x, int m, const void* w, int n0, int n1, int k, float* y, int64_t ldy,
                  bool accumulate) {
  const int blocks = k / kBlock;
  for (int r = n0; r < n1; ++r)
    for (int i = 0; i < m; ++i) {
      const XBlock* xb = x + static_cast<size_t>(i) * blocks;
      float acc = 0;
      if (type == WeightFormat::kPackedI8) {
        const I8Block* wb = static_cast<const I8Block*>(w) + static_cast<size_t>(r) * blocks;
        for (int b = 0; b < blocks; ++b) {
          int dot = 0;
          for (int j = 0; j < kBlock; ++j) dot += wb[b].q[j] * xb[b].q[j];
          acc += wb[b].d * xb[b].d * static_cast<float>(dot);
        }
      } else {
        const U4Block* wb = static_cast<const U4Block*>(w) + static_cast<size_t>(r) * blocks;
        for (int b = 0; b < blocks; ++b) {
          int dot = 0;
          for (int j = 0; j < kBlock / 2; ++j)
            dot += (wb[b].q[j] & 0xF) * xb[b].q[j] + (wb[b].q[j] >> 4) * xb[b].q[j + 16];
          acc += wb[b].d * xb[b].d * static_cast<float>(dot) + wb[b].m * xb[b].d * static_cast<float>(xb[b].sum);
        }
      }
      float& out = y[static_cast<int64_t>(i) * ldy + r];
      out = accumulate ? out + acc : acc;
    }
}

// Weight rows per part: a multiple of this, so that threads split evenly.
constexpr int kRowAlign = 8;
// Below this many multiply-adds a second thread costs more than it saves.
constexpr int64_t kMinParallelWork = int64_t{1} << 16;

}  // namespace qgemm

void QuantGemm(CpuIsa isa, const WeightFormat& f, const float* x, int m, const void* w, int n, int k, float* y,
               bool accumulate, int threads) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {
    if (!accumulate) std::memset(y, 0, sizeof(float) * static_cast<size_t>(m) * n);
    return;
  }
  const int blocks = k / kBlock;
  thread_local std::vector<XBlock> xq;
  xq.resize(static_cast<size_t>(m) * blocks);
  QuantizeActivations(x, m, k, xq.data());
  const XBlock* xs = xq.data();  // (the calling thread's: xq is thread-local)
  auto rows = [&](int n0, int n1) {
    // Tiles of activation rows that stay in L1 while this part's weight rows stream past them.
    for (int i0 = 0; i0 < m; i0 += qgemm::kTileRows) {
      const int mt = std::min(qgemm::kTileRows, m - i0);
      const XBlock* xt = xs + static_cast<size_t>(i0) * blocks;
      float* yt = y + static_cast<size_t>(i0) * n;
      switch (isa) {
        case CpuIsa::kAvx512: qgemm::RowsAvx512(f.ggml_type, xt, mt, w, n0, n1, k, yt, n, accumulate); break;
        case CpuIsa::kAvx2: qgemm::RowsAvx2(f.ggml_type, xt, mt, w, n0, n1, k, yt, n, accumulate); break;
        case CpuIsa::kPortable: qgemm::RowsPortable(f.ggml_type, xt, mt, w, n0, n1, k, yt, n, accumulate); break;
      }
    }
  };
  const int chunks = (n + qgemm::kRowAlign - 1) / qgemm::kRowAlign;
  const int64_t work = static_cast<int64_t>(m) * n * k;
  const int parts = work < qgemm::kMinParallelWork ? 1 : std::min(threads, chunks);
  if (parts <= 1) return rows(0, n);
  auto edge = [&](int p) {
    return std::min(n, static_cast<int>(static_cast<int64_t>(chunks) * p / parts) * qgemm::kRowAlign);
  };
#pragma omp parallel for num_threads(parts) schedule(static)
  for (int p = 0; p < parts; ++p) rows(edge(p), edge(p + 1));
}

}  // namespace strata
