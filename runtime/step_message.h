// File: runtime/step_message.h
// The control messages of a distributed job. Rank 0 sends each step's plan down the control
// tree (stage 0's slices, then stage by stage); every rank forwards it before running it. Ranks
// report their statistics back to rank 0 when a plan asks for them.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/sequence_step.h"

namespace strata {

// Bumped whenever the wire layout changes: ranks built from different sources refuse each other.
inline constexpr int32_t kStepProtocolVersion = 2;

struct StepMessage {
  bool stop = false;    // the job is over: leave the worker loop
  bool report = false;  // send RankStats to rank 0 after this step
  int64_t step_id = 0;
  std::vector<SequenceStep> seqs;  // what every rank runs (the scheduler's ScheduledStep keeps the rest)
};

// [version, stop, report, step_id lo, hi, num_seqs, then per sequence: context_len, slot,
// n_tokens, n_blocks, copy_src, copy_dst, tokens..., blocks...] as int32.
std::vector<int32_t> EncodeStepMessage(const StepMessage& m);
absl::StatusOr<StepMessage> DecodeStepMessage(const std::vector<char>& bytes);

// What a rank measured, for the metrics on rank 0.
struct RankStats {
  int64_t step_id = 0;  // the plan that asked for this report
  int rank = 0, stage = 0, slice = 0;
  int64_t steps = 0;
  double busy_seconds = 0;  // working on steps (waits for the previous stage's output excluded)
  double wall_seconds = 0;  // since the engine started
  std::map<std::pair<int, int>, int64_t> edge_bytes;  // (producer layer, destination stage)
  int64_t weight_bytes = 0, kv_bytes = 0;              // this rank's memory
};
std::string EncodeRankStats(const RankStats& s);
absl::StatusOr<RankStats> DecodeRankStats(const std::vector<char>& bytes);

}  // namespace strata
