// Block ids and ring-bank slots: all-or-nothing allocation, every id handed out once until freed,
// the most recently freed reused first, and exhaustion reported instead of over-allocating.
#include "cache/block_pool.h"

#include <gtest/gtest.h>

#include <random>
#include <set>

namespace strata {
namespace {

TEST(BlockPool, AllOrNothingAndEveryIdOnce) {
  BlockPool pool(10);
  EXPECT_EQ(pool.num_free(), 10);
  auto a = pool.Allocate(4);
  ASSERT_TRUE(a.ok());
  auto b = pool.Allocate(7);  // only 6 left: nothing is taken
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(pool.num_free(), 6);
  auto c = pool.Allocate(6);
  ASSERT_TRUE(c.ok());
  std::set<int> ids(a->begin(), a->end());
  ids.insert(c->begin(), c->end());
  EXPECT_EQ(ids, (std::set<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  EXPECT_FALSE(pool.Allocate(1).ok());
  EXPECT_TRUE(pool.Allocate(0).ok());
  EXPECT_FALSE(pool.Allocate(-1).ok());
  pool.Free(*a);
  EXPECT_EQ(pool.num_free(), 4);
}

TEST(BlockPool, ReusesTheMostRecentlyFreedFirst) {
  BlockPool pool(8);
  auto a = pool.Allocate(3);
  auto b = pool.Allocate(2);
  ASSERT_TRUE(a.ok() && b.ok());
  pool.Free(*b);
  auto again = pool.Allocate(2);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(std::set<int>(again->begin(), again->end()), std::set<int>(b->begin(), b->end()));
}

TEST(BlockPool, RandomTrafficNeverHandsOutAnIdTwice) {
  std::mt19937 rng(1);
  BlockPool pool(64);
  std::vector<std::vector<int>> held;
  std::set<int> out;
  for (int i = 0; i < 2000; ++i) {
    if (held.empty() || rng() % 2) {
      auto got = pool.Allocate(rng() % 9);
      if (!got.ok()) continue;
      for (int b : *got) EXPECT_TRUE(out.insert(b).second) << "block " << b << " handed out twice";
      held.push_back(*got);
    } else {
      const size_t k = rng() % held.size();
      for (int b : held[k]) out.erase(b);
      pool.Free(held[k]);
      held.erase(held.begin() + static_cast<long>(k));
    }
    EXPECT_EQ(pool.num_free() + static_cast<int64_t>(out.size()), 64);
  }
}

BlockKey Key(uint64_t parent, std::vector<int> tokens) {
  BlockKey k;
  k.parent = parent;
  k.hash = BlockHash(parent, tokens);
  k.tokens = std::move(tokens);
  return k;
}

// Prefix caching: a published block outlives its sequence until Allocate needs it (least
// recently freed first), Match takes the longest cached prefix with one reference per taker,
// and a key whose tokens differ (a hash collision) is not a match.
TEST(BlockPool, PublishedBlocksAreMatchedSharedAndEvictedLeastRecentlyFreedFirst) {
  BlockPool pool(4);
  const BlockKey a = Key(kRootBlockHash, {1, 2}), b = Key(a.hash, {3, 4}), c = Key(kRootBlockHash, {9, 9});
  EXPECT_NE(a.hash, Key(kRootBlockHash, {2, 1}).hash);
  EXPECT_NE(b.hash, Key(c.hash, {3, 4}).hash);  // the parent is part of the key
  auto s1 = pool.Allocate(2);
  ASSERT_TRUE(s1.ok());
  pool.Publish((*s1)[0], a);
  pool.Publish((*s1)[1], b);
  EXPECT_EQ(pool.num_cached(), 2);
  // Another sequence takes both while the first still holds them.
  std::vector<int> hit = pool.Match({a, b, Key(b.hash, {5, 6})});
  EXPECT_EQ(hit, *s1);
  EXPECT_EQ(pool.ref_count((*s1)[0]), 2);
  pool.Free(*s1);
  pool.Free(hit);
  EXPECT_EQ(pool.num_free(), 4);  // cached but unheld blocks count as free
  EXPECT_EQ(pool.num_cached(), 2);
  EXPECT_EQ(pool.Match({a}).size(), 1u);  // still there after both let go
  pool.Free({(*s1)[0]});
  // Same hash, other tokens: refused.
  BlockKey forged = a;
  forged.tokens = {7, 7};
  EXPECT_TRUE(pool.Match({forged}).empty());
  // Allocation uses never-held blocks first, then evicts the least recently freed (b, then a).
  auto s2 = pool.Allocate(3);
  ASSERT_TRUE(s2.ok());
  EXPECT_EQ(pool.num_cached(), 1);
  EXPECT_TRUE(pool.Cached(a.hash));
  EXPECT_FALSE(pool.Cached(b.hash));
  auto s3 = pool.Allocate(1);
  ASSERT_TRUE(s3.ok());
  EXPECT_EQ(pool.num_cached(), 0);
  EXPECT_FALSE(pool.Allocate(1).ok());
  // A key published twice keeps its first block; the second stays private.
  pool.Publish((*s2)[0], c);
  pool.Publish((*s2)[1], c);
  EXPECT_TRUE(pool.published((*s2)[0]));
  EXPECT_FALSE(pool.published((*s2)[1]));
}

TEST(SlotPool, ExhaustsAndRecovers) {
  SlotPool slots(3);
  std::set<int> got;
  for (int i = 0; i < 3; ++i) {
    auto s = slots.Allocate();
    ASSERT_TRUE(s.ok());
    got.insert(*s);
  }
  EXPECT_EQ(got, (std::set<int>{0, 1, 2}));
  EXPECT_FALSE(slots.Allocate().ok());
  slots.Free(1);
  auto s = slots.Allocate();
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(*s, 1);
  EXPECT_EQ(BlocksFor(0, 16), 0);
  EXPECT_EQ(BlocksFor(16, 16), 1);
  EXPECT_EQ(BlocksFor(17, 16), 2);
}

}  // namespace
}  // namespace strata
