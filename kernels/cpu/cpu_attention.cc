// Attention over one KV bank and the KV commit, for the CPU backend.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/cpu_gemm.h"
#include "kernels/kv_addressing.h"
#include "runtime/base/status.h"

namespace strata {
namespace {

int SeqOfToken(const BatchLayout& b, int token) {
  int s = 0;
  while (b.token_start[s + 1] <= token) ++s;
  return s;
}

// KV heads [g0, g1) of one bank row as floats (contiguous): a pointer into the bank for F32,
// else widened into `scratch`.
const float* BankHeads(CpuIsa isa, const KvBankView& bank, const void* base, size_t row, int g0, int g1,
                       float* scratch) {
  const size_t offset = (row * bank.num_kv_heads + g0) * bank.head_dim;
  if (bank.dtype == DType::kF32) return static_cast<const float*>(base) + offset;
  Widen(isa, bank.dtype, static_cast<const char*>(base) + offset * DTypeSize(bank.dtype), scratch,
        static_cast<size_t>(g1 - g0) * bank.head_dim);
  return scratch;
}

// The value loop, written so the compiler vectorizes it.
void AddScaled(float w, const float* x, float* y, int n) {
#pragma omp simd
  for (int j = 0; j < n; ++j) y[j] += w * x[j];
}

// The host-side sizes a device backend sizes its launches by (BatchLayout::num_tokens,
// max_seq_len) must agree with the arrays; the CPU reads only the arrays, so it checks them here,
// where every CPU test would otherwise pass a layout that breaks the GPU.
void CheckHostSizes(const BatchLayout& b) {
  STRATA_CHECK(b.num_tokens == b.token_start[b.num_seqs]);
  int longest = 0;
  for (int s = 0; s < b.num_seqs; ++s)
    longest = std::max(longest, b.context_len[s] + b.token_start[s + 1] - b.token_start[s]);
  STRATA_CHECK(b.max_seq_len == longest);
}

// Sequences with at least this many step tokens (prefill chunks) take the GEMM path.
constexpr int kChunkMinTokens = 8;

// Keys of positions [p0, p0 + n) for KV head g of sequence s, as contiguous float rows [n, d]
// (rotated to their own positions for raw-K producers), and the values transposed [d, n].
void GatherChunkKv(CpuIsa isa, const AttentionArgs& a, int s, int g, int p0, int n, std::vector<float>* keys,
                   std::vector<float>* values_t, std::vector<float>* row) {
  const KvBankView& bank = a.bank;
  const int d = bank.head_dim, nkv = bank.num_kv_heads, half = a.rope_on_read.rotary_dims / 2;
  const int begin = a.batch.token_start[s], ctx = a.batch.context_len[s];
  keys->resize(static_cast<size_t>(n) * d);
  values_t->resize(static_cast<size_t>(d) * n);
  row->resize(d);
  for (int i = 0; i < n; ++i) {
    const int p = p0 + i;
    float* k = keys->data() + static_cast<size_t>(i) * d;
    const float* v;
    if (p < ctx) {
      const size_t r = KvRow(bank, a.batch, s, p);
      std::memcpy(k, BankHeads(isa, bank, bank.k, r, g, g + 1, row->data()), sizeof(float) * d);
      v = BankHeads(isa, bank, bank.v, r, g, g + 1, row->data());
    } else {
      const size_t r = static_cast<size_t>(begin + p - ctx) * nkv + g;
      std::memcpy(k, a.step_k + r * d, sizeof(float) * d);
      v = a.step_v + r * d;
    }
    for (int j = 0; j < d; ++j) (*values_t)[static_cast<size_t>(j) * n + i] = v[j];
    if (half > 0) {  // raw-K producer: rotate the key to its own position on read
      const float* c = a.rope_on_read.cos + static_cast<size_t>(p) * half;
      const float* sn = a.rope_on_read.sin + static_cast<size_t>(p) * half;
      for (int j = 0; j < half; ++j) {
        const float k1 = k[j], k2 = k[j + half];
        k[j] = k1 * c[j] - k2 * sn[j];
        k[j + half] = k2 * c[j] + k1 * sn[j];
      }
    }
  }
}

}  // namespace

// Attention of one prefill chunk (sequence s, every query head of KV head g) as two GEMMs per
// query head: scores = Q K^T over the union of the chunk's visible keys, a masked softmax per
// row, out = P V. The per-token path below costs a dot product and a scaled add per key and head
// and dominated long prefills.
void CpuBackend::ChunkAttention(const AttentionArgs& a, int s, int g) {
  const int d = a.bank.head_dim, group = a.num_heads / a.bank.num_kv_heads;
  const int begin = a.batch.token_start[s], T = a.batch.token_start[s + 1] - begin;
  const int ctx = a.batch.context_len[s];
  // Query i (position ctx + i) sees keys [lo(i), hi(i)]; both grow with i.
  auto hi = [&](int i) { return a.mask_diag ? ctx + i - 1 : ctx + i; };
  auto lo = [&](int i) { return a.window > 0 ? std::max(0, ctx + i - a.window + 1) : 0; };
  const int p0 = lo(0), n = hi(T - 1) - p0 + 1;
  static thread_local std::vector<float> keys, values_t, row, q, scores, out;
  if (n > 0) GatherChunkKv(isa_, a, s, g, p0, n, &keys, &values_t, &row);
  q.resize(static_cast<size_t>(T) * d);
  scores.resize(static_cast<size_t>(T) * std::max(n, 1));
  out.resize(static_cast<size_t>(T) * d);
  for (int h = g * group; h < (g + 1) * group; ++h) {
    // Element offset of token i's head h in q and out.
    auto at = [&](int i) { return (static_cast<size_t>(begin + i) * a.num_heads + h) * d; };
    if (n <= 0) {  // no query of the chunk sees a key: zero outputs (§2.1)
      for (int i = 0; i < T; ++i) std::memset(a.out + at(i), 0, sizeof(float) * d);
      continue;
    }
    for (int i = 0; i < T; ++i) std::memcpy(q.data() + static_cast<size_t>(i) * d, a.q + at(i), sizeof(float) * d);
    Gemm(isa_, DType::kF32, q.data(), T, keys.data(), n, d, scores.data(), false, 1);
    for (int i = 0; i < T; ++i) {
      float* sc = scores.data() + static_cast<size_t>(i) * n;
      const int first = lo(i) - p0, last = hi(i) - p0;  // visible columns [first, last]
      if (last < first) {
        std::memset(sc, 0, sizeof(float) * n);
        continue;
      }
      for (int j = first; j <= last; ++j) sc[j] *= a.scale;
      Softmax(isa_, sc + first, last - first + 1);
      std::memset(sc, 0, sizeof(float) * first);
      std::memset(sc + last + 1, 0, sizeof(float) * (n - last - 1));
    }
    Gemm(isa_, DType::kF32, scores.data(), T, values_t.data(), d, n, out.data(), false, 1);
    for (int i = 0; i < T; ++i) std::memcpy(a.out + at(i), out.data() + static_cast<size_t>(i) * d, sizeof(float) * d);
  }
}

void CpuBackend::KvWrite(const KvWriteArgs& a) {
  CheckHostSizes(a.batch);
  const KvBankView& bank = a.bank;
  const size_t n = static_cast<size_t>(bank.num_kv_heads) * bank.head_dim;
  const size_t row_bytes = n * DTypeSize(bank.dtype);
  for (int s = 0; s < a.batch.num_seqs; ++s) {
    const int begin = a.batch.token_start[s], end = a.batch.token_start[s + 1];
    const int ctx = a.batch.context_len[s];
    for (int i = begin; i < end; ++i) {
      const int pos = ctx + (i - begin);
      // A ring keeps only the last ring_size positions; earlier rows of this chunk would be
      // overwritten by later ones anyway.
      if (bank.ring_size > 0 && pos < ctx + (end - begin) - bank.ring_size) continue;
      const size_t row = KvRow(bank, a.batch, s, pos);
      FromFloat(bank.dtype, a.step_k + i * n, static_cast<char*>(bank.k) + row * row_bytes, n);
      FromFloat(bank.dtype, a.step_v + i * n, static_cast<char*>(bank.v) + row * row_bytes, n);
    }
  }
}

void CpuBackend::Attention(const AttentionArgs& a) {
  CheckHostSizes(a.batch);
  const KvBankView& bank = a.bank;
  const int d = bank.head_dim, nkv = bank.num_kv_heads;
  const int group = a.num_heads / nkv;  // query heads per KV head (GQA), h -> h / group
  const int tokens = a.batch.token_start[a.batch.num_seqs];
  const int half = a.rope_on_read.rotary_dims / 2;
  // Work items are (token, run of KV heads). Within one, keys are visited position by position
  // and every head of the run is served from the same row, so K and V are read as contiguous
  // rows rather than one head-sized piece per row and head. The runs split the heads only when
  // there are fewer tokens than threads (decode at small batch).
  const int runs = std::min(nkv, std::max(1, (threads_ + tokens - 1) / tokens));
  std::vector<int> chunks;  // sequences that take the GEMM path
  std::vector<char> chunked(a.batch.num_seqs, 0);
  for (int s = 0; s < a.batch.num_seqs; ++s)
    if (a.batch.token_start[s + 1] - a.batch.token_start[s] >= kChunkMinTokens) {
      chunks.push_back(s);
      chunked[s] = 1;
    }
  if (!chunks.empty()) {
#pragma omp parallel for num_threads(threads_) schedule(dynamic, 1) collapse(2)
    for (int c = 0; c < static_cast<int>(chunks.size()); ++c)
      for (int g = 0; g < nkv; ++g) ChunkAttention(a, chunks[c], g);
    if (chunks.size() == static_cast<size_t>(a.batch.num_seqs)) return;
  }

#pragma omp parallel num_threads(threads_)
  {
    std::vector<float> scores, kvrow(static_cast<size_t>(nkv) * d), rotated(d), acc;
#pragma omp for schedule(dynamic, 1) collapse(2)
    for (int i = 0; i < tokens; ++i) {
      for (int run = 0; run < runs; ++run) {
        const int g0 = nkv * run / runs, g1 = nkv * (run + 1) / runs;  // KV heads [g0, g1)
        const int heads = (g1 - g0) * group;                            // query heads served
        const int s = SeqOfToken(a.batch, i);
        if (chunked[s]) continue;
        const int begin = a.batch.token_start[s];
        const int ctx = a.batch.context_len[s];
        const int t = ctx + (i - begin);
        const int hi = a.mask_diag ? t - 1 : t;
        const int lo = a.window > 0 ? std::max(0, t - a.window + 1) : 0;
        const size_t first = static_cast<size_t>(i) * a.num_heads + static_cast<size_t>(g0) * group;
        float* out = a.out + first * d;
        if (hi < lo) {  // nothing visible: the output is the zero vector (§2.1, decision (b))
          std::memset(out, 0, sizeof(float) * heads * d);
          continue;
        }
        const int nk = hi - lo + 1;
        scores.assign(static_cast<size_t>(heads) * nk, 0.f);
        const float* q = a.q + first * d;  // query head h of this run at q + h * d
        // Scores: q . k for every visible key position.
        for (int p = lo; p <= hi; ++p) {
          // Heads [g0, g1) of key row p, from the bank or from this step's rows.
          const float* krow = p < ctx ? BankHeads(isa_, bank, bank.k, KvRow(bank, a.batch, s, p), g0, g1, kvrow.data())
                                      : a.step_k + (static_cast<size_t>(begin + p - ctx) * nkv + g0) * d;
          for (int g = g0; g < g1; ++g) {
            const float* k = krow + static_cast<size_t>(g - g0) * d;
            if (half > 0) {  // raw-K producer: rotate the key to its own position on read
              std::memcpy(rotated.data(), k, sizeof(float) * d);
              const float* c = a.rope_on_read.cos + static_cast<size_t>(p) * half;
              const float* sn = a.rope_on_read.sin + static_cast<size_t>(p) * half;
              for (int j = 0; j < half; ++j) {
                rotated[j] = k[j] * c[j] - k[j + half] * sn[j];
                rotated[j + half] = k[j + half] * c[j] + k[j] * sn[j];
              }
              k = rotated.data();
            }
            for (int h = (g - g0) * group; h < (g - g0 + 1) * group; ++h)
              scores[static_cast<size_t>(h) * nk + (p - lo)] = Dot(isa_, q + static_cast<size_t>(h) * d, k, d) * a.scale;
          }
        }
        for (int h = 0; h < heads; ++h) Softmax(isa_, scores.data() + static_cast<size_t>(h) * nk, nk);
        // Weighted sum of values.
        acc.assign(static_cast<size_t>(heads) * d, 0.f);
        for (int p = lo; p <= hi; ++p) {
          const float* vrow = p < ctx ? BankHeads(isa_, bank, bank.v, KvRow(bank, a.batch, s, p), g0, g1, kvrow.data())
                                      : a.step_v + (static_cast<size_t>(begin + p - ctx) * nkv + g0) * d;
          for (int g = g0; g < g1; ++g) {
            const float* v = vrow + static_cast<size_t>(g - g0) * d;
            for (int h = (g - g0) * group; h < (g - g0 + 1) * group; ++h)
              AddScaled(scores[static_cast<size_t>(h) * nk + (p - lo)], v, acc.data() + static_cast<size_t>(h) * d, d);
          }
        }
        std::memcpy(out, acc.data(), sizeof(float) * heads * d);
      }
    }
  }
}

}  // namespace strata
