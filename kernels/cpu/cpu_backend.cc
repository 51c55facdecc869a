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

#include <sched.h>
#include <sys/mman.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "kernels/cpu/cpu_gemm.h"
#include "kernels/cpu/cpu_quant_gemm.h"
#include "runtime/base/status.h"

namespace strata {

constexpr size_t kHugePage = size_t{2} << 20;

namespace {

// The default thread count: the CPUs this process may run on (taskset, cgroups, mpirun's
// binding), shared with the other ranks on the host only when the launcher left every rank the
// whole machine (a rank already bound to its own cores keeps them all).
int DefaultThreads(int ranks_on_host) {
  const int online = std::max(1, static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN)));
  cpu_set_t set;
  const int mine = sched_getaffinity(0, sizeof(set), &set) == 0 ? std::max(1, CPU_COUNT(&set)) : online;
  return mine < online ? mine : std::max(1, mine / std::max(1, ranks_on_host));
}

}  // namespace

CpuBackend::CpuBackend(int threads, int ranks_on_host) : isa_(DetectCpuIsa()) {
  threads_ = threads > 0 ? threads : DefaultThreads(ranks_on_host);
  // One thread pool: every parallel loop (GEMM, attention, element-wise) runs on OpenMP's team;
  // OpenBLAS, used on the portable path only, runs single-threaded inside those threads, so its
  // own threads stay parked and never spin against ours.
  omp_set_num_threads(threads_);
  openblas_set_num_threads(1);
}

absl::StatusOr<DeviceBuffer> CpuBackend::Allocate(size_t bytes) { return AllocateMemory(bytes, true); }

absl::StatusOr<DeviceBuffer> CpuBackend::AllocateZeroed(size_t bytes) {
  absl::StatusOr<DeviceBuffer> b = AllocateMemory(bytes, false);
  if (b.ok() && bytes < kHugePage) Zero(b->get(), bytes);  // small ones come from the heap
  return b;
}

