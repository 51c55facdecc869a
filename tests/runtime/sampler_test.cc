// Sampling against exact probabilities: greedy, temperature, top-k, top-p, min-p, seeds, and the
// logits processors (logit_bias, repetition / frequency / presence penalties, bans) against the
// formulas of the OpenAI and vLLM documentation applied by hand.
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "runtime/base/token_choice.h"
#include "runtime/sampler.h"

namespace strata {
namespace {

const std::vector<float> kLogits = {1.0f, 3.0f, 2.0f, 0.5f, 2.5f, -1.0f};

std::vector<double> Softmax(const std::vector<float>& l, double temp) {
  std::vector<double> p(l.size());
  double s = 0;
  for (size_t i = 0; i < l.size(); ++i) s += p[i] = std::exp(l[i] / temp);
  for (double& x : p) x /= s;
  return p;
}

std::map<int, int> Draw(const SamplingParams& p, int n) {
  SamplerRng rng(p.seed);
  std::map<int, int> counts;
  for (int i = 0; i < n; ++i) counts[SampleToken(kLogits.data(), 6, p, &rng).token]++;
  return counts;
}

TEST(Sampler, GreedyAndLogprobOfFullSoftmax) {
  SamplerRng rng(0);
  SampledToken t = SampleToken(kLogits.data(), 6, SamplingParams{}, &rng);
  EXPECT_EQ(t.token, 1);
  EXPECT_NEAR(t.logprob, std::log(Softmax(kLogits, 1.0)[1]), 1e-6);
  // The logprob ignores temperature and truncation.
  SamplingParams p{0.5f, 0.5f, 2, 9};
  t = SampleToken(kLogits.data(), 6, p, &rng);
  EXPECT_NEAR(t.logprob, std::log(Softmax(kLogits, 1.0)[t.token]), 1e-6);
}

TEST(Sampler, TemperatureMatchesSoftmaxFrequencies) {
  const int n = 200000;
  SamplingParams p{0.7f, 1.f, 0, 42};
  auto counts = Draw(p, n);
  const auto probs = Softmax(kLogits, 0.7);
  for (int i = 0; i < 6; ++i) {
    const double sd = std::sqrt(probs[i] * (1 - probs[i]) / n);
    EXPECT_NEAR(counts[i] / static_cast<double>(n), probs[i], 5 * sd + 1e-6) << "token " << i;
  }
}

TEST(Sampler, TopKAndTopPTruncate) {
  auto counts = Draw({1.f, 1.f, 2, 3}, 20000);
  EXPECT_EQ(counts.size(), 2u);  // only tokens 1 and 4
  EXPECT_GT(counts[1], 0);
  EXPECT_GT(counts[4], 0);
  // top_p 0.6 at temperature 1: p(1)=0.398, p(4)=0.241 -> cumulative 0.64 >= 0.6 keeps {1, 4}.
  counts = Draw({1.f, 0.6f, 0, 5}, 20000);
  EXPECT_EQ(counts.size(), 2u);
  const double ratio = counts[1] / static_cast<double>(counts[4]);
  EXPECT_NEAR(ratio, std::exp(0.5), 0.1);
  // top_k 1 is greedy.
  EXPECT_EQ(Draw({1.f, 1.f, 1, 8}, 100).begin()->first, 1);
}

TEST(Sampler, SeedsReproduce) {
  SamplingParams p{1.f, 1.f, 0, 77};
  EXPECT_EQ(Draw(p, 1000), Draw(p, 1000));
  SamplingParams q = p;
  q.seed = 78;
  EXPECT_NE(Draw(p, 1000), Draw(q, 1000));
}


// Frequencies of `n` draws from `logits` at temperature 1 with `p` and `c`, against softmax(`want`).
void ExpectFrequencies(const std::vector<float>& logits, SamplingParams p, const SamplingContext& c,
                       const std::vector<float>& want, int n = 100000) {
  p.temperature = 1.f;
  SamplerRng rng(p.seed);
  std::map<int, int> counts;
  for (int i = 0; i < n; ++i) counts[SampleToken(logits.data(), static_cast<int>(logits.size()), p, &rng, c).token]++;
  const auto probs = Softmax(want, 1.0);
  for (size_t t = 0; t < want.size(); ++t) {
    const double sd = std::sqrt(probs[t] * (1 - probs[t]) / n);
    EXPECT_NEAR(counts[static_cast<int>(t)] / static_cast<double>(n), probs[t], 5 * sd + 1e-6) << "token " << t;
  }
}

TEST(Sampler, LogitBiasAddsToTheLogits) {
  SamplingParams p;
  p.logit_bias = {{5, 10.f}, {1, -1.f}};
  SamplerRng rng(0);
  EXPECT_EQ(SampleToken(kLogits.data(), 6, p, &rng).token, 5);  // -1 + 10 beats 3 - 1
  p.logit_bias = {{5, 2.f}, {1, -1.f}};
  std::vector<float> want = kLogits;
  want[5] += 2.f;
  want[1] -= 1.f;
  ExpectFrequencies(kLogits, p, {}, want);
  // The reported logprob stays the raw model's, whatever the processors did.
  const SampledToken t = SampleToken(kLogits.data(), 6, p, &rng);
  EXPECT_NEAR(t.logprob, std::log(Softmax(kLogits, 1.0)[t.token]), 1e-6);
}

TEST(Sampler, FrequencyAndPresencePenaltiesCountTheOutput) {
  SamplingParams p;
  p.frequency_penalty = 0.4f;
  p.presence_penalty = 0.3f;
  const std::vector<int> prompt = {2, 2, 2}, output = {1, 1, 4};
  // OpenAI: logit[j] -= count[j] * frequency_penalty + (count[j] > 0) * presence_penalty; the
  // prompt does not count.
  std::vector<float> want = kLogits;
  want[1] -= 2 * 0.4f + 0.3f;
  want[4] -= 1 * 0.4f + 0.3f;
  ExpectFrequencies(kLogits, p, {.prompt = &prompt, .output = &output}, want);
  const std::vector<float> processed =
      ProcessLogits(kLogits.data(), 6, p, {.prompt = &prompt, .output = &output});
  for (int t = 0; t < 6; ++t) EXPECT_FLOAT_EQ(processed[t], want[t]) << t;
}

TEST(Sampler, RepetitionPenaltyDividesPositiveAndMultipliesNegativeSeenLogits) {
  SamplingParams p;
  p.repetition_penalty = 1.3f;
  const std::vector<int> prompt = {1}, output = {5, 5};
  std::vector<float> want = kLogits;
  want[1] = 3.0f / 1.3f;    // seen in the prompt, positive
  want[5] = -1.0f * 1.3f;   // seen in the output, negative
  ExpectFrequencies(kLogits, p, {.prompt = &prompt, .output = &output}, want);
  SamplerRng rng(0);
  EXPECT_EQ(SampleToken(kLogits.data(), 6, p, &rng, {.prompt = &prompt, .output = &output}).token, 4);  // 2.5 > 2.31
}

TEST(Sampler, MinPKeepsTokensNearTheMostLikely) {
  // At temperature 1: p(1) : p(4) : p(2) = e^3 : e^2.5 : e^2; min_p 0.5 keeps p >= 0.5 p(1): {1, 4}.
  SamplingParams p{1.f, 1.f, 0, 11};
  p.min_p = 0.5f;
  auto counts = Draw(p, 40000);
  EXPECT_EQ(counts.size(), 2u);
  EXPECT_NEAR(counts[1] / static_cast<double>(counts[4]), std::exp(0.5), 0.06);
}

TEST(Sampler, BannedTokensAreNeverChosen) {
  const std::vector<int> banned = {1, 4};
  SamplerRng rng(3);
  EXPECT_EQ(SampleToken(kLogits.data(), 6, {}, &rng, {.banned = &banned}).token, 2);
  std::vector<float> want = kLogits;
  want[1] = want[4] = -1e30f;
  ExpectFrequencies(kLogits, SamplingParams{}, {.banned = &banned}, want);
}

TEST(Sampler, OnlyTokensInTheAllowedMaskAreChosen) {
  const uint32_t allowed = (1u << 0) | (1u << 3) | (1u << 5);  // a grammar's mask over 6 tokens
  SamplerRng rng(4);
  EXPECT_EQ(SampleToken(kLogits.data(), 6, {}, &rng, {.allowed = &allowed}).token, 0);  // the best allowed
  std::vector<float> want = kLogits;
  want[1] = want[2] = want[4] = -1e30f;
  SamplingParams p;
  p.temperature = 1.f;
  ExpectFrequencies(kLogits, p, {.allowed = &allowed}, want);
  // The logprob stays the raw softmax's, as with every other transform.
  const SampledToken t = SampleToken(kLogits.data(), 6, {}, &rng, {.allowed = &allowed});
  EXPECT_NEAR(t.logprob, LogSoftmaxAt(kLogits.data(), 6, t.token), 1e-6);
}

TEST(Sampler, TopLogprobsAreTheSortedLogSoftmax) {
  const auto top = TopLogprobs(kLogits.data(), 6, 3);
  ASSERT_EQ(top.size(), 3u);
  const auto probs = Softmax(kLogits, 1.0);
  const int order[3] = {1, 4, 2};
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(top[i].first, order[i]);
    EXPECT_NEAR(top[i].second, std::log(probs[order[i]]), 1e-6);
  }
  EXPECT_EQ(TopLogprobs(kLogits.data(), 6, 0).size(), 0u);
  EXPECT_EQ(TopLogprobs(kLogits.data(), 6, 99).size(), 6u);
}

// Without the logprob (SamplingContext::logprob = false) the same token is drawn and the
// logprob is left 0.
TEST(Sampler, LogprobIsSkippedOnRequestWithoutChangingTheToken) {
  SamplingParams p;
  p.temperature = 0.9f;
  p.top_k = 4;
  SamplerRng with(3), without(3);
  for (int i = 0; i < 200; ++i) {
    const SampledToken a = SampleToken(kLogits.data(), 6, p, &with);
    const SampledToken b = SampleToken(kLogits.data(), 6, p, &without, {.logprob = false});
    ASSERT_EQ(a.token, b.token);
    EXPECT_EQ(b.logprob, 0.f);
    EXPECT_NEAR(a.logprob, LogSoftmaxAt(kLogits.data(), 6, a.token), 1e-6);
  }
}

}  // namespace
}  // namespace strata
