// File: runtime/sampler.h
// Token selection from one row of logits: greedy, temperature, top-k, top-p, seeded per request.
#pragma once

#include <cstdint>
#include <vector>

namespace strata {

struct SamplingParams {
  float temperature = 0.f;  // 0: greedy
  float top_p = 1.f;        // (0, 1]
  int top_k = 0;            // 0: all
  uint64_t seed = 0;
};

// A request's random stream: splitmix64, so results are the same on every platform.
class SamplerRng {
 public:
  explicit SamplerRng(uint64_t seed) : state_(seed) {}
  uint64_t Next();
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

 private:
  uint64_t state_;
};

struct SampledToken {
  int token = 0;
  // Natural log of the token's probability under the full softmax of the raw logits
  // (before temperature and truncation).
  float logprob = 0.f;
};

SampledToken SampleToken(const float* logits, int vocab, const SamplingParams& p, SamplerRng* rng);

// log_softmax(logits)[token], computed in double.
double TokenLogprob(const float* logits, int vocab, int token);

}  // namespace strata
