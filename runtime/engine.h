// File: runtime/engine.h
// The single-rank engine: loads a model directory onto a backend, owns the paged KV cache, and
// generates for a batch of requests (sequences join as blocks free up and leave when done).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "cache/block_pool.h"
#include "cache/kv_layout.h"
#include "cache/kv_storage.h"
#include "kernels/backend.h"
#include "parallel/comm.h"
#include "runtime/model/model_spec.h"
#include "runtime/model_runner.h"
#include "runtime/sampler.h"
#include "runtime/weights.h"

namespace strata {

struct EngineOptions {
  BackendOptions backend;
  std::string kv_dtype = "auto";  // auto = the checkpoint's torch_dtype
  int64_t kv_memory_bytes = int64_t{1} << 30;
  int block_size = 16;
  int max_seqs = 256;  // sequences running at once
  int tp = 1;          // tensor-parallel ranks (heads split across them)
  int pp = 1;          // pipeline stages
};

// Where this process sits in a distributed job. Null communicators: a single rank.
struct EngineComms {
  HostComm* world = nullptr;   // every rank; rank 0 schedules and broadcasts each step
  DeviceComm* tp = nullptr;    // this rank's tensor-parallel group
  DeviceComm* world_data = nullptr;  // every rank: hidden states and K/V rows between stages
};

struct GenerationRequest {
  std::vector<int> prompt;
  int max_tokens = 16;
  SamplingParams sampling;
  bool ignore_eos = false;
};

struct GenerationResult {
  std::vector<int> tokens;
  std::vector<float> logprobs;
  std::string finish_reason;  // "length" or "stop"
};

struct EngineStats {
  double prefill_seconds = 0, decode_seconds = 0;
  int64_t prefill_tokens = 0, decode_tokens = 0;
  int64_t steps = 0;
};

class Engine {
 public:
  static absl::StatusOr<std::unique_ptr<Engine>> Create(const std::string& model_dir, const EngineOptions& options,
                                                        EngineComms comms = {});

  // Rank 0 only: runs the requests to completion (every other rank runs RunWorker meanwhile).
  absl::StatusOr<std::vector<GenerationResult>> Generate(const std::vector<GenerationRequest>& requests);
  // Ranks other than 0: execute the steps rank 0 broadcasts until it calls Shutdown.
  absl::Status RunWorker();
  // Rank 0: release the workers. Idempotent; a no-op on a single rank.
  absl::Status Shutdown();

  const ModelSpec& spec() const { return spec_; }
  const KvLayout& kv_layout() const { return layout_; }
  const KvCapacity& kv_capacity() const { return capacity_; }
  int64_t weight_bytes() const { return weights_.bytes; }
  const EngineStats& stats() const { return stats_; }
  // The pipeline plan this engine runs (every rank derives the same one).
  const PipelinePlan& plan() const { return plan_; }
  // KV bytes this rank sent per transfer edge (producer layer, destination stage).
  const std::map<std::pair<int, int>, int64_t>& edge_bytes_sent() const { return runner_->edge_bytes_sent(); }
  // Whether prompts of this length are prefilled token by token (§2.4, decision (b)).
  bool SequentialPrefill(size_t prompt_len) const;

 private:
  Engine() = default;
  absl::Status Validate(const GenerationRequest& r) const;
  bool distributed() const { return comms_.world != nullptr && comms_.world->size() > 1; }
  absl::Status BroadcastSteps(std::vector<SequenceStep>* steps, std::vector<std::vector<int>>* blocks, bool* stop);

  ModelSpec spec_;
  std::unique_ptr<Backend> backend_;
  ModelWeights weights_;
  KvLayout layout_;
  KvCapacity capacity_;
  PipelinePlan plan_;
  bool paged_ = false;  // some stage has paged banks: requests reserve blocks
  std::unique_ptr<KvStorage> storage_;
  std::unique_ptr<BlockPool> blocks_;
  std::unique_ptr<SlotPool> slots_;
  std::unique_ptr<ModelRunner> runner_;
  EngineStats stats_;
  EngineComms comms_;
  bool shut_down_ = false;
};

}  // namespace strata
