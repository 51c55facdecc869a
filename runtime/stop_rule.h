// File: runtime/stop_rule.h
// When a request stops, decided on each new token: an end-of-sequence id (unless ignore_eos), one
// of its stop_token_ids, the end of its grammar's sentence, or max_tokens. Before min_tokens the
// stopping ids may not be chosen at all (TokensBannedNow, which token selection applies).
// Stop *strings* are matched on text, so they live with the detokenizer in the server
// (StopAwareText, runtime/serving/openai_api.h); this rule is everything decided on token ids.
#pragma once

#include <string>
#include <vector>

#include "runtime/request.h"

namespace strata {

struct StopDecision {
  bool finished = false;
  std::string reason;     // "stop" or "length" when finished
  bool by_token = false;  // the token itself ended it (RequestOutput::stopped_by_token)
};

// `token` has just been generated as the `generated`-th token of `r` (counting it);
// `grammar_complete`: the request's grammar (if any) now accepts nothing but the end.
StopDecision DecideStop(const GenerationRequest& r, const std::vector<int>& eos_ids, int token, int generated,
                        bool grammar_complete);

// Tokens that may not be chosen as the next token when `generated` tokens exist: the ids that
// would stop the request before its min_tokens.
std::vector<int> TokensBannedNow(const GenerationRequest& r, const std::vector<int>& eos_ids, int generated);

}  // namespace strata
