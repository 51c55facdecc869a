#include "runtime/step_outputs.h"

#include "runtime/stop_rule.h"

namespace strata {
namespace {

// The output of one sequence whose token is due.
RequestOutput SelectAndStop(const CompletedSequence& c, const float* row, const std::vector<int>& eos_ids) {
  RequestOutput o;
  o.id = c.id;
  TokenSelection t = c.selector->Select(row, *c.generated);
  o.token = t.token;
  o.logprob = t.logprob;
  o.top_logprobs = std::move(t.top_logprobs);
  if (t.token < 0) {  // the grammar has no token to go on with: nothing can be sampled
    o.finished = true;
    o.finish_reason = "abort";
    return o;
  }
  const int generated = static_cast<int>(c.generated->size()) + 1;
  const StopDecision stop = DecideStop(*c.request, eos_ids, t.token, generated, c.selector->grammar_complete());
  o.finished = stop.finished;
  o.finish_reason = stop.reason;
  o.stopped_by_token = stop.by_token;
  return o;
}

}  // namespace

std::vector<RequestOutput> FinishStep(Scheduler& scheduler, const ScheduledStep& step, const float* logits) {
  const int vocab = scheduler.spec().vocab_size;
  const std::vector<int>& eos_ids = scheduler.spec().eos_token_ids;
  std::vector<RequestOutput> out;
  for (const CompletedSequence& c : scheduler.Complete(step)) {
    RequestOutput o;
    if (c.aborted) {
      o.id = c.id;
      o.finished = true;
      o.finish_reason = "abort";
    } else {
      o = SelectAndStop(c, logits + static_cast<size_t>(c.row) * vocab, eos_ids);
    }
    scheduler.Record(o.id, o.token, o.finished);
    out.push_back(std::move(o));
  }
  return out;
}

}  // namespace strata
