// File: runtime/sequence_step.h
// One sequence's part of a step, as the scheduler decides it and every rank runs it: the step's
// wire type (step_message.h encodes it), free of the runner, the backend and the planner.
#pragma once

#include <vector>

namespace strata {

struct SequenceStep {
  std::vector<int> tokens;  // new tokens of this step
  int context_len = 0;      // tokens already in the cache
  std::vector<int> blocks;  // block table covering context_len + tokens.size() (empty: no paged bank)
  int slot = 0;             // ring-bank slot
  // Before the step: copy block copy_src's rows into block copy_dst in every paged bank (a
  // sequence taking over another's partly filled prompt block; -1: none).
  int copy_src = -1, copy_dst = -1;
};

}  // namespace strata
