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
#include <map>
#include <string>

#include "runtime/base/weight_format.h"
#include "runtime/model/model_spec.h"
#include "runtime/model/tensor_roles.h"

namespace strata {

// [first, first + count).
struct IndexRange {
  int64_t first = 0;
  int64_t count = 0;
  int64_t end() const { return first + count; }
};

// A block of one checkpoint tensor: rows x columns (a vector has one column).
struct SlicePart {
  std::string tensor;
  std::vector<int64_t> tensor_shape;
  IndexRange rows, cols;
};

// One buffer a rank loads: the rows of its parts one after the other, `cols` wide. For a layer
// (layer >= 0) or global (-1).
struct WeightSlice {
  WeightSlot slot;
  int layer = -1;
  std::vector<SlicePart> parts;
  int64_t rows = 0, cols = 0;
  bool matrix = false;
};

// The format each loaded matrix is held in, by checkpoint tensor (as the loader's rule chose it
// for that tensor's stored format); a buffer joined from tensors of different formats (SwiGLU's
// gate and up in a GGUF file) is held in `joined`. Vectors are always float32.
struct WeightFormats {
  WeightFormat matrices = WeightFormat::Plain(DType::kF16);  // every tensor not named below
  std::map<std::string, WeightFormat> by_tensor;
  WeightFormat joined = WeightFormat::Plain(DType::kF32);
  // A packed tensor's stored block width: a slice of it stays packed only on whole blocks (the
  // planner refuses a tp that would cut them: BlockCut).
  std::map<std::string, int> stored_block_elems;
  // Float tensors quantized at load (--quantization): the ggml type whose quantizer makes their
  // blocks (Q8_0, Q4_1 or Q4_K; QuantizeFloatsAs).
  std::map<std::string, uint32_t> quantize_as;
  WeightFormat Of(const std::string& tensor) const;
  WeightFormat Of(const WeightSlice& slice) const;
  // Why `slice` cannot be held in its tensors' packed format (its columns are not whole blocks
  // of one of them), or "" when it can or is not packed.
  std::string BlockCut(const WeightSlice& slice) const;
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

  // The buffers a rank loads for layers [first, last] (the embedding with layer 0, and with the
  // last layer when tied; the final norm and LM head with the last layer), each as the blocks of
  // checkpoint tensors it is made of: the tensor role table's splits applied to this slice's
  // query_heads, kv_heads, mlp_columns and vocab_rows. LoadWeights reads exactly these.
  std::vector<WeightSlice> SliceWeights(const ModelSpec& spec, int first_layer, int last_layer, int slice) const;
  // Their bytes with matrices in `formats` and vectors in float32 (the loader's types).
  int64_t WeightBytes(const ModelSpec& spec, int first_layer, int last_layer, int slice,
                      const WeightFormats& formats) const;

 private:
  Topology topo_;
  int num_layers_ = 0, num_heads_ = 1, head_dim_ = 1, intermediate_ = 0;
  int64_t vocab_size_ = 0;
  std::vector<LayerSpan> stages_;
  std::vector<int> stage_of_layer_;
};

}  // namespace strata
