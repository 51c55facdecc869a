// File: runtime/token_selector.h
// Token selection for one request: from a row of the step's logits to its next token. In order:
// a forced token (teacher forcing) wins; otherwise the grammar's mask (if any) and the stop rule's
// bans restrict the vocabulary, the logit processors and the draw run (SampleToken, sampler.h),
// and the token's logprob and top logprobs are reported. It owns the request's random stream and
// grammar position, so it is created once per request and fed its rows in order.
#pragma once

#include <memory>
#include <utility>
#include <vector>

#include "runtime/grammar/grammar_matcher.h"
#include "runtime/request.h"
#include "runtime/sampler.h"

namespace strata {

struct TokenSelection {
  int token = -1;  // -1: the grammar allows no token at all (the request cannot go on)
  float logprob = 0.f;
  std::vector<std::pair<int, float>> top_logprobs;  // when the request asked for them
};

class TokenSelector {
 public:
  // `request` must outlive the selector (the scheduler holds both in one sequence).
  TokenSelector(const GenerationRequest& request, std::vector<int> eos_ids, int vocab);
  TokenSelector(GenerationRequest&&, std::vector<int>, int) = delete;

  // The next token after `generated` (the request's output so far) from its logits `row`.
  TokenSelection Select(const float* row, const std::vector<int>& generated);
  // The grammar (if any) accepts nothing after the tokens selected so far but the end.
  bool grammar_complete() const { return matcher_ && matcher_->IsComplete(); }

 private:
  SampledToken Draw(const float* row, const std::vector<int>& generated);
  SampledToken DrawUnderGrammar(const float* row, const std::vector<int>& generated, const std::vector<int>& banned);

  const GenerationRequest& r_;
  const std::vector<int> eos_ids_;
  int vocab_;
  SamplerRng rng_;
  std::unique_ptr<grammar::GrammarMatcher> matcher_;  // where the output stands in r_.grammar
  grammar::TokenMask mask_;                           // scratch: the grammar's mask
};

}  // namespace strata
