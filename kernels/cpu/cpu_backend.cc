#include "kernels/cpu/cpu_backend.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <vector>
#include <cstdlib>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <thread>

#include <sys/mman.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "runtime/base/status.h"

namespace strata {

constexpr size_t kHugePage = size_t{2} << 20;

CpuBackend::CpuBackend(int threads) : isa_(DetectCpuIsa()) {
  threads_ = threads > 0 ? threads : static_cast<int>(std::thread::hardware_concurrency());
  if (threads_ < 1) threads_ = 1;
  omp_set_num_threads(threads_);
  openblas_set_num_threads(threads_);
}

absl::StatusOr<DeviceBuffer> CpuBackend::Allocate(size_t bytes) {
  if (bytes < kHugePage) {
    const size_t rounded = (bytes + 63) / 64 * 64;
    void* p = rounded == 0 ? nullptr : std::aligned_alloc(64, rounded);
    if (rounded != 0 && p == nullptr)
      return absl::ResourceExhaustedError(absl::StrCat("cpu: cannot allocate ", bytes, " bytes"));
    return DeviceBuffer(this, p, bytes);
  }
  // Large buffers (weights, KV banks) get fresh pages from the kernel, marked for transparent
  // huge pages before anything touches them: memory recycled by malloc is already mapped with
  // 4 KiB pages. On the development VM a decode step read 4 KiB-page weights at about 28 GB/s and
  // huge-page ones at about 40 (nested paging makes each TLB miss expensive).
  const size_t rounded = (bytes + kHugePage - 1) / kHugePage * kHugePage;
  void* p = mmap(nullptr, rounded, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED)
    return absl::ResourceExhaustedError(absl::StrCat("cpu: cannot map ", bytes, " bytes: ", std::strerror(errno)));
  madvise(p, rounded, MADV_HUGEPAGE);  // advice only: without THP the pages stay 4 KiB
  {
    std::lock_guard<std::mutex> lock(mapped_mu_);
    mapped_[p] = rounded;
  }
  return DeviceBuffer(this, p, bytes);
}

void CpuBackend::Free(void* ptr) {
  {
    std::lock_guard<std::mutex> lock(mapped_mu_);
    auto it = mapped_.find(ptr);
    if (it != mapped_.end()) {
      munmap(ptr, it->second);
      mapped_.erase(it);
      return;
    }
  }
  std::free(ptr);
}
void CpuBackend::CopyToDevice(void* dst, const void* src, size_t bytes) { if (bytes) std::memcpy(dst, src, bytes); }
void CpuBackend::CopyToHost(void* dst, const void* src, size_t bytes) { if (bytes) std::memcpy(dst, src, bytes); }
void CpuBackend::CopyDeviceToDevice(void* dst, const void* src, size_t bytes) { if (bytes) std::memmove(dst, src, bytes); }
void CpuBackend::Zero(void* dst, size_t bytes) { if (bytes) std::memset(dst, 0, bytes); }

void CpuBackend::MemoryInfo(size_t* free_bytes, size_t* total_bytes) {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  *free_bytes = static_cast<size_t>(sysconf(_SC_AVPHYS_PAGES)) * page;
  *total_bytes = static_cast<size_t>(sysconf(_SC_PHYS_PAGES)) * page;
}

void CpuBackend::Embedding(const EmbeddingArgs& a) {
  const size_t row_bytes = static_cast<size_t>(a.hidden) * DTypeSize(a.table_dtype);
  for (int t = 0; t < a.tokens; ++t) {
    float* y = a.y + static_cast<size_t>(t) * a.hidden;
    const int row = a.ids[t] - a.vocab_begin;
    if (row < 0 || row >= a.vocab_rows) {  // another tensor slice holds this token's row
      std::memset(y, 0, sizeof(float) * a.hidden);
    } else {
      ToFloat(a.table_dtype, static_cast<const char*>(a.table) + static_cast<size_t>(row) * row_bytes, y, a.hidden);
    }
  }
}

// Weight rows widened per SGEMM call for half-precision weights: 256 x 768 floats are 768 KiB,
// within this CPU's L2, and the GEMM's m rows amortize the widening.
constexpr int kWidenTileRows = 256;

void CpuBackend::Linear(const LinearArgs& a) {
  const float beta = a.accumulate ? 1.f : 0.f;
  if (a.m == 1) {
    MatVec(isa_, a.w_dtype, a.w, a.n, a.k, a.x, a.y, a.accumulate, threads_);
  } else if (a.w_dtype == DType::kF32) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, a.m, a.n, a.k, 1.f, a.x, a.k, static_cast<const float*>(a.w),
                a.k, beta, a.y, a.n);
  } else {
    std::vector<float> tile(static_cast<size_t>(std::min(kWidenTileRows, a.n)) * a.k);
    for (int r = 0; r < a.n; r += kWidenTileRows) {
      const int rows = std::min(kWidenTileRows, a.n - r);
      Widen(isa_, a.w_dtype, static_cast<const char*>(a.w) + static_cast<size_t>(r) * a.k * DTypeSize(a.w_dtype),
            tile.data(), static_cast<size_t>(rows) * a.k);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, a.m, rows, a.k, 1.f, a.x, a.k, tile.data(), a.k, beta,
                  a.y + r, a.n);
    }
  }
  if (a.bias) {
    for (int i = 0; i < a.m; ++i) {
      float* row = a.y + static_cast<size_t>(i) * a.n;
      for (int j = 0; j < a.n; ++j) row[j] += a.bias[j];
    }
  }
}

