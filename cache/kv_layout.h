// File: cache/kv_layout.h
// Which banks (KV storage per producer layer) a model needs, which bank each layer reads, and
// what they cost. Only producers own cache memory (decision (d)); readers index their producer's
// bank. Sliding-window producers get ring banks bounded by their window (§8).
#pragma once

#include <cstdint>
#include <vector>

#include "parallel/parallel_layout.h"
#include "runtime/base/dtype.h"
#include "runtime/model/model_spec.h"

namespace strata {

struct KvBank {
  int producer_layer = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  int window = 0;  // > 0: ring bank of `window` rows per sequence
  // 2 (K and V) * kv heads * head dim * element size
  int64_t bytes_per_row = 0;
};

struct KvLayout {
  DType dtype = DType::kF32;
  int block_size = 16;
  std::vector<KvBank> banks;       // ascending producer layer
  std::vector<int> bank_of_layer;  // layer -> index into banks (its producer's bank)
  int64_t bytes_per_token = 0;     // paged (full-attention) banks, per token of one sequence
  int64_t bytes_per_sequence = 0;  // ring banks, fixed per sequence

  int64_t bytes_per_block() const { return bytes_per_token * block_size; }
  bool has_paged_banks() const { return bytes_per_token > 0; }
};

// `layers`: restrict to the banks some layer in [first, last] reads (a pipeline stage's homes and
// mirrors); the default is the whole model.
// `parallel`: the layout of one tensor-parallel rank (its share of each bank's KV heads, §7.1);
// the first form is one rank holding every head.
KvLayout MakeKvLayout(const ModelSpec& spec, DType dtype, int block_size, int first_layer = 0,
                      int last_layer = -1);
KvLayout MakeKvLayout(const ModelSpec& spec, DType dtype, int block_size, const ParallelLayout& parallel,
                      int first_layer, int last_layer);

struct KvCapacity {
  int64_t num_blocks = 0;
  int64_t tokens = 0;  // num_blocks * block_size
  int max_seqs = 0;
};
// Splits `memory_bytes` between ring banks (max_seqs slots) and paged blocks.
KvCapacity ComputeKvCapacity(const KvLayout& layout, int64_t memory_bytes, int max_seqs);

}  // namespace strata