absl::StatusOr<DeviceBuffer> CpuBackend::AllocateMemory(size_t bytes, bool huge_pages) {
  if (bytes < kHugePage) {
    const size_t rounded = (bytes + 63) / 64 * 64;
    void* p = rounded == 0 ? nullptr : std::aligned_alloc(64, rounded);
    if (rounded != 0 && p == nullptr)
      return absl::ResourceExhaustedError(absl::StrCat("cpu: cannot allocate ", bytes, " bytes"));
    return DeviceBuffer(this, p, bytes);
  }
  // Large buffers get fresh pages from the kernel: memory recycled by malloc is already mapped
  // with 4 KiB pages. Weights and activations are marked for transparent huge pages before
  // anything touches them: on the development VM a decode step read 4 KiB-page weights at about
  // 28 GB/s and huge-page ones at about 40 (nested paging makes each TLB miss expensive). The
  // mapping starts on a huge-page boundary and ends on the next 4 KiB one: rounding every buffer
  // up to whole huge pages cost a Pythia-160M checkpoint 14% more resident memory than its
  // weights. KV banks keep 4 KiB pages, so a budget becomes resident only as sequences fill it
  // (a first write to each of 24 banks made 48 MiB resident with huge pages).
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const size_t length = (bytes + page - 1) / page * page;
  char* raw = static_cast<char*>(
      mmap(nullptr, length + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (raw == MAP_FAILED)
    return absl::ResourceExhaustedError(absl::StrCat("cpu: cannot map ", bytes, " bytes: ", std::strerror(errno)));
  char* p = reinterpret_cast<char*>((reinterpret_cast<uintptr_t>(raw) + kHugePage - 1) / kHugePage * kHugePage);
  if (p > raw) munmap(raw, static_cast<size_t>(p - raw));                                 // the slack before
  munmap(p + length, static_cast<size_t>(raw + kHugePage - p));                     // and after
  madvise(p, length, huge_pages ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);  // advice only
  {
    std::lock_guard<std::mutex> lock(mapped_mu_);
    mapped_[p] = length;
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
  const size_t row_bytes = static_cast<size_t>(a.table_format.Bytes(1, a.hidden));
  for (int t = 0; t < a.tokens; ++t) {
    float* y = a.y + static_cast<size_t>(t) * a.hidden;
    const int row = a.ids[t] - a.vocab_begin;
    if (row < 0 || row >= a.vocab_rows) {  // another tensor slice holds this token's row
      std::memset(y, 0, sizeof(float) * a.hidden);
    } else {
      const char* from = static_cast<const char*>(a.table) + static_cast<size_t>(row) * row_bytes;
      if (a.table_format.packed())
        DequantizePackedRow(a.table_format, a.table, row, a.hidden, y);
      else
        ToFloat(a.table_format.dtype, from, y, a.hidden);
    }
  }
}

void CpuBackend::Linear(const LinearArgs& a) {
  const bool reuse_x = a.same_x_as_previous && previous_linear_quantized_x_;
  previous_linear_quantized_x_ = a.w_format.packed();
  if (a.w_format.packed()) {
    QuantGemm(isa_, a.w_format, a.x, a.m, a.w, a.n, a.k, a.y, a.accumulate, threads_, reuse_x);
    AddBias(a);
    return;
  }
  // Many rows: oneDNN's JIT kernels (cpu_onednn.h has the measurements), in whole chunks; the
  // remaining rows, and every product on the portable path, on Strata's own kernels.
  const int done = isa_ == CpuIsa::kPortable ? 0 : onednn_.Run(a.w_format.dtype, a.x, a.m, a.w, a.n, a.k, a.y, a.accumulate);
  if (done < a.m)
    Gemm(isa_, a.w_format.dtype, a.x + static_cast<size_t>(done) * a.k, a.m - done, a.w, a.n, a.k,
         a.y + static_cast<size_t>(done) * a.n, a.accumulate, threads_);
  AddBias(a);
}

void CpuBackend::AddBias(const LinearArgs& a) {
  if (!a.bias) return;
  for (int i = 0; i < a.m; ++i) {
    float* row = a.y + static_cast<size_t>(i) * a.n;
    for (int j = 0; j < a.n; ++j) row[j] += a.bias[j];
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

// How a read loop asks for memory ahead of use. CPUs differ in which reads at full speed: on the
// AMD Zen 5 development VM a non-temporal prefetch 4 KiB ahead was needed (a plain loop read 27
// GB/s, this 44); on Intel Xeons `prefetchnta` fills L1 only and bypasses L2, so the same loop
// can read at half the plain loop's rate. The probe takes the best, so its floor is never below
// what a simple loop reads.
enum class Prefetch { kNone, kNta, kT0 };

// XOR of a range: associative, so it vectorizes; compiled for the widest vector unit present
// (function multiversioning), a cache line per iteration.
template <Prefetch P>
__attribute__((target_clones("avx512f", "avx2", "default"))) uint64_t XorRange(const uint64_t* p, size_t n) {
  uint64_t acc = 0;
  const size_t lines = n / 8;
  for (size_t l = 0; l < lines; ++l) {
    const uint64_t* q = p + l * 8;
    // Past the end is harmless: prefetches never fault.
    if constexpr (P == Prefetch::kNta) __builtin_prefetch(q + 512, 0, 0);
    if constexpr (P == Prefetch::kT0) __builtin_prefetch(q + 128, 0, 3);
    for (int j = 0; j < 8; ++j) acc ^= q[j];
  }
  for (size_t i = lines * 8; i < n; ++i) acc ^= p[i];
  return acc;
}

uint64_t XorRange(Prefetch p, const uint64_t* q, size_t n) {
  switch (p) {
    case Prefetch::kNone: return XorRange<Prefetch::kNone>(q, n);
    case Prefetch::kNta: return XorRange<Prefetch::kNta>(q, n);
    case Prefetch::kT0: return XorRange<Prefetch::kT0>(q, n);
  }
  return 0;
}

}  // namespace

double CpuBackend::MeasureReadBandwidth(size_t bytes) {
  // The buffer comes from Allocate, as weights do (huge pages). Every thread reads
  // its share; the best of each read method and repetition counts.
  const size_t n = bytes / sizeof(uint64_t);
  absl::StatusOr<DeviceBuffer> memory = Allocate(n * sizeof(uint64_t));
  if (!memory.ok()) return 0;  // no figure rather than a wrong one
  uint64_t* buf = static_cast<uint64_t*>(memory->get());
  for (size_t i = 0; i < n; ++i) buf[i] = i * 0x9E3779B97F4A7C15ull;
  double best = 0;
  volatile uint64_t sink = 0;
  for (int rep = 0; rep < 3; ++rep) {
    for (Prefetch method : {Prefetch::kNone, Prefetch::kNta, Prefetch::kT0}) {
      const auto t0 = std::chrono::steady_clock::now();
      uint64_t acc = 0;
#pragma omp parallel num_threads(threads_) reduction(^ : acc)
      {
        const size_t parts = static_cast<size_t>(omp_get_num_threads()), me = static_cast<size_t>(omp_get_thread_num());
        const size_t begin = n * me / parts, end = n * (me + 1) / parts;
        acc ^= XorRange(method, buf + begin, end - begin);
      }
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      sink = sink ^ acc;
      best = std::max(best, static_cast<double>(n * sizeof(uint64_t)) / s);
    }
  }
  return best;
}

double CpuBackend::MeasureGemmFlops(int m, int n, int k) {
  // The kernel the Linear layers use, on float32 weights.
  std::vector<float> a(static_cast<size_t>(m) * k, 0.5f), b(static_cast<size_t>(n) * k, 0.25f), c(static_cast<size_t>(m) * n);
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    Gemm(isa_, DType::kF32, a.data(), m, b.data(), n, k, c.data(), false, threads_);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, 2.0 * m * n * k / s);
  }
  return best;
}

}  // namespace strata
