#include "kernels/cpu/cpu_gemm.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

namespace strata {
namespace gemm {

// Half-precision rows widened per OpenBLAS call on the portable path (64 x 3072 floats = 768 KiB).
constexpr int kPortableRows = 64;

void ColumnsPortable(DType t, const float* x, int m, const void* w, int n0, int n1, int k, float* y, int64_t ldy,
                     bool accumulate) {
  const float beta = accumulate ? 1.f : 0.f;
  const size_t row_bytes = static_cast<size_t>(k) * DTypeSize(t);
  auto product = [&](const float* rows, int count, float* out) {
    if (m == 1) {
      cblas_sgemv(CblasRowMajor, CblasNoTrans, count, k, 1.f, rows, k, x, 1, beta, out, 1);
    } else {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, count, k, 1.f, x, k, rows, k, beta, out, ldy);
    }
  };
  const char* base = static_cast<const char*>(w);
  if (t == DType::kF32) return product(reinterpret_cast<const float*>(base + n0 * row_bytes), n1 - n0, y + n0);
  std::vector<float> tile(static_cast<size_t>(std::min(kPortableRows, n1 - n0)) * k);
  for (int r = n0; r < n1; r += kPortableRows) {
    const int rows = std::min(kPortableRows, n1 - r);
    ToFloat(t, base + r * row_bytes, tile.data(), static_cast<size_t>(rows) * k);
    product(tile.data(), rows, y + r);
  }
}

// Column ranges start on multiples of this (every tile width of every instruction set divides
// it), so that threads never split a register tile.
constexpr int kColumnAlign = 24;
// Below this many multiply-adds a second thread costs more than it saves.
constexpr int64_t kMinParallelWork = int64_t{1} << 16;

}  // namespace gemm

void Gemm(CpuIsa isa, DType w_dtype, const float* x, int m, const void* w, int n, int k, float* y, bool accumulate,
          int threads) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {  // an empty sum
    if (!accumulate) std::memset(y, 0, sizeof(float) * static_cast<size_t>(m) * n);
    return;
  }
  auto columns = [&](int n0, int n1) {
    if (n0 >= n1) return;
    switch (isa) {
      case CpuIsa::kAvx512: return gemm::ColumnsAvx512(w_dtype, x, m, w, n0, n1, k, y, n, accumulate);
      case CpuIsa::kAvx2: return gemm::ColumnsAvx2(w_dtype, x, m, w, n0, n1, k, y, n, accumulate);
      case CpuIsa::kPortable: return gemm::ColumnsPortable(w_dtype, x, m, w, n0, n1, k, y, n, accumulate);
    }
  };
  // Parts of whole 24-column blocks, so that no part is empty and no tile is split.
  const int blocks = (n + gemm::kColumnAlign - 1) / gemm::kColumnAlign;
  const int64_t work = static_cast<int64_t>(m) * n * k;
  const int parts = work < gemm::kMinParallelWork ? 1 : std::min(threads, blocks);
  if (parts <= 1) return columns(0, n);
  auto edge = [&](int p) {
    return std::min(n, static_cast<int>(static_cast<int64_t>(blocks) * p / parts) * gemm::kColumnAlign);
  };
  // A loop over the parts (not one part per thread id), so that every part is computed even if
  // OpenMP gives the region fewer threads than asked for.
#pragma omp parallel for num_threads(parts) schedule(static)
  for (int p = 0; p < parts; ++p) columns(edge(p), edge(p + 1));
}

}  // namespace strata
