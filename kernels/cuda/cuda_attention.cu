// KV commit and attention of the CUDA backend. Attention serves prefill and decode alike: one
// thread block per (step token, query head, key split) walks the visible keys with an online
// softmax (no score matrix in memory); warps take keys round robin and merge at the end; long
// contexts with few queries are split over several blocks (split-K, "flash decoding") and merged
// by a second kernel. Keys before context_len come from the paged or ring bank, later ones from
// the step rows, exactly as in the CPU reference (kernels/cpu/cpu_attention.cc).
#include <algorithm>
#include <cmath>

#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_dtype.cuh"
#include "kernels/kv_addressing.h"

namespace strata {
namespace {

constexpr int kWarps = 4;
constexpr int kMaxHeadDim = 256;
constexpr int kPerLane = kMaxHeadDim / 32;
constexpr int kKeysPerSplit = 256;
constexpr int kMaxSplits = 64;

__global__ void KvWriteKernel(const float* step_k, const float* step_v, KvBankView bank, BatchLayout batch) {
  const int i = blockIdx.x;
  const int s = SeqOfTokenDevice(batch.token_start, batch.num_seqs, i);
  const int begin = batch.token_start[s], end = batch.token_start[s + 1], ctx = batch.context_len[s];
  const int pos = ctx + (i - begin);
  // A ring keeps only the last ring_size positions; older rows of this chunk would be overwritten.
  if (bank.ring_size > 0 && pos < ctx + (end - begin) - bank.ring_size) return;
  const size_t n = static_cast<size_t>(bank.num_kv_heads) * bank.head_dim;
  const size_t row = KvRow(bank, batch, s, pos);
  for (size_t j = threadIdx.x; j < n; j += blockDim.x) {
    StoreFromFloat(bank.k, row * n + j, bank.dtype, step_k[i * n + j]);
    StoreFromFloat(bank.v, row * n + j, bank.dtype, step_v[i * n + j]);
  }
}

struct AttentionParams {
  AttentionArgs a;
  int half = 0;             // rope_on_read.rotary_dims / 2
  int splits = 1;
  int keys_per_split = 0;
  float* partials = nullptr;  // [tokens, heads, splits, head_dim + 2] when splits > 1
};

__global__ void __launch_bounds__(kWarps * 32) AttentionKernel(AttentionParams p) {
  const AttentionArgs& a = p.a;
  const int i = blockIdx.x, h = blockIdx.y, split = blockIdx.z;
  const int d = a.bank.head_dim, nkv = a.bank.num_kv_heads;
  const int g = h / (a.num_heads / nkv);  // the KV head of query head h (GQA)
  const int s = SeqOfTokenDevice(a.batch.token_start, a.batch.num_seqs, i);
  const int begin = a.batch.token_start[s], ctx = a.batch.context_len[s];
  const int t = ctx + (i - begin);
  const int hi = a.mask_diag ? t - 1 : t;
  const int lo = a.window > 0 ? max(0, t - a.window + 1) : 0;
  const int k0 = lo + split * p.keys_per_split;
  const int k1 = min(hi, k0 + p.keys_per_split - 1);

  __shared__ float q_sh[kMaxHeadDim];
  __shared__ float k_sh[kWarps][kMaxHeadDim];
  __shared__ float acc_sh[kWarps][kMaxHeadDim];
  __shared__ float m_sh[kWarps], l_sh[kWarps];
  const float* q = a.q + (static_cast<size_t>(i) * a.num_heads + h) * d;
  for (int j = threadIdx.x; j < d; j += blockDim.x) q_sh[j] = q[j];
  __syncthreads();

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  float m = -INFINITY, l = 0.f, acc[kPerLane];
  for (int e = 0; e < kPerLane; ++e) acc[e] = 0.f;
  for (int pos = k0 + warp; pos <= k1; pos += kWarps) {
    const void *kb, *vb;
    DType kt;
    size_t off;
    if (pos < ctx) {
      kb = a.bank.k;
      vb = a.bank.v;
      kt = a.bank.dtype;
      off = (KvRow(a.bank, a.batch, s, pos) * nkv + g) * d;
    } else {
      kb = a.step_k;
      vb = a.step_v;
      kt = DType::kF32;
      off = (static_cast<size_t>(begin + pos - ctx) * nkv + g) * d;
    }
    for (int j = lane; j < d; j += 32) k_sh[warp][j] = LoadAsFloat(kb, off + j, kt);
    __syncwarp();
    float dot = 0.f;
    for (int j = lane; j < d; j += 32) {
      float kj = k_sh[warp][j];
      if (j < 2 * p.half) {  // raw-K producer: rotate the key to its own position (§1.4)
        const int r = j % p.half;
        const float c = a.rope_on_read.cos[static_cast<size_t>(pos) * p.half + r];
        const float sn = a.rope_on_read.sin[static_cast<size_t>(pos) * p.half + r];
        kj = j < p.half ? kj * c - k_sh[warp][j + p.half] * sn : kj * c + k_sh[warp][j - p.half] * sn;
      }
      dot += q_sh[j] * kj;
    }
    const float score = WarpSum(dot) * a.scale;
    __syncwarp();  // k_sh[warp] is rewritten by the next key
    const float new_m = fmaxf(m, score);
    const float correction = m == -INFINITY ? 0.f : __expf(m - new_m);
    const float weight = __expf(score - new_m);
    l = l * correction + weight;
    for (int e = 0; e < kPerLane; ++e) {
      const int j = lane + 32 * e;
      if (j < d) acc[e] = acc[e] * correction + weight * LoadAsFloat(vb, off + j, kt);
    }
    m = new_m;
  }
  if (lane == 0) {
    m_sh[warp] = m;
    l_sh[warp] = l;
  }
  for (int e = 0; e < kPerLane; ++e)
    if (lane + 32 * e < d) acc_sh[warp][lane + 32 * e] = acc[e];
  __syncthreads();

  float big = -INFINITY;
  for (int w = 0; w < kWarps; ++w) big = fmaxf(big, m_sh[w]);
  float total = 0.f;
  for (int w = 0; w < kWarps; ++w)
    if (m_sh[w] != -INFINITY) total += l_sh[w] * __expf(m_sh[w] - big);
  const size_t head = static_cast<size_t>(i) * a.num_heads + h;
  for (int j = threadIdx.x; j < d; j += blockDim.x) {
    float o = 0.f;
    for (int w = 0; w < kWarps; ++w)
      if (m_sh[w] != -INFINITY) o += acc_sh[w][j] * __expf(m_sh[w] - big);
    if (p.splits == 1) {
      a.out[head * d + j] = total > 0.f ? o / total : 0.f;  // no visible key: zero (§2.1)
    } else {
      p.partials[(head * p.splits + split) * (d + 2) + j] = o;
    }
  }
  if (p.splits > 1 && threadIdx.x == 0) {
    float* tail = p.partials + (head * p.splits + split) * (d + 2) + d;
    tail[0] = big;
    tail[1] = total;
  }
}

// Merges the splits of one (token, head): rescale each by exp(m_split - m_max).
__global__ void AttentionMergeKernel(const float* partials, float* out, int splits, int d) {
  const size_t head = blockIdx.x;
  const float* base = partials + head * splits * (d + 2);
  float big = -INFINITY;
  for (int sp = 0; sp < splits; ++sp) big = fmaxf(big, base[sp * (d + 2) + d]);
  float total = 0.f;
  for (int sp = 0; sp < splits; ++sp) {
    const float m = base[sp * (d + 2) + d];
    if (m != -INFINITY) total += base[sp * (d + 2) + d + 1] * __expf(m - big);
  }
  for (int j = threadIdx.x; j < d; j += blockDim.x) {
    float o = 0.f;
    for (int sp = 0; sp < splits; ++sp) {
      const float m = base[sp * (d + 2) + d];
      if (m != -INFINITY) o += base[sp * (d + 2) + j] * __expf(m - big);
    }
    out[head * d + j] = total > 0.f ? o / total : 0.f;
  }
}

}  // namespace

void CudaBackend::KvWrite(const KvWriteArgs& a) {
  Bind();
  if (a.batch.num_tokens == 0) return;
  KvWriteKernel<<<a.batch.num_tokens, 128, 0, stream_>>>(a.step_k, a.step_v, a.bank, a.batch);
  STRATA_LAUNCHED("KvWriteKernel");
}

void CudaBackend::Attention(const AttentionArgs& a) {
  Bind();
  const int tokens = a.batch.num_tokens, d = a.bank.head_dim;
  if (tokens == 0) return;
  if (d > kMaxHeadDim || d % 2 != 0)
    CudaFail("CudaBackend::Attention", "head_dim must be even and at most 256", __FILE__, __LINE__);
  AttentionParams p;
  p.a = a;
  p.half = a.rope_on_read.cos ? a.rope_on_read.rotary_dims / 2 : 0;
  // Enough blocks to fill the device: split long contexts when there are few (token, head) pairs.
  const int pairs = tokens * a.num_heads;
  const int longest = std::max(1, a.batch.max_seq_len);
  p.splits = pairs >= 2 * sm_count_ ? 1 : std::clamp((longest + kKeysPerSplit - 1) / kKeysPerSplit, 1, kMaxSplits);
  p.keys_per_split = (longest + p.splits - 1) / p.splits;
  if (p.splits > 1) {
    const size_t bytes = static_cast<size_t>(pairs) * p.splits * (d + 2) * sizeof(float);
    p.partials = static_cast<float*>(Scratch(&attention_partials_, &attention_partials_bytes_, bytes));
  }
  const dim3 grid(tokens, a.num_heads, p.splits);
  AttentionKernel<<<grid, kWarps * 32, 0, stream_>>>(p);
  STRATA_LAUNCHED("AttentionKernel");
  if (p.splits > 1) {
    AttentionMergeKernel<<<pairs, std::min(d, 256), 0, stream_>>>(p.partials, a.out, p.splits, d);
    STRATA_LAUNCHED("AttentionMergeKernel");
  }
}

}  // namespace strata
