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
