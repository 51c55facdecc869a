#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace strata {

uint64_t SamplerRng::Next() {
  uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

double TokenLogprob(const float* logits, int vocab, int token) {
  double mx = logits[0];
  for (int i = 1; i < vocab; ++i) mx = std::max(mx, static_cast<double>(logits[i]));
  double sum = 0;
  for (int i = 0; i < vocab; ++i) sum += std::exp(logits[i] - mx);
  return logits[token] - mx - std::log(sum);
}

SampledToken SampleToken(const float* logits, int vocab, const SamplingParams& p, SamplerRng* rng) {
  int chosen = 0;
  if (p.temperature <= 0.f) {
    chosen = static_cast<int>(std::max_element(logits, logits + vocab) - logits);  // first max wins ties
  } else {
    // Candidates sorted by logit (ties by id), truncated by top-k then top-p.
    std::vector<int> idx(vocab);
    std::iota(idx.begin(), idx.end(), 0);
    std::stable_sort(idx.begin(), idx.end(), [&](int a, int b) { return logits[a] > logits[b]; });
    size_t keep = p.top_k > 0 ? std::min<size_t>(p.top_k, idx.size()) : idx.size();
    std::vector<double> prob(keep);
    const double mx = logits[idx[0]];
    double sum = 0;
    for (size_t i = 0; i < keep; ++i) sum += prob[i] = std::exp((logits[idx[i]] - mx) / p.temperature);
    if (p.top_p < 1.f) {
      double cum = 0;
      size_t k = 0;
      while (k < keep) {
        cum += prob[k++] / sum;
        if (cum >= p.top_p) break;
      }
      keep = k;
      sum = 0;
      for (size_t i = 0; i < keep; ++i) sum += prob[i];
    }
    double u = rng->Uniform() * sum;
    chosen = idx[keep - 1];
    for (size_t i = 0; i < keep; ++i) {
      u -= prob[i];
      if (u < 0) {
        chosen = idx[i];
        break;
      }
    }
  }
  return {chosen, static_cast<float>(TokenLogprob(logits, vocab, chosen))};
}

}  // namespace strata
