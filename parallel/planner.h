// File: parallel/planner.h
// The cache placement planner: the only code that maps layers to pipeline stages (it gives the
// ParallelLayout its stages). Pure and
// deterministic: the same ModelSpec, Topology and options give the same plan on every rank.
//
// It decides
//   * the layer partition (contiguous ranges): a forced partition as given, else the one that
//     wins a lexicographic comparison (no weighted sum); each step is a dynamic program over
//     (stages, layers) restricted to the partitions that keep the earlier steps' optima:
//       1. the largest smallest per-stage KV capacity in tokens (ComputeKvCapacity of the
//          stage's homes and mirrors per rank in kv_memory_bytes, the ring banks of max_seqs
//          sequences first, whole blocks; found by binary search over the ranges' distinct
//          capacities): the pipeline admits what its fullest stage can hold. This is the only
//          memory rule: weights and the activation reserve are reported, never weighed, and a
//          partition is returned even when that capacity is 0;
//       2. the smallest largest per-stage compute (FLOPs per token, whole stage: 2 x the q, o,
//          MLP and producer K/V parameters of its layers, plus the LM head on the last stage),
//          later steps admitting stages up to that value x (1 + 1e-12);
//       3. the fewest KV bytes per token per rank mirrored in, summed over stages (cuts on
//          KV-group boundaries move nothing; an upward LCKV mirror weighs forward_passes +
//          backward_passes, since iterative prefill makes each pass a round trip);
//     exact ties keep the first predecessor the DP meets: the last stage starts as early as
//     possible, then the one before it, and so on (deterministic);
//   * each KV group's home: the stage of its producer, never anything else;
//   * a mirror of the group on every other stage that holds one of its readers, and a transfer
//     edge from the home stage to it carrying each step's new rows;
//   * per rank: weight bytes, KV bytes per token, KV capacity in tokens for the memory budget.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "parallel/parallel_layout.h"
#include "parallel/topology.h"
#include "runtime/base/dtype.h"
#include "runtime/model/model_spec.h"

namespace strata {

struct PlannerOptions {
  int64_t kv_memory_bytes = int64_t{1} << 30;  // KV budget per rank
  DType kv_dtype = DType::kF16;
  WeightFormats weight_formats;  // of the matrices as loaded; vectors are float32
  int block_size = 16;
  int max_seqs = 256;
  int max_batched_tokens = 2048;  // tokens per step: sizes the activation reserve
  std::vector<std::pair<int, int>> forced_partition;  // inclusive layer ranges, one per stage
};

struct StagePlan {  // its layers: PipelinePlan::layout.stage_layers(stage)
  std::vector<int> homes;    // producer layers of groups homed here
  std::vector<int> mirrors;  // producer layers of groups mirrored here
  int64_t weight_bytes_per_rank = 0;  // slice 0's (the largest: it has the most vocabulary rows)
  int64_t kv_bytes_per_token_per_rank = 0;    // paged banks (homes + mirrors)
  int64_t kv_bytes_per_sequence_per_rank = 0;  // sliding-window ring banks
  int64_t kv_capacity_tokens = 0;
  double gflops_per_token = 0;  // whole stage (all TP ranks)
};

struct TransferEdge {
  int producer_layer = 0;
  int from_stage = 0, to_stage = 0;
  bool upward = false;  // to an earlier stage (LCKV): rows arrive for the next step
  int64_t bytes_per_token_per_rank = 0;  // each TP rank sends its own KV heads
  int64_t bytes_per_token = 0;           // all TP ranks together
};

struct PipelinePlan {
  ParallelLayout layout;  // ranks, slices and each stage's layers
  std::vector<StagePlan> stages;
  std::vector<TransferEdge> edges;
  int64_t kv_capacity_tokens = 0;  // the smallest over stages
  // Memory every rank keeps beyond weights and KV (ActivationReserveBytes).
  int64_t activation_bytes_per_rank = 0;
  std::string partition_reason;
};

// Device memory a rank keeps beyond weights and KV: the float32 activations of the largest step,
// the logits of a full batch, and the CUDA context and library workspaces.
int64_t ActivationReserveBytes(const ModelSpec& spec, const ParallelLayout& layout, int max_batched_tokens,
                               int max_seqs);

absl::StatusOr<PipelinePlan> PlanPipeline(const ModelSpec& spec, const Topology& topo,
                                          const PlannerOptions& options);

// "0-5,6-11" -> {{0,5},{6,11}}.
absl::StatusOr<std::vector<std::pair<int, int>>> ParsePartition(const std::string& s);

std::string PlanToText(const ModelSpec& spec, const PipelinePlan& plan);
std::string PlanToJson(const ModelSpec& spec, const PipelinePlan& plan);

}  // namespace strata
