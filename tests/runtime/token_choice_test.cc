// ChooseToken (runtime/base/token_choice.h) against a naive transcription of its definition: the
// whole vocabulary stable-sorted by rank, every cut applied to that sorted list, sums added in
// the orders the definition names. Same sums in the same order, so the tokens must be equal for
// every draw, on seeded logits with ties, -inf, NaN, +inf, flat and peaked shapes.
#include "runtime/base/token_choice.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

namespace strata {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

int NaiveChoose(const std::vector<float>& l, const TokenCuts& c, double u) {
  const int vocab = static_cast<int>(l.size());
  std::vector<int> ranked;  // candidates: neither NaN nor -inf
  for (int i = 0; i < vocab; ++i)
    if (!std::isnan(l[i]) && l[i] != -kInf) ranked.push_back(i);
  const int argmax = static_cast<int>(std::max_element(l.begin(), l.end()) - l.begin());
  if (ranked.empty()) return argmax;
  std::stable_sort(ranked.begin(), ranked.end(), [&](int a, int b) { return l[a] > l[b]; });
  const float best = l[ranked[0]];
  if (!std::isfinite(best)) return argmax;
  std::vector<double> p(vocab, 0.0);
  for (int i : ranked) p[i] = std::exp((static_cast<double>(l[i]) - best) / static_cast<double>(c.temperature));
  if (c.top_k > 0 && c.top_k < static_cast<int>(ranked.size())) ranked.resize(c.top_k);
  if (c.top_p < 1.f) {
    std::vector<int> by_id = ranked;
    std::sort(by_id.begin(), by_id.end());
    double total = 0;
    for (int i : by_id) total += p[i];
    double cum = 0;
    size_t keep = ranked.size();
    for (size_t r = 0; r < ranked.size(); ++r) {
      cum += p[ranked[r]];
      if (cum >= c.top_p * total) {
        keep = r + 1;
        break;
      }
    }
    ranked.resize(keep);
  }
  if (c.min_p > 0.f)
    ranked.erase(std::remove_if(ranked.begin(), ranked.end(), [&](int i) { return p[i] < c.min_p && p[i] != 1.0; }),
                 ranked.end());
  std::sort(ranked.begin(), ranked.end());  // the walk is in id order
  double total = 0;
  for (int i : ranked) total += p[i];
  double left = u * total;
  int last = argmax;
  for (int i : ranked) {
    if (p[i] == 0.0) continue;
    left -= p[i];
    if (left < 0) return i;
    last = i;
  }
  return last;
}

std::vector<float> Logits(int vocab, int shape, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.f, 3.f);
  std::vector<float> l(vocab);
  for (float& x : l) x = normal(rng);
  std::uniform_int_distribution<int> any(0, vocab - 1);
  switch (shape) {
    case 1:  // ties everywhere, including -0 and +0
      for (float& x : l) x = std::round(x * 0.5f);
      l[any(rng)] = -0.f;
      break;
    case 2:  // a grammar's mask: most tokens -inf
      for (int i = 0; i < vocab; ++i)
        if (i % 7 != 3) l[i] = -kInf;
      break;
    case 3:  // nearly flat
      for (float& x : l) x *= 1e-3f;
      break;
    case 4:  // one dominant token
      l[any(rng)] += 25.f;
      break;
    case 5:  // NaN entries, which are never chosen
      for (int k = 0; k < 3; ++k) l[any(rng)] = std::numeric_limits<float>::quiet_NaN();
      break;
  }
  return l;
}

