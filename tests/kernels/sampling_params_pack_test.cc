// The GPU sampler's host side (kernels/cuda/sampling_params_pack.h): the packed layout and batch
// flags, SplitMix64At against SamplerRng's stream, and SampleFromPacked - the specification the
// sampling kernels must meet - against strata::SampleToken on seeded random logits: the same
// token and logprob for the same (seed, draw) under greedy, temperature, top-k, top-p and min-p.
// Both select through ChooseToken (checked against a naive full sort in token_choice_test), so
// what this adds is the wiring: the packed fields, and draw n of the request's stream taken by
// index where SampleToken advances a SamplerRng.
#include "kernels/cuda/sampling_params_pack.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "runtime/sampler.h"

namespace strata {
namespace {

// What the runtime will fill from a request's SamplingParams (the scheduler's side of the pack).
SequenceSampling FromParams(const SamplingParams& p, uint32_t draw_index) {
  return {.temperature = p.temperature,
          .top_p = p.top_p,
          .top_k = p.top_k,
          .min_p = p.min_p,
          .seed = p.seed,
          .draw_index = draw_index,
          .on_host = p.transforms_logits()};
}

TEST(SplitMix64At, IsTheNthOutputOfSamplerRng) {
  for (uint64_t seed : {uint64_t{0}, uint64_t{1}, uint64_t{42}, uint64_t{0x9E3779B97F4A7C15ull},
                        std::numeric_limits<uint64_t>::max(), uint64_t{0xDEADBEEFCAFEF00Dull}}) {
    SamplerRng rng(seed), uniform_rng(seed);
    for (uint64_t n = 0; n < 2000; ++n) {
      ASSERT_EQ(SplitMix64At(seed, n), rng.Next()) << "seed " << seed << " n " << n;
      ASSERT_EQ(UniformAt(seed, n), uniform_rng.Uniform()) << "seed " << seed << " n " << n;
    }
  }
  EXPECT_EQ(SplitMix64At(0, 0), 0xE220A8397B1DCDAFull);  // splitmix64's published first output for seed 0
  static_assert(SplitMix64At(7, 3) == SplitMix64At(7, 3));  // constexpr: usable in device code
}

TEST(PackSamplingParams, FlagsAndFields) {
  const PackedSamplingParams greedy = PackSamplingParams({.temperature = 0.f, .seed = 5, .draw_index = 3});
  EXPECT_EQ(greedy.flags, kPackedGreedy);
  EXPECT_EQ(greedy.seed, 5u);
  EXPECT_EQ(greedy.draw_index, 3u);
  const PackedSamplingParams sampled =
      PackSamplingParams({.temperature = 0.7f, .top_p = 0.9f, .top_k = 40, .min_p = 0.05f, .seed = 11});
  EXPECT_EQ(sampled.flags, 0u);
  EXPECT_EQ(sampled.temperature, 0.7f);
  EXPECT_EQ(sampled.top_p, 0.9f);
  EXPECT_EQ(sampled.top_k, 40);
  EXPECT_EQ(sampled.min_p, 0.05f);
  SamplingParams penalized;
  penalized.temperature = 1.f;
  penalized.presence_penalty = 0.5f;
  EXPECT_EQ(PackSamplingParams(FromParams(penalized, 0)).flags, kPackedOnHost);
  penalized.presence_penalty = 0.f;
  penalized.logit_bias = {{3, 1.f}};
  EXPECT_EQ(PackSamplingParams(FromParams(penalized, 0)).flags, kPackedOnHost);
}

TEST(PackSamplingBatch, ChoosesTheKernelFromItsRows) {
  const SequenceSampling greedy{}, host{.on_host = true}, hot{.temperature = 1.f},
      top_k{.temperature = 1.f, .top_k = 5}, top_p{.temperature = 1.f, .top_p = 0.5f},
      min_p{.temperature = 1.f, .min_p = 0.1f}, greedy_with_cuts{.top_p = 0.5f, .top_k = 3};

  PackedSamplingBatch b = PackSamplingBatch({greedy, greedy, greedy_with_cuts});
  EXPECT_EQ(b.kernel, SamplingKernel::kArgmax);  // greedy ignores cuts, as SampleToken does
  EXPECT_FALSE(b.any_truncation);
  EXPECT_TRUE(b.host_rows.empty());
  EXPECT_EQ(b.rows.size(), 3u);

  b = PackSamplingBatch({greedy, hot});
  EXPECT_EQ(b.kernel, SamplingKernel::kCutAndWalk);
  EXPECT_FALSE(b.any_truncation);
  for (const SequenceSampling& cut : {top_k, top_p, min_p}) {
    b = PackSamplingBatch({greedy, cut});
    EXPECT_EQ(b.kernel, SamplingKernel::kCutAndWalk);
    EXPECT_TRUE(b.any_truncation);
  }

  b = PackSamplingBatch({host, greedy, host});
  EXPECT_EQ(b.kernel, SamplingKernel::kArgmax);
  EXPECT_EQ(b.host_rows, (std::vector<int>{0, 2}));
  b = PackSamplingBatch({host, SequenceSampling{.temperature = 1.f, .top_k = 3, .on_host = true}});
  EXPECT_EQ(b.kernel, SamplingKernel::kNone);
  EXPECT_FALSE(b.any_truncation);  // only GPU rows count
  EXPECT_EQ(PackSamplingBatch({}).kernel, SamplingKernel::kNone);
}

TEST(SampleFromPacked, HostRowsAreNotSampled) {
  const std::vector<float> logits = {0.f, 1.f, 2.f};
  const PackedSample s = SampleFromPacked(logits.data(), 3, PackSamplingParams({.on_host = true}));
  EXPECT_EQ(s.token, -1);
}

// Seeded logits of several shapes: normal, with ties, with -inf entries, flat, peaked.
std::vector<float> RandomLogits(int vocab, int shape, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.f, 3.f);
  std::vector<float> l(vocab);
  for (float& x : l) x = normal(rng);
  if (shape == 1)
    for (float& x : l) x = std::round(x);  // many ties: order by id decides
  if (shape == 2)
    for (int i = 0; i < vocab; i += 3) l[i] = -std::numeric_limits<float>::infinity();
  if (shape == 3)
    for (float& x : l) x *= 0.01f;  // nearly flat
  if (shape == 4) l[std::uniform_int_distribution<int>(0, vocab - 1)(rng)] += 12.f;  // one dominant token
  if (shape == 2 && vocab > 0) l[vocab - 1] = 1.f;  // at least one finite logit
  return l;
}

std::vector<SamplingParams> ParamSets() {
  std::vector<SamplingParams> sets;
  auto add = [&](float temperature, int top_k, float top_p, float min_p) {
    SamplingParams p;
    p.temperature = temperature;
    p.top_k = top_k;
    p.top_p = top_p;
    p.min_p = min_p;
    sets.push_back(p);
  };
  add(0.f, 0, 1.f, 0.f);     // greedy
  add(0.f, 5, 0.5f, 0.1f);   // greedy: the cuts do nothing
  for (float t : {0.25f, 0.7f, 1.f, 1.8f}) add(t, 0, 1.f, 0.f);  // temperature
  for (int k : {1, 2, 5, 50}) add(0.9f, k, 1.f, 0.f);           // top-k
  for (float p : {0.05f, 0.5f, 0.9f, 0.999f}) add(1.f, 0, p, 0.f);  // top-p
  for (float m : {0.01f, 0.2f, 0.9f, 1.f}) add(1.2f, 0, 1.f, m);    // min-p
  add(0.8f, 40, 0.95f, 0.05f);  // all three
  add(1.5f, 3, 0.3f, 0.5f);
  return sets;
}

TEST(SampleFromPacked, MatchesSampleTokenOnSeededLogits) {
  std::mt19937 rng(7031);
  int checked = 0, sampled_rows = 0;
  for (int vocab : {1, 2, 7, 100, 1000, 32000}) {
    for (int shape = 0; shape < 5; ++shape) {
      const std::vector<float> logits = RandomLogits(vocab, shape, rng);
      for (SamplingParams p : ParamSets()) {
        for (uint64_t seed : {uint64_t{0}, uint64_t{1234}, uint64_t{0xFFFFFFFFFFFFFFF0ull}}) {
          for (uint32_t draw : {0u, 1u, 17u, 1000u}) {
            if (vocab == 32000 && draw != 17u) continue;  // keep the large vocabulary cheap
            p.seed = seed;
            SamplerRng cpu_rng(seed);
            for (uint32_t i = 0; i < draw; ++i) cpu_rng.Next();  // the stream after `draw` tokens
            const SampledToken want = SampleToken(logits.data(), vocab, p, &cpu_rng);
            const PackedSample got = SampleFromPacked(logits.data(), vocab, PackSamplingParams(FromParams(p, draw)));
            ASSERT_EQ(got.token, want.token) << "vocab " << vocab << " shape " << shape << " T " << p.temperature
                                             << " k " << p.top_k << " p " << p.top_p << " min_p " << p.min_p
                                             << " seed " << seed << " draw " << draw;
            ASSERT_EQ(got.logprob, want.logprob) << "vocab " << vocab << " token " << want.token;
            ++checked;
            sampled_rows += p.temperature > 0;
          }
        }
      }
    }
  }
  EXPECT_GT(checked, 1000);
  EXPECT_GT(sampled_rows, 800);
}

// A request's whole stream: SampleToken with one SamplerRng over many steps, against
// SampleFromPacked with the draw index of each step, on different logits every step.
TEST(SampleFromPacked, FollowsTheRequestsStreamStepByStep) {
  std::mt19937 rng(99);
  for (SamplingParams p : ParamSets()) {
    p.seed = 0xC0FFEE;
    SamplerRng stream(p.seed);
    uint32_t draws = 0;  // what the runtime counts: tokens sampled with temperature > 0
    for (int step = 0; step < 200; ++step) {
      const std::vector<float> logits = RandomLogits(500, step % 5, rng);
      const SampledToken want = SampleToken(logits.data(), 500, p, &stream);
      const PackedSample got = SampleFromPacked(logits.data(), 500, PackSamplingParams(FromParams(p, draws)));
      ASSERT_EQ(got.token, want.token) << "step " << step << " T " << p.temperature;
      ASSERT_EQ(got.logprob, want.logprob);
      if (p.temperature > 0) ++draws;
    }
  }
}

}  // namespace
}  // namespace strata
