// File: runtime/pipeline_driver.h
// Runs a rank's steps through the pipeline. On rank 0 it launches each micro-batch's step (its
// plan sent down the control tree, the logits received from the last stage) and keeps as many
// micro-batches in flight as there are stages; on the other ranks it runs the plans that arrive
// (RunWorker). It also keeps the statistics: the step timings rank 0 reports and each rank's
// RankStats. Which sequences a step runs is the scheduler's business, not this class's.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "parallel/comm.h"
#include "parallel/job_comms.h"
#include "runtime/rank_model.h"
#include "runtime/scheduler.h"
#include "runtime/step_message.h"

namespace strata {

struct EngineStats {
  double prefill_seconds = 0, decode_seconds = 0;
  int64_t prefill_tokens = 0, decode_tokens = 0;
  int64_t steps = 0;
  int max_in_flight = 0;  // most micro-batch steps launched and not yet completed at once
  int peak_running = 0;   // most sequences admitted at once (the batch the KV cache allowed)
};

class PipelineDriver {
 public:
  using Clock = std::chrono::steady_clock;
  // `model` must outlive the driver.
  PipelineDriver(RankModel* model, EngineComms comms, int micro_batches);

  int micro_batches() const { return static_cast<int>(in_flight_.size()); }
  // Rank 0: the micro-batch whose turn it is (round robin).
  int NextMicroBatch();
  // Rank 0: micro-batch `mb`'s step in flight, once its logits ([seqs x vocab]) are here; null
  // when none is in flight. Both stay readable until Retire.
  struct Landed {
    const ScheduledStep* step;
    const float* logits;
  };
  absl::StatusOr<std::optional<Landed>> Await(int mb);
  // Rank 0: the landed step is consumed; `seconds` since the turn began count as its time.
  void Retire(int mb, double seconds);
  // Rank 0: runs `step` as micro-batch `mb`'s (`running`: sequences admitted now). For the
  // statistics: `turn_start`, when Engine::Step began; `t_launch`, when this step's scheduling did.
  absl::Status Launch(int mb, ScheduledStep step, int running, Clock::time_point turn_start,
                      Clock::time_point t_launch);
  bool any_in_flight() const;

  // Ranks other than 0: execute the steps rank 0 sends until it calls Shutdown.
  absl::Status RunWorker();
  // Rank 0: release the workers. Idempotent; a no-op on a single rank.
  absl::Status Shutdown();
  // Rank 0, between steps: every rank's statistics, fetched from the workers now.
  absl::StatusOr<std::vector<RankStats>> CollectRankStats();
  const std::map<int, RankStats>& rank_stats() const { return rank_stats_; }
  const EngineStats& stats() const { return stats_; }
  void ResetStats() { stats_ = {}; }

 private:
  struct InFlight {
    bool active = false;
    ScheduledStep step;
    std::vector<float> logits;
    std::unique_ptr<PendingRecv> pending;  // logits on their way from the last stage
  };
  bool distributed() const { return comms_.world != nullptr && comms_.world->size() > 1; }
  bool last_stage() const { return model_->stage == model_->plan.layout.pp() - 1; }
  // Rank 0: sends the plan on and posts the receive of the logits (before anything can block:
  // the last stage may send early).
  absl::Status Distribute(InFlight& f, StepMessage& m);
  // Runs this rank's part of a step, timed as busy.
  absl::StatusOr<std::vector<float>> RunOwnPart(const std::vector<SequenceStep>& seqs);
  absl::Status SendToChildren(const StepMessage& m);
  RankStats OwnStats(int64_t step_id) const;  // as reported for the plan `step_id`
  absl::Status DrainRankStats();
  // A failure inside a distributed step ends the job; on one rank it is returned.
  absl::Status FailStep(const absl::Status& st);
  // Worker side of one message: forward, run, send logits and statistics; false on `stop`.
  absl::StatusOr<bool> WorkOn(const std::vector<char>& bytes);

  RankModel* model_;
  EngineComms comms_;
  std::vector<InFlight> in_flight_;  // one per micro-batch
  int next_micro_batch_ = 0;
  int64_t next_step_id_ = 0;
  Clock::time_point started_, last_report_;
  double busy_seconds_ = 0;
  int64_t rank_steps_ = 0;
  std::map<int, RankStats> rank_stats_;
  EngineStats stats_;
  bool shut_down_ = false;
};

}  // namespace strata
