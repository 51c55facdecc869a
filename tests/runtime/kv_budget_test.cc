// The KV budget policy (runtime/kv_budget.h) against recomputes from the model's shape:
//   * ContextKvBudget holds max_seqs full contexts of the fullest stage, per rank: 2 (K and V) x
//     layers x KV heads x head_dim x element bytes x max_position_embeddings x max_seqs, divided
//     by the tensor-parallel degree, of the larger pipeline stage;
//   * the CPU default is that, capped at half of the host's free memory;
//   * --gpu-memory-fraction outside (0, 1] and a fraction that leaves nothing are refused by name.
#include "runtime/kv_budget.h"

#include <gtest/gtest.h>

#include "runtime/model/config.h"
#include "tests/test_models.h"

namespace strata::testing {
namespace {

constexpr int kLayers = 4, kKvHeads = 2, kHeadDim = 16, kMaxPosition = 512;

ModelSpec Spec(int max_position = kMaxPosition) {
  MakeModelOptions m;
  m.family = "llama";
  m.layers = kLayers;
  m.hidden = 64;
  m.heads = 4;
  m.kv_heads = kKvHeads;
  m.max_position = max_position;
  auto spec = LoadModelConfig(MakeModel("kv-budget-" + std::to_string(max_position), m, "float32"));
  EXPECT_TRUE(spec.ok()) << spec.status();
  return *spec;
}

PlannerOptions Planning(const EngineOptions& o) {
  PlannerOptions po;
  po.kv_dtype = DType::kF32;
  po.block_size = o.block_size;
  po.max_seqs = o.max_seqs;
  po.max_batched_tokens = o.max_batched_tokens;
  po.weight_formats.matrices = WeightFormat::Plain(DType::kF32);
  return po;
}

TEST(KvBudget, ContextBudgetHoldsMaxSeqsFullContextsOfTheFullestStage) {
  const ModelSpec spec = Spec();
  for (const auto& [tp, pp] : {std::pair{1, 1}, {2, 1}, {1, 2}, {2, 2}}) {
    EngineOptions o;
    o.max_seqs = 3;
    o.tp = tp;
    o.pp = pp;
    auto got = ContextKvBudget(spec, o, Planning(o));
    ASSERT_TRUE(got.ok()) << got.status();
    const int64_t per_token_per_layer = 2 * int64_t{kKvHeads} * kHeadDim * 4 / tp;
    const int64_t layers_on_fullest = (kLayers + pp - 1) / pp;
    EXPECT_EQ(*got, per_token_per_layer * layers_on_fullest * kMaxPosition * o.max_seqs) << "tp " << tp << " pp " << pp;
  }
}

TEST(KvBudget, TheCpuDefaultIsCappedAtHalfOfMemory) {
  const ModelSpec spec = Spec();
  auto backend = CreateBackend({});
  ASSERT_TRUE(backend.ok()) << backend.status();
  size_t free_bytes = 0, total = 0;
  (*backend)->MemoryInfo(&free_bytes, &total);
  EngineOptions o;
  o.max_seqs = 2;
  std::string source;
  auto small = DefaultKvBudget(spec, o, Planning(o), nullptr, backend->get(), &source);
  ASSERT_TRUE(small.ok()) << small.status();
  EXPECT_EQ(*small, *ContextKvBudget(spec, o, Planning(o)));  // far below half of memory: uncapped
  EXPECT_NE(source.find("2 sequences x 512 tokens"), std::string::npos) << source;
  // 64 contexts of 2^22 tokens (1 KiB each): 256 GiB wanted, capped.
  const ModelSpec long_context = Spec(1 << 22);
  o.max_seqs = 64;
  auto capped = DefaultKvBudget(long_context, o, Planning(o), nullptr, backend->get(), &source);
  ASSERT_TRUE(capped.ok()) << capped.status();
  EXPECT_LE(*capped, static_cast<int64_t>(free_bytes / 2));
  EXPECT_GT(*capped, 0);
  EXPECT_NE(source.find("capped at half of memory"), std::string::npos) << source;
}

TEST(KvBudget, ADeviceFractionOutsideItsRangeOrLeavingNothingIsRefused) {
  const ModelSpec spec = Spec();
  auto backend = CreateBackend({});
  ASSERT_TRUE(backend.ok()) << backend.status();
  EngineOptions o;
  o.gpu_memory_fraction = 1.5;
  auto bad = KvBudgetFromDevice(spec, o, Planning(o), nullptr, backend->get());
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("--gpu-memory-fraction 1.5"), std::string::npos) << bad.status();
  o.gpu_memory_fraction = 1e-12;
  auto nothing = KvBudgetFromDevice(spec, o, Planning(o), nullptr, backend->get());
  ASSERT_FALSE(nothing.ok());
  EXPECT_NE(nothing.status().message().find("leaves no KV cache"), std::string::npos) << nothing.status();
  o.gpu_memory_fraction = 0.5;
  auto half = KvBudgetFromDevice(spec, o, Planning(o), nullptr, backend->get());
  ASSERT_TRUE(half.ok()) << half.status();
  size_t free_bytes = 0, total = 0;
  (*backend)->MemoryInfo(&free_bytes, &total);
  EXPECT_LT(*half, static_cast<int64_t>(free_bytes / 2));
}

}  // namespace
}  // namespace strata::testing
