#include "cache/block_pool.h"

#include "absl/strings/str_cat.h"
#include "runtime/base/status.h"

namespace strata {

BlockPool::BlockPool(int64_t num_blocks) : num_blocks_(num_blocks) {
  free_.reserve(static_cast<size_t>(num_blocks));
  for (int64_t b = num_blocks - 1; b >= 0; --b) free_.push_back(static_cast<int>(b));
}

absl::StatusOr<std::vector<int>> BlockPool::Allocate(int64_t count) {
  if (count < 0) return absl::InvalidArgumentError(absl::StrCat("cannot allocate ", count, " blocks"));
  if (count > num_free())
    return absl::ResourceExhaustedError(
        absl::StrCat("KV cache full: need ", count, " blocks, ", num_free(), " of ", num_blocks_, " free"));
  std::vector<int> out(free_.end() - count, free_.end());
  free_.resize(free_.size() - static_cast<size_t>(count));
  return out;
}

void BlockPool::Free(const std::vector<int>& blocks) {
  for (int b : blocks) {
    STRATA_CHECK(b >= 0 && b < num_blocks_);
    free_.push_back(b);
  }
  STRATA_CHECK(num_free() <= num_blocks_);
}

SlotPool::SlotPool(int num_slots) {
  for (int s = num_slots - 1; s >= 0; --s) free_.push_back(s);
}

absl::StatusOr<int> SlotPool::Allocate() {
  if (free_.empty()) return absl::ResourceExhaustedError("no free sequence slot");
  int s = free_.back();
  free_.pop_back();
  return s;
}

void SlotPool::Free(int slot) { free_.push_back(slot); }

}  // namespace strata
