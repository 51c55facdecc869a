// File: runtime/sampler.h
// Token selection from one row of logits, seeded per request. The logits pass, in vLLM's order,
// logit_bias, then the repetition, frequency and presence penalties, then the banned tokens;
// then greedy, or temperature with top-k, top-p and min-p truncation (the token a draw selects is
// defined once, in runtime/base/token_choice.h).
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

namespace strata {

struct SamplingParams {
  float temperature = 0.f;  // 0: greedy
  float top_p = 1.f;        // (0, 1]
  int top_k = 0;            // 0: all
  uint64_t seed = 0;
  float min_p = 0.f;               // [0, 1]: drop tokens less likely than min_p x the most likely
  float presence_penalty = 0.f;    // subtracted once from every token already generated
  float frequency_penalty = 0.f;   // subtracted per time a token was generated
  float repetition_penalty = 1.f;  // tokens of the prompt or output: positive logits / p, negative x p
  std::vector<std::pair<int, float>> logit_bias;  // added to these tokens' logits

  bool transforms_logits() const {
    return presence_penalty != 0 || frequency_penalty != 0 || repetition_penalty != 1 || !logit_bias.empty();
  }
};

// What the penalties look at, and tokens that may not be chosen at this step.
struct SamplingContext {
  const std::vector<int>* prompt = nullptr;
  const std::vector<int>* output = nullptr;
  const std::vector<int>* banned = nullptr;  // e.g. EOS before min_tokens
  // A bitmask over the vocabulary (bit i of word i / 32): only these may be chosen (a grammar's).
  const uint32_t* allowed = nullptr;
  // Compute SampledToken::logprob (a pass over the vocabulary); false leaves it 0.
  bool logprob = true;
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

SampledToken SampleToken(const float* logits, int vocab, const SamplingParams& p, SamplerRng* rng,
                         const SamplingContext& context = {});

// The logits after logit_bias, penalties and bans (what SampleToken draws from).
std::vector<float> ProcessLogits(const float* logits, int vocab, const SamplingParams& p, const SamplingContext& c);

// The `k` most likely tokens under log_softmax(logits), most likely first (ties by id).
std::vector<std::pair<int, float>> TopLogprobs(const float* logits, int vocab, int k);

}  // namespace strata
