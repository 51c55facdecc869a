// File: kernels/cuda/sampling_params_pack.h
// Per-sequence sampling settings packed for the GPU sampler, and SampleFromPacked: the CPU
// statement of what that sampler must compute, equal to strata::SampleToken (runtime/sampler.h)
// for every row it serves.
//
// Consumer (not wired yet; needs a GPU to verify): the CUDA backend's sampling kernels will read
// one PackedSamplingParams per logits row (copied with the step's batch arrays, or written into
// a captured graph's input buffer) and write back only each row's token id and logprob, so the
// logits stay on the device. PackedSamplingBatch::kernel picks the launch: kArgmax (every GPU
// row greedy: one argmax and log-sum-exp pass per row) or kCutAndWalk (some row samples). Rows
// flagged kPackedOnHost are skipped by the kernels (token -1) and their logits rows are copied
// home for strata::SampleToken, as every row is today.
//
// No sort of the row: the selection (runtime/base/token_choice.h) walks the kept tokens in id
// order (a prefix sum), and the cuts need only the boundary of the best-ranked set, which a
// kernel finds by a radix select or a pivot search on the rank; any_truncation says whether any
// row needs that boundary at all.
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
  kCutAndWalk,  // some GPU row samples with temperature
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

// The GPU sampler's specification:
//  1. logprob: LogSoftmaxAt (runtime/base/token_choice.h) of the raw row: log-sum-exp in double,
//     max first.
//  2. greedy: ArgmaxToken, the first index of the largest logit.
//  3. otherwise: ChooseToken with u = UniformAt(seed, draw_index), whose header defines the rank,
//     the cuts and the walk in id order.
// The kernel must give the same token; its logprob and sums may differ in the last bits where it
// adds in another order, which can move the choice only when u falls within rounding of a
// boundary between two candidates.
PackedSample SampleFromPacked(const float* logits, int vocab, const PackedSamplingParams& p);

}  // namespace strata
