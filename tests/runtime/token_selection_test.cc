// Token selection (runtime/token_selector.h) and the stop rule (runtime/stop_rule.h) on their
// own: forced tokens, min_tokens bans, top logprobs and seeded draws against recomputes, and the
// stop rule's cases against the rule as documented.
#include "runtime/stop_rule.h"
#include "runtime/token_selector.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

namespace strata {
namespace {

constexpr int kVocab = 50;

std::vector<float> RandomRow(std::mt19937& rng) {
  std::normal_distribution<float> n(0.f, 2.f);
  std::vector<float> row(kVocab);
  for (float& x : row) x = n(rng);
  return row;
}

double NaiveLogSoftmax(const std::vector<float>& row, int t) {
  double m = *std::max_element(row.begin(), row.end()), z = 0;
  for (float x : row) z += std::exp(x - m);
  return row[t] - m - std::log(z);
}

int ArgmaxExcept(const std::vector<float>& row, const std::vector<int>& banned) {
  int best = -1;
  for (int i = 0; i < kVocab; ++i)
    if (std::find(banned.begin(), banned.end(), i) == banned.end() && (best < 0 || row[i] > row[best])) best = i;
  return best;
}

TEST(TokenSelector, ForcedTokensComeFirstWithTheirFullSoftmaxLogprob) {
  std::mt19937 rng(1);
  GenerationRequest r;
  r.forced_tokens = {7, 3, 44};
  const std::vector<int> eos = {0};
  TokenSelector sel(r, eos, kVocab);
  std::vector<int> generated;
  for (int i = 0; i < 5; ++i) {
    const std::vector<float> row = RandomRow(rng);
    const TokenSelection t = sel.Select(row.data(), generated);
    if (i < 3) {
      EXPECT_EQ(t.token, r.forced_tokens[i]);
    } else {
      EXPECT_EQ(t.token, ArgmaxExcept(row, {}));  // greedy once the forced ones are used
    }
    EXPECT_NEAR(t.logprob, NaiveLogSoftmax(row, t.token), 1e-4);
    generated.push_back(t.token);
  }
}

TEST(TokenSelector, StoppingIdsAreBannedUntilMinTokens) {
  std::mt19937 rng(2);
  GenerationRequest r;
  r.min_tokens = 3;
  r.stop_token_ids = {5};
  const std::vector<int> eos = {0, 1};
  TokenSelector sel(r, eos, kVocab);
  std::vector<int> generated;
  for (int i = 0; i < 6; ++i) {
    std::vector<float> row = RandomRow(rng);
    row[i % 2 == 0 ? 0 : 5] = 100.f;  // a stopping id is by far the most likely
    const TokenSelection t = sel.Select(row.data(), generated);
    const std::vector<int> banned = i < 3 ? std::vector<int>{0, 1, 5} : std::vector<int>{};
    EXPECT_EQ(t.token, ArgmaxExcept(row, banned)) << "token " << i;
    generated.push_back(t.token);
  }
}

TEST(TokenSelector, TopLogprobsAreTheBestTokensOfTheFullSoftmax) {
  std::mt19937 rng(3);
  GenerationRequest r;
  r.top_logprobs = 5;
  const std::vector<int> eos;
  TokenSelector sel(r, eos, kVocab);
  const std::vector<float> row = RandomRow(rng);
  const TokenSelection t = sel.Select(row.data(), {});
  std::vector<int> order(kVocab);
  for (int i = 0; i < kVocab; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return row[a] > row[b]; });
  ASSERT_EQ(t.top_logprobs.size(), 5u);
  for (int k = 0; k < 5; ++k) {
    EXPECT_EQ(t.top_logprobs[k].first, order[k]);
    EXPECT_NEAR(t.top_logprobs[k].second, NaiveLogSoftmax(row, order[k]), 1e-4);
  }
}

// A seeded request draws exactly what SampleToken draws with the same seed and context, so
// results do not depend on which selector (or batch) a request is in.
TEST(TokenSelector, SeededDrawsEqualTheSamplerWithTheSameStream) {
  std::mt19937 rng(4);
  GenerationRequest r;
  r.prompt = {1, 2, 3};
  r.sampling.temperature = 0.9f;
  r.sampling.top_p = 0.8f;
  r.sampling.repetition_penalty = 1.3f;
  r.sampling.seed = 99;
  const std::vector<int> eos;
  TokenSelector sel(r, eos, kVocab);
  SamplerRng stream(99);
  std::vector<int> generated;
  for (int i = 0; i < 40; ++i) {
    const std::vector<float> row = RandomRow(rng);
    const SampledToken want = SampleToken(row.data(), kVocab, r.sampling, &stream,
                                          {.prompt = &r.prompt, .output = &generated});
    const TokenSelection got = sel.Select(row.data(), generated);
    ASSERT_EQ(got.token, want.token) << "draw " << i;
    EXPECT_FLOAT_EQ(got.logprob, want.logprob);
    generated.push_back(got.token);
  }
}

TEST(StopRule, EachReasonAsDocumented) {
  GenerationRequest r;
  r.max_tokens = 4;
  r.stop_token_ids = {9};
  const std::vector<int> eos = {2};
  struct Case {
    bool ignore_eos;
    int token, generated;
    bool grammar_complete;
    bool finished;
    const char* reason;
    bool by_token;
  } cases[] = {
      {false, 2, 1, false, true, "stop", true},     // EOS
      {true, 2, 1, false, false, "", false},        // EOS ignored
      {true, 9, 1, false, true, "stop", true},      // a stop id, even with ignore_eos
      {false, 7, 1, true, true, "stop", false},     // the grammar's sentence is whole
      {false, 7, 4, false, true, "length", false},  // max_tokens
      {false, 9, 4, false, true, "stop", true},     // a stop id at the length limit is a stop
      {false, 7, 3, false, false, "", false},
  };
  for (const Case& c : cases) {
    r.ignore_eos = c.ignore_eos;
    const StopDecision d = DecideStop(r, eos, c.token, c.generated, c.grammar_complete);
    EXPECT_EQ(d.finished, c.finished) << "token " << c.token << " at " << c.generated;
    EXPECT_EQ(d.reason, c.reason) << "token " << c.token << " at " << c.generated;
    EXPECT_EQ(d.by_token, c.by_token) << "token " << c.token << " at " << c.generated;
  }
  r.ignore_eos = false;
  r.min_tokens = 2;
  EXPECT_EQ(TokensBannedNow(r, eos, 1), (std::vector<int>{9, 2}));
  EXPECT_TRUE(TokensBannedNow(r, eos, 2).empty());
  r.ignore_eos = true;
  EXPECT_EQ(TokensBannedNow(r, eos, 0), (std::vector<int>{9}));
}

}  // namespace
}  // namespace strata
