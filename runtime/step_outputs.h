// File: runtime/step_outputs.h
// The end of a step on rank 0: each sequence whose next token is due gets it from its row of the
// step's logits (TokenSelector), the stop rule decides whether it is finished (DecideStop), and
// the scheduler records the outcome. What this returns is what the step produced per request.
#pragma once

#include <vector>

#include "runtime/request.h"
#include "runtime/scheduler.h"

namespace strata {

// `logits`: the step's [step.seqs.size() x vocab] rows.
std::vector<RequestOutput> FinishStep(Scheduler& scheduler, const ScheduledStep& step, const float* logits);

}  // namespace strata
