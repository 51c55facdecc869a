// File: kernels/cuda/sampling_params_pack.h
// Per-sequence sampling settings packed for the GPU sampler, and SampleFromPacked: the CPU
// statement of what that sampler must compute, equal to strata::SampleToken (runtime/sampler.h)
// for every row it serves.
//
// Consumer (not wired yet; needs a GPU to verify): the CUDA backend's sampling kernels will read
// one PackedSamplingParams per logits row (copied with the step's batch arrays, or written into
// a captured graph's input buffer) and write back only each row's token id and logprob, so the
// logits stay on the device. PackedSamplingBatch::kernel picks the launch: kArgmax (every GPU
// row greedy: one argmax and log-sum-exp pass per row) or kSortedWalk (some row samples). Rows
// flagged kPackedOnHost are skipped by the kernels (token -1) and their logits rows are copied
// home for strata::SampleToken, as every row is today.
//
// Why sampled rows walk a sorted order even without top-k/top-p: SampleToken draws u and walks
// the candidates by descending logit (ties by id) until the cumulative mass passes u, so the
// token for a given u depends on that order. The kernel gets it with a segmented sort of the row
// (or a radix select of the crossing point); any_truncation says whether the top-k/top-p/min-p
// cuts of the sorted prefix are needed at all.
//
// Random numbers: a request's CPU stream is SamplerRng(seed), splitmix64, advanced once per token
// sampled with temperature > 0 (greedy tokens draw nothing). The GPU cannot carry that state
// between steps, so each row carries the index of its draw: draw n uses SplitMix64At(seed, n),
// the (n+1)-th output of SamplerRng(seed), and u = (that >> 11) x 2^-53 as SamplerRng::Uniform.
// The runtime counts a sequence's draws (the tokens it has sampled with temperature > 0, on either
// path), so a sequence can move between the host and GPU paths without changing its tokens.
//
// Plain C++, no CUDA headers: compiled and unit-tested in every build.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <vector>

namespace strata {

// The n-th output (n = 0, 1, ...) of the splitmix64 stream seeded with `seed`: what the
// (n+1)-th SamplerRng(seed).Next() returns. Usable in device code (no state, no library calls).
constexpr uint64_t SplitMix64At(uint64_t seed, uint64_t n) {
  uint64_t z = seed + (n + 1) * 0x9E3779B97F4A7C15ull;  // the state after n + 1 advances (mod 2^64)
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// SamplerRng::Uniform of that output: 53 random bits in [0, 1).
constexpr double UniformAt(uint64_t seed, uint64_t n) {
  return static_cast<double>(SplitMix64At(seed, n) >> 11) * 0x1.0p-53;
}

// One sequence's settings as the runtime knows them (a SamplingParams plus what the step adds).
struct SequenceSampling {
  float temperature = 0.f;  // 0: greedy
  float top_p = 1.f;
  int top_k = 0;
  float min_p = 0.f;
  uint64_t seed = 0;
  uint32_t draw_index = 0;  // draws the sequence's stream has made so far
  // Sampled on the host: set when the logits must be transformed first (SamplingParams::
  // transforms_logits(): penalties, logit_bias), tokens are banned (min_tokens) or masked (a
  // grammar), or top_logprobs are asked for. These stay on the host path for now.
  bool on_host = false;
};

enum PackedSamplingFlags : uint32_t {
  kPackedGreedy = 1u << 0,  // temperature <= 0: argmax, no draw
  kPackedOnHost = 1u << 1,  // the kernels skip this row (token -1); the host samples it
};

// What the kernels read per row. 32 bytes, 16-byte aligned: two 16-byte loads per row; the CUDA
// side declares the same struct and must keep these offsets.
struct alignas(16) PackedSamplingParams {
  uint64_t seed;
  uint32_t draw_index;
  uint32_t flags;  // PackedSamplingFlags
  float temperature;
  float top_p;  // 1: no cut
  float min_p;  // 0: no cut
  int32_t top_k;  // 0: no cut
};
static_assert(sizeof(PackedSamplingParams) == 32);
static_assert(alignof(PackedSamplingParams) == 16);
static_assert(std::is_trivially_copyable_v<PackedSamplingParams>);
static_assert(std::is_standard_layout_v<PackedSamplingParams>);
static_assert(offsetof(PackedSamplingParams, seed) == 0 && offsetof(PackedSamplingParams, draw_index) == 8 &&
              offsetof(PackedSamplingParams, flags) == 12 && offsetof(PackedSamplingParams, temperature) == 16 &&
              offsetof(PackedSamplingParams, top_p) == 20 && offsetof(PackedSamplingParams, min_p) == 24 &&
              offsetof(PackedSamplingParams, top_k) == 28);

enum class SamplingKernel {
  kNone,        // every row is sampled on the host
  kArgmax,      // every GPU row is greedy
  kSortedWalk,  // some GPU row samples with temperature
};

struct PackedSamplingBatch {
  std::vector<PackedSamplingParams> rows;  // one per sequence, in step order
  SamplingKernel kernel = SamplingKernel::kNone;
  bool any_truncation = false;  // some sampled GPU row has top_k, top_p or min_p set
  std::vector<int> host_rows;   // rows flagged kPackedOnHost: their logits are copied home
};

// Settings are taken as the scheduler validated them (temperature >= 0, 0 < top_p <= 1,
// top_k >= 0, 0 <= min_p <= 1).
PackedSamplingParams PackSamplingParams(const SequenceSampling& s);
PackedSamplingBatch PackSamplingBatch(const std::vector<SequenceSampling>& seqs);

struct PackedSample {
  int token = -1;       // -1: a kPackedOnHost row, not sampled here
  float logprob = 0.f;  // log_softmax of the raw logits at `token` (before temperature and cuts)
};

// The GPU sampler's specification, step by step as the kernel must do it:
//  1. logprob: log-sum-exp of the raw row in double (max first), logits[token] - max - log(sum).
//  2. greedy: the first index of the largest logit (ties to the lowest id).
//  3. otherwise: candidates sorted by logit descending, ties by id; keep the first top_k (all when
//     0); p_i = exp((logit_i - max) / temperature) in double over the kept; top_p < 1 keeps the
//     shortest prefix whose normalized running sum (added in order) reaches top_p; min_p > 0 keeps
//     the prefix with p_i >= min_p x p_0 (at least one); u = UniformAt(seed, draw_index) x the
//     kept sum; the token is the first whose running sum exceeds u (the last kept if rounding
//     leaves none).
// The kernel must give the same token; its logprob and sums may differ in the last bits where it
// adds in another order, which can move the choice only when u falls within rounding of a
// boundary between two candidates. Logits are assumed free of NaN.
PackedSample SampleFromPacked(const float* logits, int vocab, const PackedSamplingParams& p);

}  // namespace strata
