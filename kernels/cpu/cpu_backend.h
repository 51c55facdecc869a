// File: kernels/cpu/cpu_backend.h
// The reference backend: readable loops (OpenMP across rows and heads) plus OpenBLAS for GEMM.
// It is the oracle for every CUDA kernel, so clarity wins over cleverness here.
#pragma once

#include "kernels/backend.h"

namespace strata {

class CpuBackend : public Backend {
 public:
  explicit CpuBackend(int threads);
  std::string name() const override { return "cpu"; }
  int threads() const { return threads_; }

  absl::StatusOr<DeviceBuffer> Allocate(size_t bytes) override;
  void Free(void* ptr) override;
  void CopyToDevice(void* dst, const void* src, size_t bytes) override;
  void CopyToHost(void* dst, const void* src, size_t bytes) override;
  void CopyDeviceToDevice(void* dst, const void* src, size_t bytes) override;
  void Zero(void* dst, size_t bytes) override;
  void Synchronize() override {}
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
  int threads_;
};

}  // namespace strata
