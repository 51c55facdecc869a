// File: parallel/parallel_layout.h
// The one owner of the parallel layout: which rank is which (stage, tensor slice), the control
// tree the step plans travel down, each slice's share of every tensor (query heads, KV heads
// partitioned or replicated, MLP columns, vocabulary rows), each stage's layers, and the weight
// bytes a rank loads. Built and validated once; nothing else divides by the TP degree, so
// `strata plan`, the loader and the engine cannot disagree about what a layout means.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "parallel/topology.h"
#include "runtime/base/dtype.h"
#include "runtime/model/model_spec.h"
#include "runtime/model/tensor_names.h"

namespace strata {

// [first, first + count).
struct IndexRange {
  int64_t first = 0;
  int64_t count = 0;
  int64_t end() const { return first + count; }
};

// A pipeline stage's layers, inclusive.
struct LayerSpan {
  int first = 0;
  int last = 0;
};

class ParallelLayout {
 public:
  // Checks that `tp` tensor slices and `pp` stages can split `spec`: TP divides the attention
  // heads and the MLP width, and every KV group's heads divide or are divided by it (§7.1); PP
  // is at most the number of layers. Stages hold no layers until WithStages.
  static absl::StatusOr<ParallelLayout> Create(const ModelSpec& spec, int tp, int pp);
  // One rank holding the whole model.
  static ParallelLayout Single(const ModelSpec& spec);
  // This layout with each stage's layers (the planner's partition): contiguous ranges, one per
  // stage, in order, covering every layer.
  absl::StatusOr<ParallelLayout> WithStages(const std::vector<LayerSpan>& stages) const;

  // Ranks: rank = stage * tp + slice.
  const Topology& topology() const { return topo_; }
  int tp() const { return topo_.tp; }
  int pp() const { return topo_.pp; }
  int world_size() const { return topo_.world_size(); }
  int stage_of(int rank) const { return topo_.stage_of(rank); }
  int slice_of(int rank) const { return topo_.slice_of(rank); }
  int rank_of(int stage, int slice) const { return topo_.rank_of(stage, slice); }
  // The rank whose logits reach rank 0: slice 0 of the last stage.
  int logits_rank() const { return rank_of(pp() - 1, 0); }
  // The control tree: rank 0 sends to stage 0's other slices, and every rank to its slice on
  // the next stage. The parent of rank 0 is -1.
  int control_parent(int rank) const;
  std::vector<int> control_children(int rank) const;

  // Layers (after WithStages).
  bool has_stages() const { return !stages_.empty(); }
  const LayerSpan& stage_layers(int stage) const { return stages_[stage]; }
  int stage_of_layer(int layer) const { return stage_of_layer_[layer]; }

  // A slice's share of each dimension (the same on every stage).
  IndexRange query_heads(int slice) const;
  // KV heads a slice holds of a group of `kv_heads`: its own share when they are partitioned,
  // the one head its query heads map to when there are fewer heads than slices (replicated).
  IndexRange kv_heads(int kv_heads, int slice) const;
  int kv_heads_per_slice(int kv_heads) const { return kv_heads >= tp() ? kv_heads / tp() : 1; }
  IndexRange mlp_columns(int slice) const;
  // Vocabulary-parallel embedding and LM head: ceil(V / tp) rows per slice, fewer on the last.
  IndexRange vocab_rows(int slice) const;
  int64_t vocab_rows_padded() const { return (vocab_size_ + tp() - 1) / tp(); }

  // The tensors a rank holds for layers [first, last] (the embedding with layer 0, and with the
  // last layer when tied; the final norm and LM head with the last layer), each with the shape
  // of its share. For sizing (WeightBytes, the planner) only: LoadWeights does not read this
  // list but slices each tensor itself with query_heads, kv_heads, mlp_columns and vocab_rows
  // (splitting a fused QKV, joining gate and up), so the two must change together;
  // parallel_layout_test checks that each rank's loaded bytes equal WeightBytes.
  std::vector<TensorDecl> SliceTensors(const ModelSpec& spec, int first_layer, int last_layer, int slice) const;
  // Their bytes with matrices in `matrix_dtype` and vectors in float32 (the loader's types).
  int64_t WeightBytes(const ModelSpec& spec, int first_layer, int last_layer, int slice, DType matrix_dtype) const;

 private:
  Topology topo_;
  int num_layers_ = 0, num_heads_ = 1, head_dim_ = 1, intermediate_ = 0;
  int64_t vocab_size_ = 0;
  std::vector<LayerSpan> stages_;
  std::vector<int> stage_of_layer_;
};

}  // namespace strata
