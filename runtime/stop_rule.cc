#include "runtime/stop_rule.h"

#include <algorithm>

namespace strata {
namespace {

bool Contains(const std::vector<int>& v, int x) { return std::find(v.begin(), v.end(), x) != v.end(); }

}  // namespace

StopDecision DecideStop(const GenerationRequest& r, const std::vector<int>& eos_ids, int token, int generated,
                        bool grammar_complete) {
  StopDecision d;
  d.by_token = (!r.ignore_eos && Contains(eos_ids, token)) || Contains(r.stop_token_ids, token);
  if (d.by_token || grammar_complete) {
    d.finished = true;
    d.reason = "stop";
  } else if (generated >= r.max_tokens) {
    d.finished = true;
    d.reason = "length";
  }
  return d;
}

std::vector<int> TokensBannedNow(const GenerationRequest& r, const std::vector<int>& eos_ids, int generated) {
  if (generated >= r.min_tokens) return {};
  std::vector<int> banned = r.stop_token_ids;
  if (!r.ignore_eos) banned.insert(banned.end(), eos_ids.begin(), eos_ids.end());
  return banned;
}

}  // namespace strata
