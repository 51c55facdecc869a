#include "cache/block_pool.h"

#include "absl/strings/str_cat.h"
#include "runtime/base/status.h"

namespace strata {

uint64_t BlockHash(uint64_t parent, const std::vector<int>& tokens) {
  // splitmix64 over the parent and each token: stable across runs and ranks.
  auto mix = [](uint64_t z) {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  };
  uint64_t h = mix(parent);
  for (int t : tokens) h = mix(h ^ static_cast<uint32_t>(t));
  return h;
}

BlockPool::BlockPool(int64_t num_blocks) : num_blocks_(num_blocks), meta_(static_cast<size_t>(num_blocks)) {
  free_.reserve(static_cast<size_t>(num_blocks));
  for (int64_t b = num_blocks - 1; b >= 0; --b) free_.push_back(static_cast<int>(b));
}

void BlockPool::Evict(int block) {
  Meta& m = meta_[block];
  evictable_.erase(m.lru);
  m.evictable = false;
  by_hash_.erase(m.key.hash);
  m.published = false;
  m.key = BlockKey{};
}

absl::StatusOr<std::vector<int>> BlockPool::Allocate(int64_t count) {
  if (count < 0) return absl::InvalidArgumentError(absl::StrCat("cannot allocate ", count, " blocks"));
  if (count > num_free())
    return absl::ResourceExhaustedError(
        absl::StrCat("KV cache full: need ", count, " blocks, ", num_free(), " of ", num_blocks_, " free"));
  std::vector<int> out;
  out.reserve(static_cast<size_t>(count));
  while (static_cast<int64_t>(out.size()) < count && !free_.empty()) {
    out.push_back(free_.back());
    free_.pop_back();
  }
  while (static_cast<int64_t>(out.size()) < count) {
    const int b = evictable_.front();
    Evict(b);
    out.push_back(b);
  }
  for (int b : out) meta_[b].refs = 1;
  return out;
}

void BlockPool::Free(const std::vector<int>& blocks) {
  for (int b : blocks) {
    STRATA_CHECK(b >= 0 && b < num_blocks_);
    Meta& m = meta_[b];
    STRATA_CHECK(m.refs > 0);
    if (--m.refs > 0) continue;
    if (m.published) {
      m.evictable = true;
      m.lru = evictable_.insert(evictable_.end(), b);
    } else {
      free_.push_back(b);
    }
  }
  STRATA_CHECK(num_free() <= num_blocks_);
}

std::vector<int> BlockPool::Match(const std::vector<BlockKey>& chain) {
  std::vector<int> out;
  for (const BlockKey& k : chain) {
    auto it = by_hash_.find(k.hash);
    if (it == by_hash_.end()) break;
    Meta& m = meta_[it->second];
    if (m.key.parent != k.parent || m.key.tokens != k.tokens) break;  // a hash collision
    if (m.evictable) {
      evictable_.erase(m.lru);
      m.evictable = false;
    }
    ++m.refs;
    out.push_back(it->second);
  }
  return out;
}

void BlockPool::Publish(int block, BlockKey key) {
  STRATA_CHECK(block >= 0 && block < num_blocks_ && meta_[block].refs > 0);
  Meta& m = meta_[block];
  if (m.published || by_hash_.count(key.hash)) return;
  by_hash_[key.hash] = block;
  m.published = true;
  m.key = std::move(key);
}

void BlockPool::Retain(int block) {
  STRATA_CHECK(block >= 0 && block < num_blocks_ && meta_[block].refs > 0);
  ++meta_[block].refs;
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
