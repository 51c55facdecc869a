// File: kernels/cuda/cuda_backend.h
// The CUDA backend: one device, one stream, cuBLAS for the linear layers (weights in BF16/F16,
// FP32 accumulation; block-quantized weights through cuda_packed.cu), hand-written kernels for
// everything else. Activations stay float32 as on
// the CPU reference; a GEMM's input is rounded to the weights' type just before the product.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <functional>

#include "kernels/backend.h"

namespace strata {

class CudaBackend : public Backend {
 public:
  // Binds the calling thread to `options.device_index`.
  static absl::StatusOr<std::unique_ptr<Backend>> Create(const BackendOptions& options);
  ~CudaBackend() override;

  std::string name() const override { return "cuda"; }
  bool host_addressable() const override { return false; }
  // Half-precision checkpoints stay as they are; float32 ones are rounded to BF16 on load.
  DType MatrixDType(DType checkpoint) const override {
    return checkpoint == DType::kF16 ? DType::kF16 : DType::kBF16;
  }
  void MemoryInfo(size_t* free_bytes, size_t* total_bytes) override;
  int RanksSharingMemory(int ranks_on_host) const override;
  int max_head_dim() const override { return 256; }  // cuda_attention.cu's kMaxHeadDim
  // Block-quantized weights stay packed on the device too (cuda_packed.cu).
  bool ComputesWith(const WeightFormat& format) const override { return format.plain() || format.packed(); }

  absl::StatusOr<DeviceBuffer> Allocate(size_t bytes) override;
  void Free(void* ptr) override;
  void CopyToDevice(void* dst, const void* src, size_t bytes) override;
  void CopyToHost(void* dst, const void* src, size_t bytes) override;
  void CopyDeviceToDevice(void* dst, const void* src, size_t bytes) override;
  void Zero(void* dst, size_t bytes) override;
  void Synchronize() override;
  void* native_stream() override { return stream_; }
  void ConvertFromFloat(const float* src, void* dst, DType t, size_t n) override;
  void ConvertToFloat(const void* src, DType t, float* dst, size_t n) override;

  void Embedding(const EmbeddingArgs& a) override;
  void Linear(const LinearArgs& a) override;
  void Norm(const NormArgs& a) override;
  void Rotary(const RotaryArgs& a) override;
  void Activation(const ActivationArgs& a) override;
  void Add(float* y, const float* x, size_t n) override;
  void GatherRows(const GatherRowsArgs& a) override;
  void KvWrite(const KvWriteArgs& a) override;
  void Attention(const AttentionArgs& a) override;

  double MeasureReadBandwidth(size_t bytes) override;
  double MeasureGemmFlops(int m, int n, int k) override;

 private:
  CudaBackend(int device, cudaStream_t stream, cublasHandle_t cublas, int sm_count)
      : device_(device), stream_(stream), cublas_(cublas), sm_count_(sm_count) {}
  // Makes this backend's device current on the calling thread (engines may be driven from a
  // thread other than the one that created them).
  void Bind() const;
  // The shortest of five timed runs of `launch` on the stream, in milliseconds (0 if none timed).
  float BestMilliseconds(const std::function<void()>& launch);
  // Device scratch of at least `bytes`, reused between calls (grown with the stream drained).
  void* Scratch(void** buffer, size_t* capacity, size_t bytes);
  // y[m, n] (leading dimension ldy) (+)= x[m, k] W[n, k]^T with W plain in `w_dtype`: cuBLAS.
  void PlainGemm(const float* x, const void* w, DType w_dtype, float* y, int m, int n, int k, int ldy, bool accumulate);
  // The same with x already in `w_dtype` (InWeightType: float x rounded into scratch).
  void TypedGemm(const void* x, const void* w, DType w_dtype, float* y, int m, int n, int k, int ldy, bool accumulate);
  const void* InWeightType(const float* x, DType w_dtype, size_t count);
  void AddBias(float* y, const float* bias, int m, int n);
  // Linear and Embedding on packed weights (cuda_packed.cu).
  void PackedLinear(const LinearArgs& a);
  void PackedEmbedding(const EmbeddingArgs& a);

  int device_;
  cudaStream_t stream_;
  cublasHandle_t cublas_;
  int sm_count_;
  void* gemm_input_ = nullptr;  // a GEMM's activations in the weights' type
  size_t gemm_input_bytes_ = 0;
  void* packed_tile_ = nullptr;  // packed weight rows dequantized to BF16 for one cuBLAS product
  size_t packed_tile_bytes_ = 0;
  void* attention_partials_ = nullptr;  // split-K partial results
  size_t attention_partials_bytes_ = 0;
};

}  // namespace strata
