// The split-KV decode planner (kernels/cuda/decode_work_plan.h): its invariants on chosen and
// seeded random batches, and the occupancy it gives across batch sizes against the rule it
// replaces ("split only when (token, query head) pairs < 2 x SMs", re-implemented here), which
// falls off a cliff between batch 8 and 16 at long contexts.
#include "kernels/cuda/decode_work_plan.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <queue>
#include <random>
#include <set>
#include <utility>
#include <vector>

namespace strata {
namespace {

constexpr int kH100Sms = 132;

DecodeWorkPlanInput Input(std::vector<int> kv_len, int num_kv_heads = 8, int num_sms = kH100Sms, int blocks_per_sm = 4) {
  return {.kv_len = std::move(kv_len),
          .num_kv_heads = num_kv_heads,
          .group_size = 4,
          .num_sms = num_sms,
          .blocks_per_sm = blocks_per_sm,
          .min_chunk = 64,
          .max_partial_slots = 1 << 20};
}

DecodeWorkPlan Plan(const DecodeWorkPlanInput& in) {
  absl::StatusOr<DecodeWorkPlan> plan = PlanDecodeWork(in);
  EXPECT_TRUE(plan.ok()) << plan.status();
  return plan.ok() ? *std::move(plan) : DecodeWorkPlan{};
}

// Every invariant the header promises, for one plan.
void ExpectInvariants(const DecodeWorkPlanInput& in, const DecodeWorkPlan& plan) {
  const int64_t target = static_cast<int64_t>(in.num_sms) * in.blocks_per_sm;
  EXPECT_EQ(plan.chunk % kDecodeChunkGranule, 0);
  EXPECT_GE(plan.chunk, in.min_chunk);

  // Items per (seq, kv_head), in the order they appear; each pair's items must be consecutive.
  std::map<std::pair<int, int>, std::vector<DecodeWorkItem>> by_pair;
  std::set<std::pair<int, int>> finished;
  std::pair<int, int> current = {-1, -1};
  std::set<int> slots;
  for (const DecodeWorkItem& item : plan.items) {
    const std::pair<int, int> key = {item.seq, item.kv_head};
    if (key != current) {
      EXPECT_FALSE(finished.count(key)) << "items of seq " << item.seq << " head " << item.kv_head << " not consecutive";
      if (current.first >= 0) finished.insert(current);
      current = key;
    }
    by_pair[key].push_back(item);
    ASSERT_GE(item.seq, 0);
    ASSERT_LT(item.seq, static_cast<int>(in.kv_len.size()));
    ASSERT_GE(item.kv_head, 0);
    ASSERT_LT(item.kv_head, in.num_kv_heads);
    EXPECT_LT(item.kv_begin, item.kv_end) << "empty item";
    EXPECT_LE(item.kv_end - item.kv_begin, plan.chunk);
    if (item.partial_slot >= 0) {
      EXPECT_TRUE(slots.insert(item.partial_slot).second) << "slot " << item.partial_slot << " used twice";
      EXPECT_LT(item.partial_slot, in.max_partial_slots);
    }
  }
  EXPECT_EQ(static_cast<int64_t>(slots.size()), plan.partial_slots_used);
  if (!slots.empty()) {
    EXPECT_EQ(*slots.begin(), 0);
    EXPECT_EQ(*slots.rbegin(), plan.partial_slots_used - 1);
  }

  std::map<std::pair<int, int>, DecodeMerge> merges;
  for (const DecodeMerge& m : plan.merges)
    EXPECT_TRUE(merges.insert({{m.seq, m.kv_head}, m}).second) << "two merges for seq " << m.seq << " head " << m.kv_head;

  std::vector<int> empty;
  int64_t pairs_with_keys = 0;
  for (int s = 0; s < static_cast<int>(in.kv_len.size()); ++s) {
    const int len = in.kv_len[s];
    if (len == 0) empty.push_back(s);
    pairs_with_keys += len > 0 ? in.num_kv_heads : 0;
    for (int h = 0; h < in.num_kv_heads; ++h) {
      const auto it = by_pair.find({s, h});
      if (len == 0) {
        EXPECT_TRUE(it == by_pair.end()) << "seq " << s << " has no key but has items";
        continue;
      }
      ASSERT_TRUE(it != by_pair.end()) << "seq " << s << " head " << h << " has no item";
      const std::vector<DecodeWorkItem>& items = it->second;
      int next = 0;  // keys covered exactly once, in order
      for (const DecodeWorkItem& item : items) {
        EXPECT_EQ(item.kv_begin, next);
        next = item.kv_end;
      }
      EXPECT_EQ(next, len);
      if (len <= plan.chunk) {
        ASSERT_EQ(items.size(), 1u);
        EXPECT_EQ(items[0].partial_slot, -1) << "a whole-sequence item writes the output";
        EXPECT_FALSE(merges.count({s, h}));
      } else {
        EXPECT_EQ(static_cast<int>(items.size()), (len + plan.chunk - 1) / plan.chunk);
        ASSERT_TRUE(merges.count({s, h}));
        const DecodeMerge& m = merges.at({s, h});
        ASSERT_EQ(m.num_slots, static_cast<int>(items.size()));
        for (size_t i = 0; i < items.size(); ++i) EXPECT_EQ(items[i].partial_slot, m.first_slot + static_cast<int>(i));
      }
    }
  }
  EXPECT_EQ(plan.empty_seqs, empty);
  EXPECT_EQ(plan.merges.size() + static_cast<size_t>(std::count_if(
                                     plan.items.begin(), plan.items.end(),
                                     [](const DecodeWorkItem& i) { return i.partial_slot < 0; })),
            static_cast<size_t>(pairs_with_keys));
  const int64_t items = static_cast<int64_t>(plan.items.size());
  EXPECT_LE(items, MaxDecodeWorkItems(static_cast<int>(in.kv_len.size()), in.num_kv_heads, in.num_sms, in.blocks_per_sm));
  EXPECT_LE(items, std::max(4 * target, pairs_with_keys));
}

int64_t TotalWork(const DecodeWorkPlanInput& in) {
  int64_t total = 0;
  for (int len : in.kv_len) total += static_cast<int64_t>(len) * in.num_kv_heads;
  return total;
}

// The step time of a launch in key loads: blocks (costs in keys) go in order to whichever of the
// `concurrent` resident slots frees first, as the GPU's block scheduler hands them out.
int64_t Makespan(const std::vector<int64_t>& block_keys, int64_t concurrent) {
  std::priority_queue<int64_t, std::vector<int64_t>, std::greater<int64_t>> free_at;
  for (int64_t i = 0; i < concurrent; ++i) free_at.push(0);
  int64_t end = 0;
  for (int64_t keys : block_keys) {
    const int64_t start = free_at.top();
    free_at.pop();
    free_at.push(start + keys);
    end = std::max(end, start + keys);
  }
  return end;
}

std::vector<int64_t> ItemKeys(const DecodeWorkPlan& plan) {
  std::vector<int64_t> keys;
  for (const DecodeWorkItem& item : plan.items) keys.push_back(item.kv_end - item.kv_begin);
  return keys;
}

// The rule being replaced (CudaBackend::Attention before this planner): one block per (token,
// query head, split); split every sequence into ceil(longest / 256) (at most 64) equal pieces
// only when the pairs are fewer than twice the SMs. Each block loads its keys for one query head.
std::vector<int64_t> OldRuleBlockKeys(int batch, int context, int num_heads, int num_sms) {
  const int pairs = batch * num_heads;
  const int splits = pairs >= 2 * num_sms ? 1 : std::clamp((context + 255) / 256, 1, 64);
  const int per_split = (context + splits - 1) / splits;
  std::vector<int64_t> keys;
  for (int p = 0; p < pairs; ++p)
    for (int sp = 0; sp < splits; ++sp) keys.push_back(std::max(0, std::min(context, (sp + 1) * per_split) - sp * per_split));
  return keys;
}

TEST(DecodeWorkPlan, InvariantsOnChosenBatches) {
  const std::vector<std::vector<int>> batches = {
      {1}, {4096}, {0}, {0, 0}, {5000, 0, 17, 64, 65, 4096}, {100000}, {1, 1, 1, 1, 1, 1, 1, 1}, {16, 32, 48},
  };
  for (const std::vector<int>& lens : batches) {
    for (int heads : {1, 2, 8}) {
      const DecodeWorkPlanInput in = Input(lens, heads);
      ExpectInvariants(in, Plan(in));
    }
  }
}

TEST(DecodeWorkPlan, ItemCountNearTheTargetWhenTheWorkAllows) {
  for (int blocks_per_sm : {1, 2, 4, 8}) {
    for (int batch : {1, 2, 3, 5, 8, 13, 16, 31, 64}) {
      for (int context : {2048, 4096, 8192, 32768}) {
        const DecodeWorkPlanInput in = Input(std::vector<int>(batch, context), 8, kH100Sms, blocks_per_sm);
        const int64_t target = static_cast<int64_t>(kH100Sms) * blocks_per_sm;
        if (TotalWork(in) < 2 * in.min_chunk * target) continue;
        const DecodeWorkPlan plan = Plan(in);
        ExpectInvariants(in, plan);
        const int64_t items = static_cast<int64_t>(plan.items.size());
        const int64_t pairs = static_cast<int64_t>(batch) * in.num_kv_heads;
        EXPECT_GE(items, target / 2) << "batch " << batch << " context " << context << " blocks/SM " << blocks_per_sm;
        EXPECT_LE(items, std::max(4 * target, pairs)) << "batch " << batch << " context " << context;
      }
    }
  }
}

// 132 SMs (H100), 8 KV heads, 32 query heads (Llama-3-8B), 4096-token contexts, batch 1..64.
TEST(DecodeWorkPlan, NoOccupancyCliffAcrossBatchSizes) {
  constexpr int kContext = 4096, kKvHeads = 8, kHeads = 32, kBlocksPerSm = 4;
  constexpr int64_t kConcurrent = static_cast<int64_t>(kH100Sms) * kBlocksPerSm;
  std::vector<double> old_per_key, new_per_key, old_blocks_per_sm;
  for (int batch = 1; batch <= 64; ++batch) {
    const DecodeWorkPlanInput in = Input(std::vector<int>(batch, kContext), kKvHeads, kH100Sms, kBlocksPerSm);
    const DecodeWorkPlan plan = Plan(in);
    ExpectInvariants(in, plan);
    // Items per SM stay in a band: at least half the resident blocks, at most four waves of them.
    const double items_per_sm = static_cast<double>(plan.items.size()) / kH100Sms;
    EXPECT_GE(items_per_sm, kBlocksPerSm / 2.0) << "batch " << batch;
    EXPECT_LE(items_per_sm, 4.0 * kBlocksPerSm) << "batch " << batch;
    // Modeled step time per key of work: flat (each item's loads serve a whole GQA group).
    const int64_t work = TotalWork(in);
    new_per_key.push_back(static_cast<double>(Makespan(ItemKeys(plan), kConcurrent)) / work);
    const std::vector<int64_t> old_blocks = OldRuleBlockKeys(batch, kContext, kHeads, kH100Sms);
    old_per_key.push_back(static_cast<double>(Makespan(old_blocks, kConcurrent)) / (int64_t{batch} * kHeads * kContext));
    old_blocks_per_sm.push_back(static_cast<double>(old_blocks.size()) / kH100Sms);
  }
  // The new plan: the time per key never jumps between consecutive batches, and the slots are
  // at least ~77% busy over the step (the ideal time per key is 1 / kConcurrent). Fitting one
  // wave only (FlashInfer's rule) would leave batch 34 at 52%: 272 whole items for 528 slots.
  for (int b = 1; b < 64; ++b)
    EXPECT_LE(new_per_key[b] / new_per_key[b - 1], 1.25) << "new plan, batch " << b << " -> " << b + 1;
  for (int b = 0; b < 64; ++b) EXPECT_LE(new_per_key[b] * kConcurrent, 1.3) << "new plan, batch " << b + 1;
  // The old rule: between batch 8 and 16 its blocks per SM fall from ~31 to ~2 and the time per
  // key nearly doubles from one batch to the next (batch 8: 16 splits of 256 keys; batch 9: one
  // block per pair walking all 4096 keys, 288 blocks for 528 resident slots).
  double worst_jump = 0;
  for (int b = 8; b < 16; ++b) worst_jump = std::max(worst_jump, old_per_key[b] / old_per_key[b - 1]);
  EXPECT_GE(worst_jump, 1.7);
  EXPECT_GT(old_blocks_per_sm[7], 30.0);  // batch 8
  EXPECT_LT(old_blocks_per_sm[8], 2.5);   // batch 9: below the band the new plan stays in
}

TEST(DecodeWorkPlan, ShortSequencesAreNeverSplit) {
  // Items shorter than min_chunk get one item each, however few pairs there are.
  for (int len = 1; len <= 64; ++len) {
    const DecodeWorkPlanInput in = Input({len, len / 2, 64 - len + 1}, 2);
    const DecodeWorkPlan plan = Plan(in);
    ExpectInvariants(in, plan);
    EXPECT_TRUE(plan.merges.empty()) << "len " << len;
    for (const DecodeWorkItem& item : plan.items) EXPECT_EQ(item.partial_slot, -1);
  }
  // A short sequence beside a long one stays whole while the long one is split.
  const DecodeWorkPlanInput in = Input({32768, 40}, 8);
  const DecodeWorkPlan plan = Plan(in);
  ExpectInvariants(in, plan);
  for (const DecodeWorkItem& item : plan.items)
    if (item.seq == 1) {
      EXPECT_EQ(item.partial_slot, -1);
    }
  EXPECT_EQ(plan.merges.size(), 8u);
}

TEST(DecodeWorkPlan, WindowedLayersPlanLikeSequencesOfTheWindowsLength) {
  // A sliding-window layer passes min(context + 1, window): a 4096-window layer over 100k-token
  // contexts plans exactly as 4096-key sequences, with no empty item past the window.
  constexpr int kWindow = 4096;
  for (int batch : {1, 4, 9, 16, 33}) {
    std::vector<int> windowed, plain(batch, kWindow);
    for (int s = 0; s < batch; ++s) windowed.push_back(std::min(100000 + 37 * s + 1, kWindow));
    const DecodeWorkPlanInput a = Input(windowed), b = Input(plain);
    const DecodeWorkPlan pa = Plan(a), pb = Plan(b);
    ExpectInvariants(a, pa);
    EXPECT_EQ(pa.chunk, pb.chunk);
    ASSERT_EQ(pa.items.size(), pb.items.size());
    for (const DecodeWorkItem& item : pa.items) EXPECT_LE(item.kv_end, kWindow);
  }
}

TEST(DecodeWorkPlan, EmptySequencesGetNoItemAndAreListed) {
  const DecodeWorkPlanInput in = Input({0, 300, 0, 5000}, 4);
  const DecodeWorkPlan plan = Plan(in);
  ExpectInvariants(in, plan);
  EXPECT_EQ(plan.empty_seqs, (std::vector<int>{0, 2}));
  const DecodeWorkPlan none = Plan(Input({0, 0, 0}));
  EXPECT_TRUE(none.items.empty());
  EXPECT_EQ(none.empty_seqs, (std::vector<int>{0, 1, 2}));
  EXPECT_TRUE(Plan(Input({})).items.empty());
}

TEST(DecodeWorkPlan, APartialsBufferTooSmallGrowsTheChunk) {
  for (int64_t slots : {0, 1, 7, 8, 20, 100, 1000}) {
    DecodeWorkPlanInput in = Input({32768, 32768, 1000}, 8);
    in.max_partial_slots = slots;
    const DecodeWorkPlan plan = Plan(in);
    ExpectInvariants(in, plan);
    EXPECT_LE(plan.partial_slots_used, slots);
    if (slots < 16) {  // splitting any sequence's 8 heads takes at least 16 slots
      EXPECT_TRUE(plan.merges.empty()) << slots;
    }
  }
}

TEST(DecodeWorkPlan, SeededRandomBatches) {
  std::mt19937 rng(20240611);
  for (int round = 0; round < 400; ++round) {
    const int batch = std::uniform_int_distribution<int>(0, 96)(rng);
    const int kind = round % 3;  // short-only, long-only, mixed with empty sequences
    std::vector<int> lens;
    for (int s = 0; s < batch; ++s) {
      int len = 0;
      if (kind == 0) len = std::uniform_int_distribution<int>(1, 200)(rng);
      if (kind == 1) len = std::uniform_int_distribution<int>(2000, 70000)(rng);
      if (kind == 2) len = std::uniform_int_distribution<int>(0, 4)(rng) == 0 ? 0 : std::uniform_int_distribution<int>(1, 20000)(rng);
      lens.push_back(len);
    }
    DecodeWorkPlanInput in = Input(lens, std::uniform_int_distribution<int>(1, 16)(rng),
                                   std::uniform_int_distribution<int>(1, 160)(rng),
                                   std::uniform_int_distribution<int>(1, 8)(rng));
    in.min_chunk = kDecodeChunkGranule * std::uniform_int_distribution<int>(1, 8)(rng);
    in.max_partial_slots = round % 5 == 0 ? std::uniform_int_distribution<int>(0, 300)(rng) : 1 << 20;
    SCOPED_TRACE(::testing::Message() << "round " << round << " batch " << batch << " heads " << in.num_kv_heads
                                      << " sms " << in.num_sms << " blocks/SM " << in.blocks_per_sm);
    const DecodeWorkPlan plan = Plan(in);
    ExpectInvariants(in, plan);
    const int64_t target = static_cast<int64_t>(in.num_sms) * in.blocks_per_sm;
    if (in.max_partial_slots == (1 << 20) && TotalWork(in) >= 2 * in.min_chunk * target) {
      EXPECT_GE(static_cast<int64_t>(plan.items.size()), target / 2);
    }
  }
}

TEST(DecodeWorkPlan, RejectsInputsNoCallerShouldPass) {
  DecodeWorkPlanInput in = Input({100});
  in.num_kv_heads = 0;
  EXPECT_EQ(PlanDecodeWork(in).status().code(), absl::StatusCode::kInvalidArgument);
  in = Input({100});
  in.num_sms = 0;
  EXPECT_EQ(PlanDecodeWork(in).status().code(), absl::StatusCode::kInvalidArgument);
  in = Input({100});
  in.blocks_per_sm = 0;
  EXPECT_EQ(PlanDecodeWork(in).status().code(), absl::StatusCode::kInvalidArgument);
  in = Input({100});
  in.group_size = 0;
  EXPECT_EQ(PlanDecodeWork(in).status().code(), absl::StatusCode::kInvalidArgument);
  for (int min_chunk : {0, 8, 65, -16}) {
    in = Input({100});
    in.min_chunk = min_chunk;
    EXPECT_EQ(PlanDecodeWork(in).status().code(), absl::StatusCode::kInvalidArgument) << min_chunk;
  }
  in = Input({100, -1});
  EXPECT_EQ(PlanDecodeWork(in).status().code(), absl::StatusCode::kInvalidArgument);
  in = Input({100});
  in.max_partial_slots = -1;
  EXPECT_EQ(PlanDecodeWork(in).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace strata
