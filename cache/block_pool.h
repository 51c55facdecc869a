// File: cache/block_pool.h
// Block ids and sequence slots. The pool deals in ids only: it never knows which layers or banks
// a block backs (one id covers a sequence's rows in every paged bank of every stage, homes and
// mirrors alike, so one id and one hash per block stand for all of them).
//
// Prefix caching: a block whose rows are all written can be published under its key (the hash of
// its tokens chained to its parent's, with the tokens themselves kept to rule out collisions).
// Blocks are reference counted: a sequence holds one reference to each of its blocks, and a
// published block that no sequence holds stays cached, evicted least recently freed first when
// Allocate needs it. Match hands the cached blocks of a key chain's longest prefix to another
// sequence. Nobody writes a published block again: a sequence writes only rows at or after its
// computed prefix, and only full, computed blocks are published.
#pragma once

#include <cstdint>
#include <list>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"

namespace strata {

// What identifies a block's contents: the tokens it holds after everything before them.
struct BlockKey {
  uint64_t hash = 0;         // BlockHash(parent's hash, tokens)
  uint64_t parent = 0;       // the previous block's hash (kRootBlockHash for the first)
  std::vector<int> tokens;   // block_size of them
};
inline constexpr uint64_t kRootBlockHash = 0x5374726174614b56ull;  // "StrataKV"
uint64_t BlockHash(uint64_t parent, const std::vector<int>& tokens);

class BlockPool {
 public:
  explicit BlockPool(int64_t num_blocks);
  int64_t num_blocks() const { return num_blocks_; }
  // Blocks Allocate can hand out: never held, or cached with no sequence holding them.
  int64_t num_free() const { return static_cast<int64_t>(free_.size() + evictable_.size()); }
  // Published blocks (held or not).
  int64_t num_cached() const { return static_cast<int64_t>(by_hash_.size()); }
  // All or nothing; one reference each. Takes never-used blocks first, then evicts cached ones.
  absl::StatusOr<std::vector<int>> Allocate(int64_t count);
  // Drops one reference from each block.
  void Free(const std::vector<int>& blocks);

  // The cached blocks of the longest prefix of `chain` (in order), one more reference each.
  std::vector<int> Match(const std::vector<BlockKey>& chain);
  // Whether `hash` is cached (without taking it).
  bool Cached(uint64_t hash) const { return by_hash_.count(hash) > 0; }
  // `block` (held, rows written) now holds `key`'s contents. A key already cached under another
  // block keeps that one; this block then stays private and is freed as usual.
  void Publish(int block, BlockKey key);
  // One more reference to a held block (kept from reuse while another sequence copies it).
  void Retain(int block);
  int ref_count(int block) const { return meta_[block].refs; }
  bool published(int block) const { return meta_[block].published; }

 private:
  struct Meta {
    int refs = 0;
    bool published = false;
    BlockKey key;
    bool evictable = false;
    std::list<int>::iterator lru;  // valid while evictable
  };
  void Evict(int block);  // an evictable block loses its key and becomes plain free

  int64_t num_blocks_;
  std::vector<int> free_;       // never-held or unpublished: a stack, the most recently freed reused first
  std::list<int> evictable_;    // published, no references: least recently freed first
  std::unordered_map<uint64_t, int> by_hash_;
  std::vector<Meta> meta_;
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
