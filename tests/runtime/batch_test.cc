// A batch of sequences of different lengths gives the same results as each sequence alone, also
// when the cache is too small for all of them at once (later ones wait for blocks to free up).
#include <gtest/gtest.h>

#include "runtime/engine.h"
#include "tests/test_models.h"

namespace strata::testing {
namespace {

void ExpectBatchEqualsAlone(const SchemeCase& s, int64_t kv_memory, int max_batched_tokens = 2048) {
  const std::string dir = MakeModel("batch-" + s.name, s.options);
  EngineOptions eo;
  eo.kv_dtype = "float32";
  eo.block_size = 4;
  eo.kv_memory_bytes = kv_memory;
  eo.max_seqs = 4;
  eo.max_batched_tokens = max_batched_tokens;
  auto engine = Engine::Create(dir, eo);
  ASSERT_TRUE(engine.ok()) << engine.status();
  // "Alone" runs on an engine with the default token budget (whole prompts in one step).
  EngineOptions ref_options = eo;
  ref_options.max_batched_tokens = EngineOptions().max_batched_tokens;
  auto ref = Engine::Create(dir, ref_options);
  ASSERT_TRUE(ref.ok()) << ref.status();
  std::vector<GenerationRequest> reqs;
  for (int len : {1, 3, 12, 7, 20, 2}) {
    GenerationRequest r;
    for (int i = 0; i < len; ++i) r.prompt.push_back((i * 53 + len) % 290);
    r.max_tokens = 5 + len % 4;
    r.ignore_eos = true;
    if (len % 2) {  // some sampled requests: the per-request seed makes them batch-independent
      r.sampling.temperature = 0.8f;
      r.sampling.top_p = 0.9f;
      r.sampling.seed = 100 + len;
    }
    reqs.push_back(r);
  }
  auto batch = (*engine)->Generate(reqs);
  ASSERT_TRUE(batch.ok()) << batch.status();
  for (size_t i = 0; i < reqs.size(); ++i) {
    auto alone = (*ref)->Generate({reqs[i]});
    ASSERT_TRUE(alone.ok());
    EXPECT_EQ((*batch)[i].tokens, (*alone)[0].tokens) << s.name << " request " << i;
    ASSERT_EQ((*batch)[i].logprobs.size(), (*alone)[0].logprobs.size());
    for (size_t k = 0; k < (*alone)[0].logprobs.size(); ++k)
      EXPECT_NEAR((*batch)[i].logprobs[k], (*alone)[0].logprobs[k], 1e-4) << s.name << " request " << i;
  }
}

TEST(Batch, SameAsAloneForEveryScheme) {
  for (const auto& s : AllSchemes()) ExpectBatchEqualsAlone(s, 64 << 20);
}

TEST(Batch, SameAsAloneWhenTheCacheHoldsOnlyPartOfTheBatch) {
  // MHA: 4 layers x 2 x 4 heads x 16 dims x 4 bytes = 2 KiB per token; 48 tokens of cache, so
  // requests run in waves.
  const SchemeCase mha = AllSchemes()[0];
  ExpectBatchEqualsAlone(mha, 48 * 2048);
}

TEST(Batch, ChunkedPrefillGivesTheSameResults) {
  // A 5-token step budget: prompts of 7, 12 and 20 tokens are prefilled in chunks (not for LCKV
  // prompts, which go whole), and the results equal each request run alone with the default
  // budget (one chunk).
  for (const auto& s : AllSchemes()) {
    if (s.name != "MHA" && s.name != "MlkvUneven" && s.name != "YocoSlidingWindow" && s.name != "LckvW2") continue;
    ExpectBatchEqualsAlone(s, 64 << 20, /*max_batched_tokens=*/5);
  }
}

}  // namespace
}  // namespace strata::testing

namespace strata::testing {
namespace {

// --gpu-memory-fraction sizes the KV cache from the backend's free memory (host memory for the
// CPU backend), shared among the ranks on it: weights plus KV stay within the fraction, a larger
// fraction holds more, two ranks sharing the memory get less each, and a fraction too small for
// the weights and activations is a clear error.
TEST(MemoryFraction, KvCacheFillsTheFractionLeftByWeights) {
  MakeModelOptions o;
  o.layers = 4;
  o.hidden = 64;
  o.heads = 4;
  o.vocab = 300;
  const std::string dir = MakeModel("memory-fraction", o);
  auto backend = std::move(CreateBackend({})).value();
  size_t free_bytes = 0, total = 0;
  backend->MemoryInfo(&free_bytes, &total);
  ASSERT_GT(total, size_t{4} << 30) << "the test assumes a few GiB of memory";
  int64_t previous = 0;
  for (double fraction : {0.03, 0.06}) {
    EngineOptions eo;
    eo.gpu_memory_fraction = fraction;
    eo.backend.threads = 1;
    auto e = Engine::Create(dir, eo);
    ASSERT_TRUE(e.ok()) << e.status();
    const int64_t kv = (*e)->kv_capacity().num_blocks * (*e)->kv_layout().bytes_per_block();
    EXPECT_GT(kv, 0);
    EXPECT_LE(kv + (*e)->weight_bytes(), static_cast<int64_t>(fraction * static_cast<double>(total)));
    EXPECT_GT(kv, previous);
    previous = kv;
  }
  // Ranks sharing the memory split it (the CPU backend: every rank on the host).
  EngineOptions shared;
  shared.gpu_memory_fraction = 0.06;
  shared.backend.threads = 1;
  shared.backend.ranks_on_host = 2;
  auto half = Engine::Create(dir, shared);
  ASSERT_TRUE(half.ok()) << half.status();
  const int64_t kv_half = (*half)->kv_capacity().num_blocks * (*half)->kv_layout().bytes_per_block();
  EXPECT_GT(kv_half, 0);
  EXPECT_LE(kv_half + (*half)->weight_bytes(), static_cast<int64_t>(0.06 * static_cast<double>(total)) / 2);
  EXPECT_LT(kv_half, previous);
  EngineOptions tiny;
  tiny.gpu_memory_fraction = 1e-5;
  auto e = Engine::Create(dir, tiny);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(std::string(e.status().message()).find("--gpu-memory-fraction"), std::string::npos) << e.status();
  tiny.gpu_memory_fraction = 1.5;
  EXPECT_FALSE(Engine::Create(dir, tiny).ok());
}

}  // namespace
}  // namespace strata::testing
