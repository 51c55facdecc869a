// File: runtime/model_runner.h
// Runs the model's layers over one step of a batch: each sequence brings its new tokens (a
// prompt chunk or one decode token) and its place in the KV cache. Prefill and decode are the
// same code path; LCKV cyclic blocks run forward_passes + backward_passes times when a step
// carries multi-token chunks (§2.4, §6.3).
//
// KV protocol of a step (one owner: only producer layers write K/V):
//   * a producer writes its K/V for the step's tokens into the bank's *step rows*;
//   * attention reads positions < context_len from the bank and later ones from the step rows,
//     so same-step readers see the producer's rows (§6.2 step 2) and upward readers can be
//     zero-initialized and iterated (§2.4);
//   * at the end of the step the step rows are committed to the bank (Commit).
#pragma once

#include <map>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "cache/kv_storage.h"
#include "kernels/backend.h"
#include "parallel/comm.h"
#include "parallel/planner.h"
#include "runtime/model/model_spec.h"
#include "runtime/sequence_step.h"
#include "runtime/weights.h"

namespace strata {


// Where this rank sits in the job and how it talks to the others.
struct RunnerPlacement {
  const PipelinePlan* plan = nullptr;  // the layout (stages, slices) and the transfer edges
  int rank = 0;                        // world rank
  DeviceComm* tp = nullptr;            // this tensor-parallel group (null for one slice)
  DeviceComm* world = nullptr;         // point to point between stages (null for one stage)
};

class ModelRunner {
 public:
  // `weights` and `kv` hold this rank's share (plan->layout says which). Fails when the
  // backend cannot hold the runner's tables.
  static absl::StatusOr<std::unique_ptr<ModelRunner>> Create(const ModelSpec& spec, const ModelWeights& weights,
                                                             Backend* backend, KvStorage* kv,
                                                             RunnerPlacement placement);

  // Runs this stage's layers for the step's tokens (receiving the hidden state and mirrored K/V
  // rows from other stages, sending its own), commits the new K/V rows, and returns the logits of
  // each sequence's last step token, [num_seqs * vocab], on the last stage's ranks (empty on the
  // others).
  absl::StatusOr<std::vector<float>> Step(const std::vector<SequenceStep>& seqs);

  // KV bytes this rank sent per transfer edge (producer layer, destination stage).
  const std::map<std::pair<int, int>, int64_t>& edge_bytes_sent() const { return edge_bytes_; }
  // Seconds spent waiting for the previous stage's hidden state (idle, not work).
  double input_wait_seconds() const { return input_wait_seconds_; }

 private:
  absl::Status Prepare(const std::vector<SequenceStep>& seqs);
  absl::Status EnsureWorkspace(int tokens, int seqs, int max_blocks);
  void RunLayer(int layer, int tokens);
  // This stage's part of one iteration-plan segment, `passes` times.
  absl::Status RunSegment(const PlanSegment& seg, int passes, int tokens);

  // Sums a row-parallel partial result over the tensor slices.
  void AllReduce(float* data, size_t count);
  int WorldRank(int stage) const { return parallel_layout().rank_of(stage, slice_); }
  const ParallelLayout& parallel_layout() const { return placement_.plan->layout; }
  // Step rows of bank `b` to or from another stage's rank, in the KV dtype on the wire.
  absl::Status SendRows(int bank, int peer, int tokens, int64_t* bytes);
  // Point to point with another stage's rank, after the backend's queued work is done.
  absl::Status SendToStage(const void* data, size_t bytes, int peer);
  absl::Status RecvFromStage(void* data, size_t bytes, int peer);
  absl::Status RecvRows(int bank, int peer, int tokens);
  absl::StatusOr<std::vector<float>> Logits();

  ModelRunner(const ModelSpec& spec, const ModelWeights& weights, Backend* backend, KvStorage* kv,
              RunnerPlacement placement);

  const ModelSpec& spec_;
  const ModelWeights& w_;
  RunnerPlacement placement_;
  int stage_, slice_, first_layer_, last_layer_;
  DeviceComm* tp_comm_;
  std::map<std::pair<int, int>, int64_t> edge_bytes_;
  double input_wait_seconds_ = 0;
  int local_heads_, local_intermediate_;
  Backend* backend_;
  KvStorage* kv_;
  KvLayout kv_layout_;
  std::vector<PlanSegment> plan_;
  RopeTable rope_;
  DeviceBuffer rope_cos_, rope_sin_;

  // Step metadata on the device.
  BatchLayout batch_;
  DeviceBuffer token_start_, context_len_, block_table_, seq_slot_, positions_, ids_, last_rows_;
  int num_seqs_ = 0;
  int num_tokens_ = 0;
  bool multi_token_ = false;
  // Activations, sized for `capacity_tokens_`.
  int capacity_tokens_ = 0, capacity_seqs_ = 0;
  size_t block_table_capacity_ = 0;
  DeviceBuffer x_, x_block_in_, a_, a2_, q_, attn_, mlp_, mlp2_, out_, last_, logits_, logits_all_;
  DeviceBuffer wire_;  // step rows in the KV dtype, to and from other stages
  std::vector<DeviceBuffer> step_k_, step_v_;  // per bank
};

}  // namespace strata
