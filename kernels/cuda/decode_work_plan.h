// File: kernels/cuda/decode_work_plan.h
// The split-KV work plan of one decode attention launch (FlashInfer's scheduler, simplified):
// the keys of every (sequence, KV head) are cut into chunks of one size chosen from the total KV
// work and the number of blocks the device runs at once, so that a launch has about as many
// blocks as the SMs hold whatever the batch and the context lengths.
//
// Consumer (not wired yet; needs a GPU to verify): the decode attention kernel of
// cuda_attention.cu will launch one block per DecodeWorkItem (the items copied to the device
// with the step's batch arrays). A block loads each key of [kv_begin, kv_end) of its KV head once
// and serves the whole GQA group (group_size query heads) from it. An item with partial_slot -1
// writes the group's normalized outputs; a split item writes, for each of the group's query
// heads, the unnormalized accumulator and its running max and sum (head_dim + 2 floats) into its
// slot, and the merge kernel combines the slots of each DecodeMerge (rescaling by
// exp(m_i - m_max), as AttentionMergeKernel does now). Under CUDA-graph capture the grid is fixed
// at MaxDecodeWorkItems(...) blocks and blocks past the step's item count return at once.
//
// This replaces the rule "split only when (token, head) pairs < 2 x SMs", which leaves the
// device nearly idle just past the threshold (a batch of 9 long sequences ran as few blocks as
// there are pairs, each walking the whole context) and splits every sequence by the longest one,
// so short or windowed sequences get empty blocks.
//
// Plain C++, no CUDA headers: compiled and unit-tested in every build.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"

namespace strata {

// Chunk boundaries fall on multiples of this many keys (the KV block size), so that a chunk of
// a full-attention layer reads whole blocks.
inline constexpr int kDecodeChunkGranule = 16;

struct DecodeWorkPlanInput {
  // Per sequence (one decode token each): the keys its query sees in this layer, already
  // windowed by the caller (min(context + 1, window) for a sliding-window layer; one less when
  // the diagonal is masked). Keys are counted from the first visible one: key 0 of a windowed
  // layer is position max(0, t - window + 1).
  std::vector<int> kv_len;
  int num_kv_heads = 0;
  int group_size = 0;  // query heads per KV head (GQA); only sizes the partial slots' contents
  int num_sms = 0;
  // Resident blocks of the attention kernel per SM (cudaOccupancyMaxActiveBlocksPerMultiprocessor).
  int blocks_per_sm = 0;
  // The smallest chunk worth a block of its own: a multiple of kDecodeChunkGranule, e.g. 64.
  int min_chunk = 64;
  // Slots in the partials buffer; one slot holds one split item's group_size x (head_dim + 2)
  // floats. Where the chunk from the work would need more, the chunk doubles until it fits.
  int64_t max_partial_slots = 0;
};

struct DecodeWorkItem {
  int seq = 0;
  int kv_head = 0;
  int kv_begin = 0;  // keys [kv_begin, kv_end) of this (seq, kv_head), counted as in kv_len
  int kv_end = 0;
  int partial_slot = -1;  // -1: the item covers the whole sequence and writes the output directly
};

// A (seq, kv_head) whose keys were split: its items' partials are slots
// [first_slot, first_slot + num_slots), in key order.
struct DecodeMerge {
  int seq = 0;
  int kv_head = 0;
  int first_slot = 0;
  int num_slots = 0;
};

// Invariants (tested in tests/kernels/decode_work_plan_test.cc):
//  * For every (seq, kv_head) with kv_len > 0, its items are consecutive in `items`, in key
//    order, and cover [0, kv_len) exactly once; no item is empty; no item is longer than `chunk`.
//  * A (seq, kv_head) with kv_len <= chunk has exactly one item, with partial_slot -1 (so a
//    sequence shorter than min_chunk is never split); one with more has ceil(kv_len / chunk)
//    items, each with a slot of its own, and exactly one DecodeMerge.
//  * Slots are unique, below max_partial_slots, and numbered 0.. in item order.
//  * chunk is a multiple of 16 in [min_chunk, max(min_chunk, roundup(longest kv_len, 16))] (the
//    top splits nothing). It is chosen in a slot model of the launch: target = num_sms x
//    blocks_per_sm blocks run at once, so a plan takes ceil(items / target) waves of up to chunk
//    keys. Candidates: for w = 1..4 waves, the smallest chunk whose items fit w x target (w = 1
//    is FlashInfer's rule, the smallest chunk whose blocks fit the grid; it is at least
//    ceil(total / target), total = sum of kv_len x num_kv_heads), and the no-split chunk; the
//    one with the fewest waves x chunk wins, ties to the longer chunk. Every candidate is first
//    raised to the smallest chunk whose split items' slots fit max_partial_slots.
//  * Hence items <= MaxDecodeWorkItems = max(4 x target, (seq, kv_head) pairs). Where the slot
//    limit does not bind, items >= target / 2 once total >= 2 x min_chunk x target (a chunk 16
//    shorter would at most double the items and run in one wave, faster).
//  * A sequence with kv_len == 0 (no visible key) has no item and is listed in `empty_seqs`:
//    nothing writes its output, so the launch must write its zeros itself (the CPU reference
//    gives zero for no visible key, §2.1) - the merge kernel takes the list and zeroes those
//    rows, or the output is cleared before the attention kernel runs.
struct DecodeWorkPlan {
  int chunk = 0;
  std::vector<DecodeWorkItem> items;
  std::vector<DecodeMerge> merges;
  std::vector<int> empty_seqs;
  int64_t partial_slots_used = 0;
};

// InvalidArgument for inputs no caller should pass (non-positive sizes, negative lengths, a
// min_chunk that is not a positive multiple of kDecodeChunkGranule, negative max_partial_slots).
absl::StatusOr<DecodeWorkPlan> PlanDecodeWork(const DecodeWorkPlanInput& input);

// The most items any plan for this shape can have: the grid of a launch captured in a CUDA graph.
int64_t MaxDecodeWorkItems(int num_seqs, int num_kv_heads, int num_sms, int blocks_per_sm);

}  // namespace strata
