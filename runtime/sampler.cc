#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "runtime/base/token_choice.h"

namespace strata {

uint64_t SamplerRng::Next() {
  uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

std::vector<float> ProcessLogits(const float* logits, int vocab, const SamplingParams& p, const SamplingContext& c) {
  std::vector<float> l(logits, logits + vocab);
  for (const auto& [token, bias] : p.logit_bias)
    if (token >= 0 && token < vocab) l[token] += bias;
  if (p.repetition_penalty != 1.f) {
    std::vector<bool> seen(vocab, false);
    for (const std::vector<int>* ids : {c.prompt, c.output})
      if (ids)
        for (int t : *ids)
          if (t >= 0 && t < vocab) seen[t] = true;
    for (int t = 0; t < vocab; ++t)
      if (seen[t]) l[t] = l[t] > 0 ? l[t] / p.repetition_penalty : l[t] * p.repetition_penalty;
  }
  if ((p.frequency_penalty != 0 || p.presence_penalty != 0) && c.output) {
    std::vector<int> count(vocab, 0);
    for (int t : *c.output)
      if (t >= 0 && t < vocab) ++count[t];
    for (int t = 0; t < vocab; ++t)
      if (count[t] > 0) l[t] -= p.frequency_penalty * static_cast<float>(count[t]) + p.presence_penalty;
  }
  if (c.allowed)
    for (int t = 0; t < vocab; ++t)
      if (!((c.allowed[t >> 5] >> (t & 31)) & 1u)) l[t] = -std::numeric_limits<float>::infinity();
  if (c.banned)
    for (int t : *c.banned)
      if (t >= 0 && t < vocab) l[t] = -std::numeric_limits<float>::infinity();
  return l;
}

std::vector<std::pair<int, float>> TopLogprobs(const float* logits, int vocab, int k) {
  k = std::clamp(k, 0, vocab);
  std::vector<int> idx(vocab);
  std::iota(idx.begin(), idx.end(), 0);
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int a, int b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  });
  double mx = logits[0];
  for (int i = 1; i < vocab; ++i) mx = std::max(mx, static_cast<double>(logits[i]));
  double sum = 0;
  for (int i = 0; i < vocab; ++i) sum += std::exp(logits[i] - mx);
  std::vector<std::pair<int, float>> out;
  for (int i = 0; i < k; ++i) out.push_back({idx[i], static_cast<float>(logits[idx[i]] - mx - std::log(sum))});
  return out;
}

SampledToken SampleToken(const float* raw, int vocab, const SamplingParams& p, SamplerRng* rng,
                         const SamplingContext& context) {
  std::vector<float> processed;
  const float* logits = raw;
  if (p.transforms_logits() || (context.banned && !context.banned->empty()) || context.allowed) {
    processed = ProcessLogits(raw, vocab, p, context);
    logits = processed.data();
  }
  const int chosen = p.temperature <= 0.f
                         ? ArgmaxToken(logits, vocab)  // first max wins ties
                         : ChooseToken(logits, vocab,
                                       {.temperature = p.temperature, .top_k = p.top_k, .top_p = p.top_p, .min_p = p.min_p},
                                       rng->Uniform());
  return {chosen, context.logprob ? static_cast<float>(LogSoftmaxAt(raw, vocab, chosen)) : 0.f};
}

}  // namespace strata
