// File: runtime/engine.h
// The engine: loads this rank's share of a model onto a backend, owns its paged KV cache, and
// runs steps. On rank 0 it also owns the scheduler: requests are added at any time, and each
// Step() completes one micro-batch's previous step and launches its next, so that with P
// pipeline stages P micro-batches are in flight. The other ranks run RunWorker().
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "cache/block_pool.h"
#include "cache/kv_layout.h"
#include "cache/kv_storage.h"
#include "kernels/backend.h"
#include "parallel/comm.h"
#include "parallel/job_comms.h"
#include "runtime/model/model_spec.h"
#include "runtime/model_runner.h"
#include "runtime/sampler.h"
#include "runtime/scheduler.h"
#include "runtime/step_message.h"
#include "runtime/engine_options.h"
#include "runtime/kv_budget.h"
#include "runtime/model/checkpoint.h"
#include "runtime/weights.h"

namespace strata {


// Why prefix caching would not reproduce a fresh prefill's rows for this model, or "" when it
// does. Rows of a paged bank at a position depend only on the tokens up to it, which is what a
// block's key chain fixes; two kinds of bank break that (../shared semantics, §2.4 and (e)):
// LCKV's iterative prefill (a prefix's rows depend on how its prompt was split into passes and
// chunks) and sliding-window ring banks (they keep only the last window, per sequence slot).
std::string PrefixCachingRefusal(const ModelSpec& spec);

struct GenerationResult {
  std::vector<int> tokens;
  std::vector<float> logprobs;
  std::string finish_reason;  // "length" or "stop"
};

struct EngineStats {
  double prefill_seconds = 0, decode_seconds = 0;
  int64_t prefill_tokens = 0, decode_tokens = 0;
  int64_t steps = 0;
  int max_in_flight = 0;  // most micro-batch steps launched and not yet completed at once
  int peak_running = 0;   // most sequences admitted at once (the batch the KV cache allowed)
};

class Engine {
 public:
  static absl::StatusOr<std::unique_ptr<Engine>> Create(const std::string& model_dir, const EngineOptions& options,
                                                        EngineComms comms = {});

  // Rank 0. Requests join the scheduler at any time; Step() advances one micro-batch and returns
  // what it produced. A failed step of a distributed job aborts every rank (the others are
  // inside the same step's collectives and cannot be unwound).
  absl::Status AddRequest(RequestId id, GenerationRequest r);
  // Thread-safe: checks a request against the model and the cache without scheduling it.
  absl::Status ValidateRequest(const GenerationRequest& r) const {
    return scheduler_ ? scheduler_->Validate(r) : absl::FailedPreconditionError("requests go to rank 0");
  }
  void AbortRequest(RequestId id);
  bool HasWork() const;
  absl::StatusOr<std::vector<RequestOutput>> Step();
  // Rank 0: runs the requests to completion (convenience over AddRequest/Step; every other rank
  // runs RunWorker meanwhile). Fails without running anything if a request is invalid.
  absl::StatusOr<std::vector<GenerationResult>> Generate(const std::vector<GenerationRequest>& requests);
  // Ranks other than 0: execute the steps rank 0 sends until it calls Shutdown.
  absl::Status RunWorker();
  // Rank 0: release the workers. Idempotent; a no-op on a single rank.
  absl::Status Shutdown();
  // Rank 0: every rank's statistics (rank 0's own included), fetched from the workers now.
  // Only between steps (nothing in flight).
  absl::StatusOr<std::vector<RankStats>> CollectRankStats();
  // Rank 0: the latest statistics each rank reported (workers report about once a second).
  const std::map<int, RankStats>& rank_stats() const { return rank_stats_; }

  const ModelSpec& spec() const { return spec_; }
  const KvLayout& kv_layout() const { return layout_; }
  const KvCapacity& kv_capacity() const { return capacity_; }
  // The KV budget in words: its size, where it came from, the tokens and sequences it holds.
  const std::string& kv_budget() const { return kv_budget_; }
  int64_t weight_bytes() const { return weights_.bytes; }
  // Weight bytes a decode step reads on this rank: all but the embedding (only its gathered
  // rows are read), unless it doubles as the LM head.
  int64_t decode_weight_bytes() const {
    return weights_.bytes - (weights_.lm_head.get() && weights_.embed.get() ? static_cast<int64_t>(weights_.embed.data.bytes()) : 0);
  }
  // The format each weight matrix is held in (LoadedWeightFormats).
  const WeightFormats& weight_formats() const { return weight_formats_; }
  Backend* backend() const { return backend_.get(); }
  const EngineStats& stats() const { return stats_; }
  void ResetStats() { stats_ = {}; }
  const Scheduler& scheduler() const { return *scheduler_; }
  // Whether this engine reuses cached prefixes (the option, less the model's refusal), and why
  // not when the model refused it (serve logs it).
  bool prefix_caching() const { return prefix_caching_; }
  const std::string& prefix_caching_refusal() const { return prefix_caching_refusal_; }
  int micro_batches() const { return static_cast<int>(in_flight_.size()); }
  // The pipeline plan this engine runs (every rank derives the same one).
  const PipelinePlan& plan() const { return plan_; }
  // KV bytes this rank sent per transfer edge (producer layer, destination stage).
  const std::map<std::pair<int, int>, int64_t>& edge_bytes_sent() const { return runner_->edge_bytes_sent(); }

 private:
  Engine() = default;
  bool distributed() const { return comms_.world != nullptr && comms_.world->size() > 1; }
  bool last_stage() const { return stage_ == plan_.layout.pp() - 1; }
  absl::Status SendToChildren(const StepMessage& m);
  RankStats OwnStats(int64_t step_id) const;  // as reported for the plan `step_id`
  absl::Status DrainRankStats();
  // A failure inside a distributed step ends the job; on one rank it is returned.
  absl::Status FailStep(const absl::Status& st);

  struct InFlight {
    bool active = false;
    ScheduledStep step;
    std::vector<float> logits;
    std::unique_ptr<PendingRecv> pending;  // logits on their way from the last stage
  };

  ModelSpec spec_;
  std::unique_ptr<Backend> backend_;
  WeightFormats weight_formats_;
  Checkpoint checkpoint_;  // kept mapped: weights may point into it (declared before weights_)
  ModelWeights weights_;
  KvLayout layout_;
  KvCapacity capacity_;
  std::string kv_budget_;
  PipelinePlan plan_;
  int rank_ = 0, stage_ = 0, slice_ = 0;  // stage and slice as plan_.layout places rank_
  // Host data planes wrapped for a device backend (StagedDeviceComm); outlive the runner.
  std::unique_ptr<DeviceComm> staged_tp_, staged_world_;
  std::unique_ptr<KvStorage> storage_;
  std::unique_ptr<ModelRunner> runner_;
  std::unique_ptr<Scheduler> scheduler_;  // rank 0
  std::vector<InFlight> in_flight_;       // one per micro-batch
  int next_micro_batch_ = 0;
  int64_t next_step_id_ = 0;
  std::chrono::steady_clock::time_point started_, last_report_;
  double busy_seconds_ = 0;
  int64_t rank_steps_ = 0;
  std::map<int, RankStats> rank_stats_;
  EngineStats stats_;
  EngineComms comms_;
  bool shut_down_ = false;
  bool prefix_caching_ = false;
  std::string prefix_caching_refusal_;
};

}  // namespace strata
