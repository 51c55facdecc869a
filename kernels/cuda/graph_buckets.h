// File: kernels/cuda/graph_buckets.h
// The batch sizes at which decode steps are captured as CUDA graphs, and how a step of another
// size is padded up to one (vLLM's scheme: capture sizes 1, 2, 4, then every multiple of 8 up
// to a maximum).
//
// Consumer (not wired yet; needs a GPU to verify): the CUDA backend will capture one graph per
// capture size at startup (every decode kernel, the attention work plan's fixed grid of
// MaxDecodeWorkItems blocks, sampling), and each decode step replays the graph of
// GraphBuckets::ShapeFor(batch).bucket after appending `padding` PaddingSequence rows to the
// step's batch arrays; a batch above the largest size runs eagerly, launch by launch, as today.
// Only decode steps (one token per sequence) are captured; prefill and mixed steps run eagerly.
//
// Plain C++, no CUDA headers: compiled and unit-tested in every build.
#pragma once

#include <optional>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace strata {

// What a padding sequence of a captured step is: one decode token at position 0 whose block
// table row points only at a block reserved for padding, so that its KV write and attention
// read touch no real sequence's rows. The KV storage must allocate one block past the pool's
// num_blocks (its id is num_blocks; the block pool never hands it out) and one ring slot past
// max_seqs for ring banks. Its token id is 0 (any valid id); its logits, sampled token and
// logprob are discarded: the step's first `real` rows are the only ones read back.
struct PaddingSequence {
  int token = 0;
  int context_len = 0;
  int block = 0;  // every entry of its block table row: the reserved padding block
  int slot = 0;   // its ring slot: the reserved padding slot
};

PaddingSequence MakePaddingSequence(int reserved_block, int reserved_slot);

// How one decode step of `real` sequences runs.
struct GraphStepShape {
  bool captured = false;  // false: the batch is above the largest capture size; run eagerly
  int bucket = 0;         // the capture size replayed (== real when not captured)
  int real = 0;
  int padding = 0;  // bucket - real padding sequences appended after the real ones
};

class GraphBuckets {
 public:
  // 1, 2, 4 and the multiples of 8 up to max_batch, plus max_batch itself when it is not one of
  // them, so every batch up to max_batch has a graph. InvalidArgument when max_batch < 1.
  static absl::StatusOr<GraphBuckets> Default(int max_batch);
  // A custom list (e.g. from a flag): strictly increasing, every size at least 1.
  static absl::StatusOr<GraphBuckets> FromSizes(std::vector<int> sizes);

  const std::vector<int>& sizes() const { return sizes_; }
  int max_size() const { return sizes_.back(); }

  // The smallest capture size >= batch; none when batch exceeds the largest (run eagerly).
  // batch must be at least 1.
  std::optional<int> BucketFor(int batch) const;
  GraphStepShape ShapeFor(int batch) const;

 private:
  explicit GraphBuckets(std::vector<int> sizes) : sizes_(std::move(sizes)) {}
  std::vector<int> sizes_;  // strictly increasing, non-empty
};

}  // namespace strata
