// File: cache/block_pool.h
// Block ids and sequence slots. The pool deals in ids only: it never knows which layers or banks
// a block backs (one id covers a sequence's rows in every paged bank of every stage).
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"

namespace strata {

class BlockPool {
 public:
  explicit BlockPool(int64_t num_blocks);
  int64_t num_blocks() const { return num_blocks_; }
  int64_t num_free() const { return static_cast<int64_t>(free_.size()); }
  // All or nothing.
  absl::StatusOr<std::vector<int>> Allocate(int64_t count);
  void Free(const std::vector<int>& blocks);

 private:
  int64_t num_blocks_;
  std::vector<int> free_;  // a stack: the most recently freed block is reused first
};

// Fixed per-sequence rows of ring banks; the same free-list shape as blocks.
class SlotPool {
 public:
  explicit SlotPool(int num_slots);
  int num_free() const { return static_cast<int>(free_.size()); }
  absl::StatusOr<int> Allocate();
  void Free(int slot);

 private:
  std::vector<int> free_;
};

// Blocks needed to hold `tokens` tokens.
inline int64_t BlocksFor(int64_t tokens, int block_size) { return (tokens + block_size - 1) / block_size; }

}  // namespace strata
