// Sampling against exact probabilities: greedy, temperature, top-k, top-p, seeds.
#include <gtest/gtest.h>

#include <cmath>
#include <map>

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

}  // namespace
}  // namespace strata
