// Row-wise and element-wise ops of the CUDA backend: embedding, norms, rotary, activations,
// residual add, row gather. Each mirrors the CPU reference (kernels/cpu/cpu_backend.cc).
#include <cmath>

#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_dtype.cuh"

namespace strata {
namespace {

constexpr int kRowThreads = 256;

__global__ void EmbeddingKernel(const void* table, DType dtype, const int* ids, float* y, int hidden, int vocab_begin,
                                int vocab_rows) {
  const int t = blockIdx.x;
  const int row = ids[t] - vocab_begin;
  float* out = y + static_cast<size_t>(t) * hidden;
  const bool here = row >= 0 && row < vocab_rows;  // else another tensor slice holds the row
  for (int c = threadIdx.x; c < hidden; c += blockDim.x)
    out[c] = here ? LoadAsFloat(table, static_cast<size_t>(row) * hidden + c, dtype) : 0.f;
}

// One block per row. LayerNorm subtracts the mean before squaring (two passes over the row, as
// the reference does) so large offsets do not cancel.
__global__ void NormKernel(NormType type, const float* x, const float* weight, const float* bias, float* y, int cols,
                           float eps) {
  __shared__ float scratch[32];
  const float* in = x + static_cast<size_t>(blockIdx.x) * cols;
  float* out = y + static_cast<size_t>(blockIdx.x) * cols;
  float mean = 0.f;
  if (type == NormType::kLayerNorm) {
    float s = 0.f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) s += in[c];
    mean = BlockSum(s, scratch) / cols;
  }
  float ss = 0.f;
  for (int c = threadIdx.x; c < cols; c += blockDim.x) {
    const float d = in[c] - mean;
    ss += d * d;
  }
  const float inv = rsqrtf(BlockSum(ss, scratch) / cols + eps);
  // `y` may alias `x`: every thread has read its elements (BlockSum synchronized) before writing.
  for (int c = threadIdx.x; c < cols; c += blockDim.x) {
    const float v = (in[c] - mean) * inv * weight[c];
    out[c] = type == NormType::kLayerNorm && bias ? v + bias[c] : v;
  }
}

// GPT-NeoX rotate_half on the first rotary_dims of each head: one thread per (token, head, i).
__global__ void RotaryKernel(float* x, const int* positions, int tokens, int heads, int head_dim, const float* cos_table,
                             const float* sin_table, int half) {
  const size_t n = static_cast<size_t>(tokens) * heads * half;
  for (size_t idx = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; idx < n;
       idx += gridDim.x * static_cast<size_t>(blockDim.x)) {
    const int i = static_cast<int>(idx % half);
    const size_t th = idx / half;  // token * heads + head
    const int t = static_cast<int>(th / heads);
    const size_t table = static_cast<size_t>(positions[t]) * half + i;
    const float c = cos_table[table], s = sin_table[table];
    float* v = x + th * head_dim;
    const float x1 = v[i], x2 = v[i + half];
    v[i] = x1 * c - x2 * s;
    v[i + half] = x2 * c + x1 * s;
  }
}

__global__ void ActivationKernel(ActivationType type, const float* x, float* y, int rows, int cols) {
  const size_t n = static_cast<size_t>(rows) * cols;
  for (size_t idx = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; idx < n;
       idx += gridDim.x * static_cast<size_t>(blockDim.x)) {
    if (type == ActivationType::kSwiGlu) {
      const size_t r = idx / cols, c = idx % cols;
      const float g = x[r * 2 * cols + c], u = x[r * 2 * cols + cols + c];
      y[idx] = g / (1.f + expf(-g)) * u;
    } else if (type == ActivationType::kGeluErf) {
      const float v = x[idx];
      y[idx] = 0.5f * v * (1.f + erff(v * 0.70710678118654752f));
    } else {
      const float v = x[idx];
      y[idx] = 0.5f * v * (1.f + tanhf(0.79788456080286536f * (v + 0.044715f * v * v * v)));
    }
  }
}

__global__ void AddKernel(float* y, const float* x, size_t n) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n; i += gridDim.x * static_cast<size_t>(blockDim.x))
    y[i] += x[i];
}

__global__ void GatherRowsKernel(const float* src, const int* rows, float* dst, int cols) {
  const float* in = src + static_cast<size_t>(rows[blockIdx.x]) * cols;
  float* out = dst + static_cast<size_t>(blockIdx.x) * cols;
  for (int c = threadIdx.x; c < cols; c += blockDim.x) out[c] = in[c];
}

}  // namespace

void CudaBackend::Embedding(const EmbeddingArgs& a) {
  Bind();
  if (a.tokens == 0) return;
  if (a.table_format.packed()) return PackedEmbedding(a);
  EmbeddingKernel<<<a.tokens, kRowThreads, 0, stream_>>>(a.table, a.table_format.dtype, a.ids, a.y, a.hidden, a.vocab_begin,
                                                         a.vocab_rows);
  STRATA_LAUNCHED("EmbeddingKernel");
}

void CudaBackend::Norm(const NormArgs& a) {
  Bind();
  if (a.rows == 0) return;
  NormKernel<<<a.rows, kRowThreads, 0, stream_>>>(a.type, a.x, a.weight, a.bias, a.y, a.cols, a.eps);
  STRATA_LAUNCHED("NormKernel");
}

void CudaBackend::Rotary(const RotaryArgs& a) {
  Bind();
  const int half = a.rope.rotary_dims / 2;
  const size_t n = static_cast<size_t>(a.tokens) * a.heads * half;
  if (n == 0) return;
  RotaryKernel<<<GridFor(n, 256), 256, 0, stream_>>>(a.x, a.positions, a.tokens, a.heads, a.head_dim, a.rope.cos,
                                                     a.rope.sin, half);
  STRATA_LAUNCHED("RotaryKernel");
}

void CudaBackend::Activation(const ActivationArgs& a) {
  Bind();
  const size_t n = static_cast<size_t>(a.rows) * a.cols;
  if (n == 0) return;
  ActivationKernel<<<GridFor(n, 256), 256, 0, stream_>>>(a.type, a.x, a.y, a.rows, a.cols);
  STRATA_LAUNCHED("ActivationKernel");
}

void CudaBackend::Add(float* y, const float* x, size_t n) {
  Bind();
  if (n == 0) return;
  AddKernel<<<GridFor(n, 256), 256, 0, stream_>>>(y, x, n);
  STRATA_LAUNCHED("AddKernel");
}

void CudaBackend::GatherRows(const GatherRowsArgs& a) {
  Bind();
  if (a.count == 0) return;
  GatherRowsKernel<<<a.count, kRowThreads, 0, stream_>>>(a.src, a.rows, a.dst, a.cols);
  STRATA_LAUNCHED("GatherRowsKernel");
}

}  // namespace strata
