// The split-KV decode planner (decode_work_plan.h states the rule and its invariants).
#include "kernels/cuda/decode_work_plan.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "runtime/base/status.h"

namespace strata {
namespace {

// More waves than this gains little in the slot model and multiplies the partials to merge.
constexpr int64_t kMaxWaves = 4;

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

absl::Status Validate(const DecodeWorkPlanInput& in) {
  if (in.num_kv_heads < 1 || in.group_size < 1 || in.num_sms < 1 || in.blocks_per_sm < 1)
    return absl::InvalidArgumentError(absl::StrCat("decode work plan: num_kv_heads ", in.num_kv_heads, ", group_size ",
                                                   in.group_size, ", num_sms ", in.num_sms, ", blocks_per_sm ",
                                                   in.blocks_per_sm, " must all be at least 1"));
  if (in.min_chunk < kDecodeChunkGranule || in.min_chunk % kDecodeChunkGranule != 0)
    return absl::InvalidArgumentError(absl::StrCat("decode work plan: min_chunk ", in.min_chunk,
                                                   " must be a positive multiple of ", kDecodeChunkGranule));
  if (in.max_partial_slots < 0)
    return absl::InvalidArgumentError(absl::StrCat("decode work plan: max_partial_slots ", in.max_partial_slots,
                                                   " is negative"));
  for (size_t s = 0; s < in.kv_len.size(); ++s)
    if (in.kv_len[s] < 0)
      return absl::InvalidArgumentError(absl::StrCat("decode work plan: sequence ", s, " has kv_len ", in.kv_len[s]));
  return absl::OkStatus();
}

int64_t RoundUpToGranule(int64_t n) { return CeilDiv(n, kDecodeChunkGranule) * kDecodeChunkGranule; }

// Work items a chunk size gives: one per chunk of every (seq, kv_head) with keys.
int64_t ItemsFor(const DecodeWorkPlanInput& in, int64_t chunk) {
  int64_t items = 0;
  for (int len : in.kv_len) items += CeilDiv(len, chunk) * in.num_kv_heads;
  return items;
}

// Partial slots a chunk size needs: every item of a split (seq, kv_head) takes one.
int64_t SlotsFor(const DecodeWorkPlanInput& in, int64_t chunk) {
  int64_t slots = 0;
  for (int len : in.kv_len)
    if (len > chunk) slots += CeilDiv(len, chunk) * in.num_kv_heads;
  return slots;
}

}  // namespace

int64_t MaxDecodeWorkItems(int num_seqs, int num_kv_heads, int num_sms, int blocks_per_sm) {
  return std::max(kMaxWaves * num_sms * blocks_per_sm, static_cast<int64_t>(num_seqs) * num_kv_heads);
}

absl::StatusOr<DecodeWorkPlan> PlanDecodeWork(const DecodeWorkPlanInput& in) {
  RETURN_IF_ERROR(Validate(in));

  int longest = 0;
  for (int len : in.kv_len) longest = std::max(longest, len);
  const int64_t target = static_cast<int64_t>(in.num_sms) * in.blocks_per_sm;
  const int64_t no_split = std::max<int64_t>(in.min_chunk, RoundUpToGranule(longest));
  // The smallest chunk (a multiple of the granule in [min_chunk, no_split]) meeting a condition
  // that only gets easier as the chunk grows (item and slot counts only fall); no_split meets
  // every condition used here except an item count it cannot reach, which then yields no_split.
  auto smallest_chunk = [&](auto&& ok) {
    int64_t lo = in.min_chunk / kDecodeChunkGranule, hi = no_split / kDecodeChunkGranule;
    while (lo < hi) {
      const int64_t mid = lo + (hi - lo) / 2;
      if (ok(mid * kDecodeChunkGranule)) {
        hi = mid;
      } else {
        lo = mid + 1;
      }
    }
    return lo * kDecodeChunkGranule;
  };
  const int64_t slot_floor = smallest_chunk([&](int64_t c) { return SlotsFor(in, c) <= in.max_partial_slots; });
  // Step time in the slot model: ceil(items / target) waves of up to `chunk` keys. One wave
  // (the smallest chunk whose items fit the grid, FlashInfer's choice; at least the work's
  // ceil(total / target)) can leave most slots idle just past a threshold - 34 sequences of 4096
  // keys x 8 heads on 528 slots fit only as 272 whole items - so 2..kMaxWaves waves of shorter
  // chunks compete, and the cheapest wins (ties: the longer chunk, fewer partials to merge).
  int64_t chunk = std::max(no_split, slot_floor), best_cost = CeilDiv(ItemsFor(in, chunk), target) * chunk;
  for (int64_t waves = 1; waves <= kMaxWaves; ++waves) {
    const int64_t candidate =
        std::max(slot_floor, smallest_chunk([&](int64_t c) { return ItemsFor(in, c) <= waves * target; }));
    const int64_t cost = CeilDiv(ItemsFor(in, candidate), target) * candidate;
    if (cost < best_cost || (cost == best_cost && candidate > chunk)) {
      chunk = candidate;
      best_cost = cost;
    }
  }

  DecodeWorkPlan plan;
  plan.chunk = static_cast<int>(chunk);
  int slot = 0;
  for (int s = 0; s < static_cast<int>(in.kv_len.size()); ++s) {
    const int len = in.kv_len[s];
    if (len == 0) {
      plan.empty_seqs.push_back(s);
      continue;
    }
    for (int h = 0; h < in.num_kv_heads; ++h) {
      if (len <= chunk) {
        plan.items.push_back({.seq = s, .kv_head = h, .kv_begin = 0, .kv_end = len, .partial_slot = -1});
        continue;
      }
      const int pieces = static_cast<int>(CeilDiv(len, chunk));
      plan.merges.push_back({.seq = s, .kv_head = h, .first_slot = slot, .num_slots = pieces});
      for (int p = 0; p < pieces; ++p) {
        const int begin = static_cast<int>(p * chunk);
        const int end = static_cast<int>(std::min<int64_t>(len, begin + chunk));
        plan.items.push_back({.seq = s, .kv_head = h, .kv_begin = begin, .kv_end = end, .partial_slot = slot++});
      }
    }
  }
  plan.partial_slots_used = slot;
  return plan;
}

}  // namespace strata
