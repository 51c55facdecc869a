// File: kernels/cpu/cpu_backend.h
// The reference backend: linear layers on oneDNN for many rows (cpu_onednn.h) and on Strata's
// register-tiled GEMM for few (cpu_gemm.h, AVX-512 / AVX2 / portable chosen at run time),
// readable loops elsewhere (OpenMP across rows and heads), all on one OpenMP thread pool. It is the oracle for every CUDA kernel, so clarity wins over
// cleverness outside the GEMM.
#pragma once

#include <mutex>
#include <unordered_map>

#include "kernels/backend.h"
#include "kernels/cpu/cpu_isa.h"
#include "kernels/cpu/cpu_onednn.h"
#include "kernels/cpu/cpu_vector_ops.h"

namespace strata {

class CpuBackend : public Backend {
 public:
  // threads <= 0: the CPUs this process may use, divided among `ranks_on_host` ranks.
  explicit CpuBackend(int threads, int ranks_on_host = 1);
  std::string name() const override { return "cpu"; }
  bool host_addressable() const override { return true; }
  // Half-precision checkpoints stay half precision (half the bytes each decode step reads; the
  // kernels widen to float32 as they read), float32 ones stay float32.
  DType MatrixDType(DType checkpoint) const override { return checkpoint; }
  bool ComputesWith(const WeightFormat& format) const override { return format.plain() || format.packed(); }
  void MemoryInfo(size_t* free_bytes, size_t* total_bytes) override;
  int max_head_dim() const override { return 1 << 20; }
  int threads() const override { return threads_; }
  CpuIsa isa() const { return isa_; }

  absl::StatusOr<DeviceBuffer> Allocate(size_t bytes) override;
  // Large buffers are fresh anonymous mappings of 4 KiB pages, zero already: nothing is touched
  // (or resident) until it is written (KV banks).
  absl::StatusOr<DeviceBuffer> AllocateZeroed(size_t bytes) override;
  void Free(void* ptr) override;
  void CopyToDevice(void* dst, const void* src, size_t bytes) override;
  void CopyToHost(void* dst, const void* src, size_t bytes) override;
  void CopyDeviceToDevice(void* dst, const void* src, size_t bytes) override;
  void Zero(void* dst, size_t bytes) override;
  void Synchronize() override {}
  void ConvertFromFloat(const float* src, void* dst, DType t, size_t n) override { FromFloat(t, src, dst, n); }
  void ConvertToFloat(const void* src, DType t, float* dst, size_t n) override { ToFloat(t, src, dst, n); }
  double MeasureReadBandwidth(size_t bytes) override;
  double MeasureGemmFlops(int m, int n, int k) override;

  void Embedding(const EmbeddingArgs& a) override;
  void Linear(const LinearArgs& a) override;
  void Norm(const NormArgs& a) override;
  void Rotary(const RotaryArgs& a) override;
  void Activation(const ActivationArgs& a) override;
  void Add(float* y, const float* x, size_t n) override;
  void GatherRows(const GatherRowsArgs& a) override;
  void KvWrite(const KvWriteArgs& a) override;
  void Attention(const AttentionArgs& a) override;

 private:
  absl::StatusOr<DeviceBuffer> AllocateMemory(size_t bytes, bool huge_pages);
  void ChunkAttention(const AttentionArgs& a, int seq, int kv_head);
  void AddBias(const LinearArgs& a);

  int threads_;
  CpuIsa isa_;
  // The previous Linear quantized its x (a packed product): only then may the next one, on the
  // same x (LinearArgs::same_x_as_previous), reuse those 8-bit rows.
  bool previous_linear_quantized_x_ = false;
  OneDnnMatmul onednn_;  // products of many rows (prefill, large batches); not on the portable path
  std::mutex mapped_mu_;
  std::unordered_map<void*, size_t> mapped_;  // buffers from mmap, and their mapped length
};

}  // namespace strata