TEST(ChooseToken, EqualsTheNaiveDefinition) {
  std::mt19937 rng(20261206);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  const std::vector<TokenCuts> cut_sets = {
      {.temperature = 1.f},
      {.temperature = 0.3f},
      {.temperature = 2.5f},
      {.temperature = 1.f, .top_k = 1},
      {.temperature = 0.8f, .top_k = 40},
      {.temperature = 1.f, .top_k = 1000},
      {.temperature = 1.f, .top_p = 0.05f},
      {.temperature = 1.f, .top_p = 0.9f},
      {.temperature = 0.7f, .top_p = 0.999f},
      {.temperature = 1.2f, .min_p = 0.05f},
      {.temperature = 1.f, .min_p = 1.f},
      {.temperature = 0.8f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f},  // llama.cpp's defaults
      {.temperature = 1.5f, .top_k = 300, .top_p = 0.5f},
  };
  int checked = 0;
  for (int vocab : {1, 2, 9, 100, 3000, 50257}) {
    for (int shape = 0; shape < 6; ++shape) {
      const std::vector<float> l = Logits(vocab, shape, rng);
      for (const TokenCuts& c : cut_sets) {
        const int draws = vocab > 5000 ? 3 : 40;
        for (int d = 0; d < draws; ++d) {
          const double u = d == 0 ? 0.0 : d == 1 ? std::nextafter(1.0, 0.0) : uniform(rng);
          ASSERT_EQ(ChooseToken(l.data(), vocab, c, u), NaiveChoose(l, c, u))
              << "vocab " << vocab << " shape " << shape << " T " << c.temperature << " k " << c.top_k << " p "
              << c.top_p << " min_p " << c.min_p << " u " << u;
          ++checked;
        }
      }
    }
  }
  EXPECT_GT(checked, 10000);
}

TEST(ChooseToken, NonFiniteRows) {
  const std::vector<float> all_masked(5, -kInf);
  EXPECT_EQ(ChooseToken(all_masked.data(), 5, {}, 0.5), 0);  // the argmax of equals: the first
  const std::vector<float> pos_inf = {1.f, kInf, 2.f, kInf};
  EXPECT_EQ(ChooseToken(pos_inf.data(), 4, {}, 0.9), 1);  // the first +inf, as greedy
  const std::vector<float> one_left = {-kInf, std::numeric_limits<float>::quiet_NaN(), 3.f, -kInf};
  for (double u : {0.0, 0.5, 0.999})
    EXPECT_EQ(ChooseToken(one_left.data(), 4, {.temperature = 1.f, .top_p = 0.5f}, u), 2);
}

// The draw's distribution is the kept tokens' normalized p_i: frequencies over many u.
TEST(ChooseToken, FrequenciesFollowTheKeptMass) {
  const std::vector<float> l = {2.f, 0.f, 1.f, 3.f, -1.f};
  const TokenCuts c{.temperature = 1.f, .top_k = 3};  // keeps ids 3, 0, 2
  std::vector<double> want(5, 0.0);
  double total = 0;
  for (int i : {0, 2, 3}) total += want[i] = std::exp(l[i] - 3.0);
  std::vector<int> counts(5, 0);
  const int n = 200000;
  for (int d = 0; d < n; ++d) ++counts[ChooseToken(l.data(), 5, c, (d + 0.5) / n)];
  for (int i = 0; i < 5; ++i) EXPECT_NEAR(counts[i] / static_cast<double>(n), want[i] / total, 1e-4) << i;
}

TEST(ArgmaxToken, IsStdMaxElementOnRowsWithNaNInfAndSignedZeros) {
  std::mt19937 rng(11);
  const float specials[] = {std::numeric_limits<float>::quiet_NaN(), kInf, -kInf, 0.f, -0.f, 1.f};
  for (int trial = 0; trial < 3000; ++trial) {
    const int vocab = 1 + static_cast<int>(rng() % 40);
    std::vector<float> l(vocab);
    for (float& x : l) x = rng() % 3 == 0 ? specials[rng() % 6] : static_cast<float>(static_cast<int>(rng() % 7) - 3);
    const int want = static_cast<int>(std::max_element(l.begin(), l.end()) - l.begin());
    ASSERT_EQ(ArgmaxToken(l.data(), vocab), want) << "trial " << trial;
  }
}

TEST(LogSoftmaxAt, MatchesADirectFormula) {
  const std::vector<float> l = {0.5f, -2.f, 3.f, 1.f};
  double sum = 0;
  for (float x : l) sum += std::exp(static_cast<double>(x));
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(LogSoftmaxAt(l.data(), 4, i), l[i] - std::log(sum), 1e-12);
  EXPECT_EQ(ArgmaxToken(l.data(), 4), 2);
}

}  // namespace
}  // namespace strata
