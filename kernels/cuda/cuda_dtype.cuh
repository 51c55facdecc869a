// File: kernels/cuda/cuda_dtype.cuh
// Loads and stores of the KV and weight element types as float, on the device.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "runtime/base/dtype.h"

namespace strata {

__device__ __forceinline__ float LoadAsFloat(const void* base, size_t i, DType t) {
  switch (t) {
    case DType::kF16: return __half2float(static_cast<const __half*>(base)[i]);
    case DType::kBF16: return __bfloat162float(static_cast<const __nv_bfloat16*>(base)[i]);
    default: return static_cast<const float*>(base)[i];
  }
}

__device__ __forceinline__ void StoreFromFloat(void* base, size_t i, DType t, float v) {
  switch (t) {
    case DType::kF16: static_cast<__half*>(base)[i] = __float2half_rn(v); break;
    case DType::kBF16: static_cast<__nv_bfloat16*>(base)[i] = __float2bfloat16_rn(v); break;
    default: static_cast<float*>(base)[i] = v; break;
  }
}

// Sum over the 32 lanes of a warp; every lane gets the total.
__device__ __forceinline__ float WarpSum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Sum over a block of at most 1024 threads; every thread gets the total. `scratch` holds 32
// floats of shared memory and may be reused after the call returns.
__device__ __forceinline__ float BlockSum(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
  v = WarpSum(v);
  __syncthreads();  // scratch may still be read by a previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float total = 0.f;
  for (int w = 0; w < warps; ++w) total += scratch[w];
  return total;
}

// Grid size for `n` elements at `threads` per block, capped for grid-stride loops.
inline unsigned GridFor(size_t n, int threads) {
  const size_t blocks = (n + threads - 1) / threads;
  return static_cast<unsigned>(blocks < 65535 * 8 ? (blocks == 0 ? 1 : blocks) : 65535 * 8);
}

// Which sequence of the batch owns flattened step token `token` (token_start is sorted).
__device__ __forceinline__ int SeqOfTokenDevice(const int* token_start, int num_seqs, int token) {
  int lo = 0, hi = num_seqs - 1;
  while (lo < hi) {  // the last s with token_start[s] <= token
    const int mid = (lo + hi + 1) / 2;
    if (token_start[mid] <= token) lo = mid; else hi = mid - 1;
  }
  return lo;
}

}  // namespace strata
