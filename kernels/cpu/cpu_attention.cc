// Attention over one KV bank and the KV commit, for the CPU backend.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/kv_addressing.h"

namespace strata {
namespace {

int SeqOfToken(const BatchLayout& b, int token) {
  int s = 0;
  while (b.token_start[s + 1] <= token) ++s;
  return s;
}

// One KV head of one bank row as floats: a pointer into the bank for F32, else widened into
// `scratch`.
const float* BankHead(CpuIsa isa, const KvBankView& bank, const void* base, size_t row, int head, float* scratch) {
  const size_t offset = (row * bank.num_kv_heads + head) * bank.head_dim;
  if (bank.dtype == DType::kF32) return static_cast<const float*>(base) + offset;
  Widen(isa, bank.dtype, static_cast<const char*>(base) + offset * DTypeSize(bank.dtype), scratch, bank.head_dim);
  return scratch;
}

// Consecutive positions of one KV head lie a whole row (num_kv_heads x head_dim) apart, a
// stride the hardware prefetcher does not follow across paged blocks: the loops ask for the
// head's bytes this many positions ahead (decode attention ran at a third of its speed without).
constexpr int kPrefetchPositions = 8;

void PrefetchBankHead(const KvBankView& bank, const void* base, size_t row, int head) {
  const size_t bytes = static_cast<size_t>(bank.head_dim) * DTypeSize(bank.dtype);
  const char* p = static_cast<const char*>(base) + (row * bank.num_kv_heads + head) * bytes;
  for (size_t off = 0; off < bytes; off += 64) __builtin_prefetch(p + off, 0, 3);
}

// The two inner loops, written so the compiler vectorizes them (`omp simd` allows the
// reassociated sum).
float Dot(const float* a, const float* b, int n) {
  float sum = 0.f;
#pragma omp simd reduction(+ : sum)
  for (int j = 0; j < n; ++j) sum += a[j] * b[j];
  return sum;
}

void AddScaled(float w, const float* x, float* y, int n) {
#pragma omp simd
  for (int j = 0; j < n; ++j) y[j] += w * x[j];
}

}  // namespace

void CpuBackend::KvWrite(const KvWriteArgs& a) {
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
  const KvBankView& bank = a.bank;
  const int d = bank.head_dim, nkv = bank.num_kv_heads;
  const int group = a.num_heads / nkv;  // query heads per KV head (GQA), h -> h / group
  const int tokens = a.batch.token_start[a.batch.num_seqs];
  const int half = a.rope_on_read.rotary_dims / 2;

#pragma omp parallel num_threads(threads_)
  {
    std::vector<float> scores, krow(d), rotated(d), acc(static_cast<size_t>(group) * d);
#pragma omp for schedule(dynamic, 1) collapse(2)
    for (int i = 0; i < tokens; ++i) {
      for (int g = 0; g < nkv; ++g) {
        const int s = SeqOfToken(a.batch, i);
        const int begin = a.batch.token_start[s];
        const int ctx = a.batch.context_len[s];
        const int t = ctx + (i - begin);
        const int hi = a.mask_diag ? t - 1 : t;
        const int lo = a.window > 0 ? std::max(0, t - a.window + 1) : 0;
        float* out = a.out + (static_cast<size_t>(i) * a.num_heads + static_cast<size_t>(g) * group) * d;
        if (hi < lo) {  // nothing visible: the output is the zero vector (§2.1, decision (b))
          std::memset(out, 0, sizeof(float) * group * d);
          continue;
        }
        const int nk = hi - lo + 1;
        scores.assign(static_cast<size_t>(group) * nk, 0.f);
        const float* q = a.q + (static_cast<size_t>(i) * a.num_heads + static_cast<size_t>(g) * group) * d;
        // Scores: q . k for every visible key position.
        for (int p = lo; p <= hi; ++p) {
          const float* k;
          if (p + kPrefetchPositions < ctx && p + kPrefetchPositions <= hi)
            PrefetchBankHead(bank, bank.k, KvRow(bank, a.batch, s, p + kPrefetchPositions), g);
          if (p < ctx) {
            k = BankHead(isa_, bank, bank.k, KvRow(bank, a.batch, s, p), g, krow.data());
          } else {
            k = a.step_k + (static_cast<size_t>(begin + p - ctx) * nkv + g) * d;
          }
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
          for (int h = 0; h < group; ++h)
            scores[static_cast<size_t>(h) * nk + (p - lo)] = Dot(q + static_cast<size_t>(h) * d, k, d) * a.scale;
        }
        // Softmax per head.
        for (int h = 0; h < group; ++h) {
          float* sc = scores.data() + static_cast<size_t>(h) * nk;
          float mx = sc[0];
          for (int j = 1; j < nk; ++j) mx = std::max(mx, sc[j]);
          double sum = 0;
          for (int j = 0; j < nk; ++j) {
            sc[j] = std::exp(sc[j] - mx);
            sum += sc[j];
          }
          const float inv = static_cast<float>(1.0 / sum);
          for (int j = 0; j < nk; ++j) sc[j] *= inv;
        }
        // Weighted sum of values.
        std::fill(acc.begin(), acc.end(), 0.f);
        for (int p = lo; p <= hi; ++p) {
          const float* v;
          if (p + kPrefetchPositions < ctx && p + kPrefetchPositions <= hi)
            PrefetchBankHead(bank, bank.v, KvRow(bank, a.batch, s, p + kPrefetchPositions), g);
          if (p < ctx) {
            v = BankHead(isa_, bank, bank.v, KvRow(bank, a.batch, s, p), g, krow.data());
          } else {
            v = a.step_v + (static_cast<size_t>(begin + p - ctx) * nkv + g) * d;
          }
          for (int h = 0; h < group; ++h)
            AddScaled(scores[static_cast<size_t>(h) * nk + (p - lo)], v, acc.data() + static_cast<size_t>(h) * d, d);
        }
        std::memcpy(out, acc.data(), sizeof(float) * group * d);
      }
    }
  }
}

}  // namespace strata
