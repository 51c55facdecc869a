// The CUDA backend's block-quantized weights (runtime/base/packed_blocks.h's interleaved groups:
// PackedI8, PackedI8x16, PackedU4, with half scales), so that a GGUF file or --quantization keeps
// its bytes on the GPU too. Decode (up to kGemvRows activation rows) runs a dequantizing GEMV:
// one warp per weight row, each lane dequantizing its elements and multiplying them into every
// activation row, float accumulation. Longer batches (prefill) dequantize tiles of weight rows to
// BF16 in scratch and multiply each tile with cuBLAS, as the BF16 path does. Both paths multiply
// BF16-rounded weights by BF16-rounded inputs (the GEMV rounds them itself), so a sequence's
// results do not change with the size of the batch it runs in, beyond summation order.
// Embedding gathers dequantized rows (not rounded).
#include <cuda_fp16.h>

#include <algorithm>

#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_dtype.cuh"
#include "runtime/base/packed_blocks.h"

namespace strata {
namespace {

constexpr int kGemvRows = 8;          // activation rows the GEMV takes; more go through cuBLAS
constexpr int kWarpsPerBlock = 8;     // one group of 8 weight rows per thread block
constexpr size_t kTileBytes = 64 << 20;  // BF16 scratch for one tile of dequantized weight rows

__device__ __forceinline__ float HalfAt(const uint8_t* p, int i) {
  return __half2float(reinterpret_cast<const __half*>(p)[i]);
}

// `v` rounded to BF16 (nearest even), as the tiled path's operands are.
__device__ __forceinline__ float Bf16(float v) { return __bfloat162float(__float2bfloat16_rn(v)); }

// Bytes of one interleaved block of 8 rows (a group's block b).
__host__ __device__ __forceinline__ int GroupBlockBytes(uint32_t type) {
  return type == WeightFormat::kPackedI8     ? static_cast<int>(sizeof(packed::I8Group))
         : type == WeightFormat::kPackedI8x16 ? static_cast<int>(sizeof(packed::I8PairGroup))
                                              : static_cast<int>(sizeof(packed::U4Group));
}

// Element c of weight row r (k columns), as DequantizeInterleavedRow computes it on the host.
__device__ __forceinline__ float PackedAt(uint32_t type, const uint8_t* w, int k, int64_t r, int c) {
  const int blocks = k / packed::kBlock, j = static_cast<int>(r % packed::kGroup), i = c % packed::kBlock;
  const uint8_t* g = w + ((r / packed::kGroup) * blocks + c / packed::kBlock) * GroupBlockBytes(type);
  if (type == WeightFormat::kPackedU4) {  // d[8], m[8] halves, then q
    const int e = i % 16;
    const uint8_t v = g[32 + (e / 4) * 32 + j * 4 + e % 4];
    return HalfAt(g, j) * static_cast<float>(i < 16 ? (v & 0xF) : (v >> 4)) + HalfAt(g + 16, j);
  }
  const int scales = type == WeightFormat::kPackedI8x16 ? 32 : 16;  // d (or d_lo, d_hi) halves, then q + 128
  const float d = HalfAt(g, (type == WeightFormat::kPackedI8x16 && i >= 16 ? 8 : 0) + j);
  return d * static_cast<float>(static_cast<int>(g[scales + (i / 4) * 32 + j * 4 + i % 4]) - 128);
}

// y[i, r] (+)= sum_c W[r, c] x[i, c] (+ bias[r]) for m <= kGemvRows: a warp per weight row.
__global__ void PackedGemvKernel(uint32_t type, const uint8_t* w, const float* x, const float* bias, float* y, int m,
                                 int n, int k, bool accumulate) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (r >= n) return;
  float acc[kGemvRows] = {};
  for (int c = lane; c < k; c += 32) {
    const float v = Bf16(PackedAt(type, w, k, r, c));
#pragma unroll
    for (int i = 0; i < kGemvRows; ++i)
      if (i < m) acc[i] += v * Bf16(x[static_cast<size_t>(i) * k + c]);
  }
#pragma unroll
  for (int i = 0; i < kGemvRows; ++i) {
    if (i >= m) break;
    const float s = WarpSum(acc[i]);
    if (lane == 0) {
      float& out = y[static_cast<size_t>(i) * n + r];
      out = (accumulate ? out : 0.f) + s + (bias ? bias[r] : 0.f);
    }
  }
}

// Rows [r0, r0 + rows) of W as BF16, row-major [rows, k].
__global__ void DequantizeRowsKernel(uint32_t type, const uint8_t* w, int k, int64_t r0, int64_t rows, void* out) {
  const size_t n = static_cast<size_t>(rows) * k;
  for (size_t e = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; e < n; e += gridDim.x * static_cast<size_t>(blockDim.x))
    StoreFromFloat(out, e, DType::kBF16, PackedAt(type, w, k, r0 + static_cast<int64_t>(e / k), static_cast<int>(e % k)));
}

__global__ void PackedEmbeddingKernel(uint32_t type, const uint8_t* table, const int* ids, float* y, int hidden,
                                      int vocab_begin, int vocab_rows) {
  const int t = blockIdx.x;
  const int row = ids[t] - vocab_begin;
  const bool here = row >= 0 && row < vocab_rows;  // else another tensor slice holds the row
  float* out = y + static_cast<size_t>(t) * hidden;
  for (int c = threadIdx.x; c < hidden; c += blockDim.x) out[c] = here ? PackedAt(type, table, hidden, row, c) : 0.f;
}

}  // namespace