void CpuBackend::Norm(const NormArgs& a) {
#pragma omp parallel for num_threads(threads_) if (a.rows > 4)
  for (int r = 0; r < a.rows; ++r) {
    const float* x = a.x + static_cast<size_t>(r) * a.cols;
    float* y = a.y + static_cast<size_t>(r) * a.cols;
    if (a.type == NormType::kLayerNorm) {
      double mean = 0, var = 0;
      for (int c = 0; c < a.cols; ++c) mean += x[c];
      mean /= a.cols;
      for (int c = 0; c < a.cols; ++c) var += (x[c] - mean) * (x[c] - mean);
      var /= a.cols;
      const float inv = static_cast<float>(1.0 / std::sqrt(var + a.eps));
      for (int c = 0; c < a.cols; ++c)
        y[c] = (x[c] - static_cast<float>(mean)) * inv * a.weight[c] + (a.bias ? a.bias[c] : 0.f);
    } else {
      double ss = 0;
      for (int c = 0; c < a.cols; ++c) ss += static_cast<double>(x[c]) * x[c];
      const float inv = static_cast<float>(1.0 / std::sqrt(ss / a.cols + a.eps));
      for (int c = 0; c < a.cols; ++c) y[c] = x[c] * inv * a.weight[c];
    }
  }
}

void CpuBackend::Rotary(const RotaryArgs& a) {
  const int half = a.rope.rotary_dims / 2;
#pragma omp parallel for num_threads(threads_) if (a.tokens > 4)
  for (int t = 0; t < a.tokens; ++t) {
    const float* c = a.rope.cos + static_cast<size_t>(a.positions[t]) * half;
    const float* s = a.rope.sin + static_cast<size_t>(a.positions[t]) * half;
    for (int h = 0; h < a.heads; ++h) {
      float* x = a.x + (static_cast<size_t>(t) * a.heads + h) * a.head_dim;
      for (int i = 0; i < half; ++i) {  // rotate_half: (x1, x2) -> (x1 c - x2 s, x2 c + x1 s)
        const float x1 = x[i], x2 = x[i + half];
        x[i] = x1 * c[i] - x2 * s[i];
        x[i + half] = x2 * c[i] + x1 * s[i];
      }
    }
  }
}

