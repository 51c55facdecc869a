#include "runtime/token_selector.h"

#include <utility>

#include "runtime/base/token_choice.h"
#include "runtime/stop_rule.h"

namespace strata {

TokenSelector::TokenSelector(const GenerationRequest& request, std::vector<int> eos_ids, int vocab)
    : r_(request), eos_ids_(std::move(eos_ids)), vocab_(vocab), rng_(request.sampling.seed) {
  if (r_.grammar) matcher_ = std::make_unique<grammar::GrammarMatcher>(r_.grammar);
}

TokenSelection TokenSelector::Select(const float* row, const std::vector<int>& generated) {
  const SampledToken t = Draw(row, generated);
  TokenSelection out{t.token, t.logprob, {}};
  if (r_.top_logprobs > 0) out.top_logprobs = TopLogprobs(row, vocab_, r_.top_logprobs);
  return out;
}

SampledToken TokenSelector::Draw(const float* row, const std::vector<int>& generated) {
  if (generated.size() < r_.forced_tokens.size()) {
    const int t = r_.forced_tokens[generated.size()];
    return {t, r_.logprob ? static_cast<float>(LogSoftmaxAt(row, vocab_, t)) : 0.f};
  }
  const std::vector<int> banned = TokensBannedNow(r_, eos_ids_, static_cast<int>(generated.size()));
  if (matcher_) return DrawUnderGrammar(row, generated, banned);
  return SampleToken(row, vocab_, r_.sampling, &rng_,
                     {.prompt = &r_.prompt, .output = &generated, .banned = &banned, .logprob = r_.logprob});
}

// Structured output: only what the grammar allows. Where the grammar allows nothing but the
// end, the end wins over min_tokens.
SampledToken TokenSelector::DrawUnderGrammar(const float* row, const std::vector<int>& generated,
                                             const std::vector<int>& banned) {
  matcher_->FillNextTokenMask(&mask_);
  bool any = false;
  for (uint32_t w : mask_) any |= w != 0;
  if (!any) return {-1, 0.f};
  for (int b : banned)
    if (b >= 0 && b < vocab_) mask_[b >> 5] &= ~(1u << (b & 31));
  bool left = false;
  for (uint32_t w : mask_) left |= w != 0;
  if (!left) matcher_->FillNextTokenMask(&mask_);
  const SampledToken t = SampleToken(row, vocab_, r_.sampling, &rng_,
                                     {.prompt = &r_.prompt, .output = &generated, .allowed = mask_.data(),
                                      .logprob = r_.logprob});
  // The mask allows only tokens the matcher takes; logits that are all -inf or NaN could still
  // pick one outside it, and that ends the request rather than the server.
  if (!matcher_->AcceptToken(t.token)) return {-1, 0.f};
  return t;
}

}  // namespace strata