void CudaBackend::PackedLinear(const LinearArgs& a) {
  const uint32_t type = a.w_format.ggml_type;
  const auto* w = static_cast<const uint8_t*>(a.w);
  if (a.m <= kGemvRows) {
    const unsigned blocks = static_cast<unsigned>((a.n + kWarpsPerBlock - 1) / kWarpsPerBlock);
    PackedGemvKernel<<<blocks, kWarpsPerBlock * 32, 0, stream_>>>(type, w, a.x, a.bias, a.y, a.m, a.n, a.k, a.accumulate);
    STRATA_LAUNCHED("PackedGemvKernel");
    return;
  }
  // Tiles of whole groups of 8 rows, each dequantized to BF16 and multiplied by cuBLAS into its
  // columns of y (the plain path's product, bias added once at the end).
  const int64_t tile_rows = std::max<int64_t>(packed::kGroup, static_cast<int64_t>(kTileBytes / (2 * static_cast<size_t>(a.k))) /
                                                                  packed::kGroup * packed::kGroup);
  void* tile = Scratch(&packed_tile_, &packed_tile_bytes_, static_cast<size_t>(std::min<int64_t>(tile_rows, a.n)) * a.k * 2);
  const void* x = InWeightType(a.x, DType::kBF16, static_cast<size_t>(a.m) * a.k);  // once for every tile
  for (int64_t r0 = 0; r0 < a.n; r0 += tile_rows) {
    const int64_t rows = std::min<int64_t>(tile_rows, a.n - r0);
    DequantizeRowsKernel<<<GridFor(static_cast<size_t>(rows) * a.k, 256), 256, 0, stream_>>>(type, w, a.k, r0, rows, tile);
    STRATA_LAUNCHED("DequantizeRowsKernel");
    TypedGemm(x, tile, DType::kBF16, a.y + r0, a.m, static_cast<int>(rows), a.k, a.n, a.accumulate);
  }
  if (a.bias) AddBias(a.y, a.bias, a.m, a.n);
}

void CudaBackend::PackedEmbedding(const EmbeddingArgs& a) {
  PackedEmbeddingKernel<<<a.tokens, 256, 0, stream_>>>(a.table_format.ggml_type, static_cast<const uint8_t*>(a.table),
                                                       a.ids, a.y, a.hidden, a.vocab_begin, a.vocab_rows);
  STRATA_LAUNCHED("PackedEmbeddingKernel");
}

}  // namespace strata
