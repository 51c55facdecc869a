// File: runtime/engine.h
// The engine: one rank's entry point, putting together its model (RankModel), rank 0's scheduler
// and the pipeline driver. Requests are added on rank 0 at any time; each Step() completes one
// micro-batch's previous step (token selection and the stop rule: step_outputs.h) and launches
// its next, so that with P pipeline stages P micro-batches are in flight. The other ranks run
// RunWorker().
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "cache/kv_layout.h"
#include "kernels/backend.h"
#include "parallel/job_comms.h"
#include "runtime/engine_options.h"
#include "runtime/model/model_spec.h"
#include "runtime/pipeline_driver.h"
#include "runtime/rank_model.h"
#include "runtime/request.h"
#include "runtime/scheduler.h"
#include "runtime/step_message.h"

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
  const std::map<int, RankStats>& rank_stats() const { return driver_->rank_stats(); }

  const ModelSpec& spec() const { return model_->spec; }
  const KvLayout& kv_layout() const { return model_->kv_layout; }
  const KvCapacity& kv_capacity() const { return model_->kv_capacity; }
  // The KV budget in words: its size, where it came from, the tokens and sequences it holds.
  const std::string& kv_budget() const { return model_->kv_budget; }
  int64_t weight_bytes() const { return model_->weights.bytes; }
  // Weight bytes a decode step reads on this rank: all but the embedding (only its gathered
  // rows are read), unless it doubles as the LM head.
  int64_t decode_weight_bytes() const {
    const ModelWeights& w = model_->weights;
    return w.bytes - (w.lm_head.get() && w.embed.get() ? static_cast<int64_t>(w.embed.data.bytes()) : 0);
  }
  // The format each weight matrix is held in (LoadedWeightFormats).
  const WeightFormats& weight_formats() const { return model_->weight_formats; }
  Backend* backend() const { return model_->backend.get(); }
  const EngineStats& stats() const { return driver_->stats(); }
  void ResetStats() { driver_->ResetStats(); }
  const Scheduler& scheduler() const { return *scheduler_; }
  // Whether this engine reuses cached prefixes (the option, less the model's refusal), and why
  // not when the model refused it (serve logs it).
  bool prefix_caching() const { return prefix_caching_; }
  const std::string& prefix_caching_refusal() const { return prefix_caching_refusal_; }
  int micro_batches() const { return driver_->micro_batches(); }
  // The pipeline plan this engine runs (every rank derives the same one).
  const PipelinePlan& plan() const { return model_->plan; }
  // KV bytes this rank sent per transfer edge (producer layer, destination stage).
  const std::map<std::pair<int, int>, int64_t>& edge_bytes_sent() const { return model_->runner->edge_bytes_sent(); }

 private:
  Engine() = default;
  // Rank 0's scheduler, with prefix caching where the option asks and the model allows.
  void CreateScheduler(const EngineOptions& o);

  std::unique_ptr<RankModel> model_;
  std::unique_ptr<PipelineDriver> driver_;
  std::unique_ptr<Scheduler> scheduler_;  // rank 0
  bool prefix_caching_ = false;
  std::string prefix_caching_refusal_;
};

}  // namespace strata
