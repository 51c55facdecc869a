#include "kernels/cpu/cpu_quant_gemm.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "runtime/base/dtype.h"

namespace strata {

using packed::kBlock;
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
      for (int j = 0; j < kBlock; ++j) {  // to nearest (even on ties), in registers
        o.q[j] = static_cast<int8_t>(static_cast<int>(std::nearbyint(v[j] * inv)));
        sum += o.q[j];
      }
      o.s = o.d * static_cast<float>(sum);
      int low = 0;
      for (int j = 0; j < kBlock / 2; ++j) low += o.q[j];
      o.sum[0] = low;
      o.sum[1] = sum - low;
    }
}

void DequantizePackedRow(const WeightFormat& f, const void* w, int64_t row, int k, float* y) {
  packed::DequantizeInterleavedRow(f.ggml_type, w, row, k, y);
}

namespace qgemm {

void RowsPortable(uint32_t type, const XBlock* x, int m, const void* w, int n0, int n1, int k, float* y, int64_t ldy,
                  bool accumulate) {
  const int blocks = k / kBlock;
  for (int r = n0; r < n1; ++r) {
    const int64_t g = r / packed::kGroup;
    const int j = r % packed::kGroup;
    for (int i = 0; i < m; ++i) {
      const XBlock* xb = x + static_cast<size_t>(i) * blocks;
      float acc = 0;
      for (int b = 0; b < blocks; ++b) {
        int dot = 0;
        if (type == WeightFormat::kPackedI8) {
          const packed::I8Group& wg = static_cast<const packed::I8Group*>(w)[g * blocks + b];
          for (int s = 0; s < 8; ++s)
            for (int e = 0; e < 4; ++e) dot += (wg.q[s * 32 + j * 4 + e] - 128) * xb[b].q[4 * s + e];
          acc += F16ToFloat(wg.d[j]) * xb[b].d * static_cast<float>(dot);
        } else if (type == WeightFormat::kPackedI8x16) {
          const packed::I8PairGroup& wg = static_cast<const packed::I8PairGroup*>(w)[g * blocks + b];
          int hi = 0;
          for (int s = 0; s < 8; ++s)
            for (int e = 0; e < 4; ++e) (s < 4 ? dot : hi) += (wg.q[s * 32 + j * 4 + e] - 128) * xb[b].q[4 * s + e];
          acc += F16ToFloat(wg.d_lo[j]) * xb[b].d * static_cast<float>(dot) + F16ToFloat(wg.d_hi[j]) * xb[b].d * static_cast<float>(hi);
        } else {
          const packed::U4Group& wg = static_cast<const packed::U4Group*>(w)[g * blocks + b];
          for (int s = 0; s < 4; ++s)
            for (int e = 0; e < 4; ++e) {
              const uint8_t v = wg.q[s * 32 + j * 4 + e];
              dot += (v & 0xF) * xb[b].q[4 * s + e] + (v >> 4) * xb[b].q[16 + 4 * s + e];
            }
          acc += F16ToFloat(wg.d[j]) * xb[b].d * static_cast<float>(dot) + F16ToFloat(wg.m[j]) * xb[b].s;
        }
      }
      float& out = y[static_cast<int64_t>(i) * ldy + r];
      out = accumulate ? out + acc : acc;
    }
  }
}

// Weight rows per part: a multiple of this, so that threads split evenly.
constexpr int kRowAlign = 8;
// Below this many multiply-adds a second thread costs more than it saves.
constexpr int64_t kMinParallelWork = int64_t{1} << 16;

}  // namespace qgemm

void QuantGemm(CpuIsa isa, const WeightFormat& f, const float* x, int m, const void* w, int n, int k, float* y,
               bool accumulate, int threads, bool reuse_x) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {
    if (!accumulate) std::memset(y, 0, sizeof(float) * static_cast<size_t>(m) * n);
    return;
  }
  const int blocks = k / kBlock;
  thread_local std::vector<XBlock> xq;
  thread_local struct { const float* x = nullptr; int m = -1, k = -1; } quantized;  // what xq holds
  if (!(reuse_x && quantized.x == x && quantized.m == m && quantized.k == k)) {
    xq.resize(static_cast<size_t>(m) * blocks);
    QuantizeActivations(x, m, k, xq.data());
    quantized = {x, m, k};
  }
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
