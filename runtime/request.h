// File: runtime/request.h
// A generation request as the engine takes it, and what each step reports for it: the types the
// scheduler, token selection, the stop rule and the server share.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "runtime/grammar/grammar_matcher.h"
#include "runtime/sampler.h"

namespace strata {

using RequestId = int64_t;

struct GenerationRequest {
  std::vector<int> prompt;
  int max_tokens = 16;
  SamplingParams sampling;
  bool ignore_eos = false;
  int min_tokens = 0;               // EOS and stop_token_ids cannot be chosen before this many tokens
  std::vector<int> stop_token_ids;  // generating one of these finishes the request ("stop")
  int top_logprobs = 0;             // report this many most likely tokens with each token
  // Report each sampled token's logprob (RequestOutput::logprob). It costs a pass of exp over the
  // vocabulary per token (0.5 ms at 50k on the CPU), so the server asks for it only when the client
  // wants logprobs or best_of ranks by them.
  bool logprob = true;
  // Structured output: only tokens the grammar allows are sampled, and the end-of-sequence ids
  // only where it accepts (runtime/grammar/grammar_matcher.h). Null: unconstrained.
  std::shared_ptr<const grammar::CompiledGrammar> grammar;
  // Teacher forcing: the i-th generated token is forced_tokens[i] (while there are any), whatever
  // the logits favour, reported with its logprob under the full softmax: a known continuation
  // scored (perplexity), one decode step a token.
  std::vector<int> forced_tokens;
};

// What one step produced for one request.
struct RequestOutput {
  RequestId id = 0;
  int token = -1;        // -1: no new token (a request aborted before it produced one)
  float logprob = 0.f;  // when GenerationRequest::logprob
  bool finished = false;
  std::string finish_reason;  // "stop", "length" or "abort" when finished
  // Finished because `token` is an EOS id (ignore_eos off) or one of stop_token_ids: its text is
  // no part of the answer (vLLM's rule, unless include_stop_str_in_output).
  bool stopped_by_token = false;
  std::vector<std::pair<int, float>> top_logprobs;  // when the request asked for them
};

}  // namespace strata