void CpuBackend::Activation(const ActivationArgs& a) {
#pragma omp parallel for num_threads(threads_) if (a.rows > 4)
  for (int r = 0; r < a.rows; ++r) {
    float* y = a.y + static_cast<size_t>(r) * a.cols;
    if (a.type == ActivationType::kSwiGlu) {
      const float* g = a.x + static_cast<size_t>(r) * 2 * a.cols;
      const float* u = g + a.cols;
      for (int c = 0; c < a.cols; ++c) y[c] = g[c] / (1.f + std::exp(-g[c])) * u[c];
    } else {
      const float* x = a.x + static_cast<size_t>(r) * a.cols;
      if (a.type == ActivationType::kGeluErf) {
        GeluErf(isa_, x, y, a.cols);
      } else {
        for (int c = 0; c < a.cols; ++c) {
          const float v = x[c];
          y[c] = 0.5f * v * (1.f + std::tanh(0.79788456080286536f * (v + 0.044715f * v * v * v)));
        }
      }
    }
  }
}

void CpuBackend::Add(float* y, const float* x, size_t n) {
  for (size_t i = 0; i < n; ++i) y[i] += x[i];
}

void CpuBackend::GatherRows(const GatherRowsArgs& a) {
  for (int i = 0; i < a.count; ++i)
    std::memcpy(a.dst + static_cast<size_t>(i) * a.cols, a.src + static_cast<size_t>(a.rows[i]) * a.cols,
                sizeof(float) * a.cols);
}

namespace {

// XOR of a range: associative, so it vectorizes; compiled for the widest vector unit present
// (function multiversioning), a cache line per iteration with a software prefetch 4 KiB ahead,
// so that it reads at the memory's speed (a plain loop reached about 27 GB/s here, this about 44).
__attribute__((target_clones("avx512f", "avx2", "default"))) uint64_t XorRange(const uint64_t* p, size_t n) {
  uint64_t acc = 0;
  const size_t lines = n / 8;
  for (size_t l = 0; l < lines; ++l) {
    const uint64_t* q = p + l * 8;
    __builtin_prefetch(q + 512, 0, 0);  // past the end is harmless: prefetches never fault
    for (int j = 0; j < 8; ++j) acc ^= q[j];
  }
  for (size_t i = lines * 8; i < n; ++i) acc ^= p[i];
  return acc;
}

}  // namespace

double CpuBackend::MeasureReadBandwidth(size_t bytes) {
  // Integer XOR is associative, so the compiler vectorizes the loop: it runs at memory speed.
  // The buffer comes from Allocate, as weights and KV do (same page size).
  const size_t n = bytes / sizeof(uint64_t);
  absl::StatusOr<DeviceBuffer> memory = Allocate(n * sizeof(uint64_t));
  if (!memory.ok()) return 0;  // no figure rather than a wrong one
  uint64_t* buf = static_cast<uint64_t*>(memory->get());
  for (size_t i = 0; i < n; ++i) buf[i] = i * 0x9E3779B97F4A7C15ull;
  double best = 0;
  volatile uint64_t sink = 0;
  for (int rep = 0; rep < 5; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    uint64_t acc = 0;
#pragma omp parallel num_threads(threads_) reduction(^ : acc)
    {
      const size_t parts = static_cast<size_t>(omp_get_num_threads()), me = static_cast<size_t>(omp_get_thread_num());
      const size_t begin = n * me / parts, end = n * (me + 1) / parts;
      acc ^= XorRange(buf + begin, end - begin);
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    sink = sink ^ acc;
    best = std::max(best, static_cast<double>(n * sizeof(uint64_t)) / s);
  }
  return best;
}

double CpuBackend::MeasureGemmFlops(int m, int n, int k) {
  std::vector<float> a(static_cast<size_t>(m) * k, 0.5f), b(static_cast<size_t>(n) * k, 0.25f), c(static_cast<size_t>(m) * n);
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.f, a.data(), k, b.data(), k, 0.f, c.data(), n);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, 2.0 * m * n * k / s);
  }
  return best;
}

}  // namespace strata
