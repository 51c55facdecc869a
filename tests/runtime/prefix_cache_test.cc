// Prefix caching on one rank, for every sharing scheme: a sequence of requests that hit, hit in
// part, miss, share a prompt (n samples), evict and preempt gives the same tokens (and logprobs
// within 1e-4) with the cache on as with it off; where the model refuses caching (LCKV, sliding
// windows) the engine says so and runs without. n = 4 samples of one prompt each equal the same
// request alone with that sample's seed, and the prompt's full blocks are prefilled once.
#include <gtest/gtest.h>

#include "runtime/engine.h"
#include "tests/test_models.h"

namespace strata::testing {
namespace {

GenerationRequest Req(std::vector<int> prompt, int max_tokens, uint64_t seed = 0) {
  GenerationRequest r;
  r.prompt = std::move(prompt);
  r.max_tokens = max_tokens;
  r.ignore_eos = true;
  if (seed) {
    r.sampling.temperature = 0.9f;
    r.sampling.top_p = 0.95f;
    r.sampling.seed = seed;
  }
  return r;
}

std::vector<int> Tokens(int len, int salt) {
  std::vector<int> t;
  for (int i = 0; i < len; ++i) t.push_back((i * 37 + salt * 11 + 3) % 280 + 1);
  return t;
}

// Rounds of requests, each round one Generate call (a batch) on the same engine.
std::vector<std::vector<GenerationRequest>> Rounds() {
  const std::vector<int> p = Tokens(14, 1);
  std::vector<int> partial(p.begin(), p.begin() + 9);
  partial.insert(partial.end(), {250, 251, 252});
  std::vector<std::vector<GenerationRequest>> rounds = {
      {Req(p, 5)},                                          // miss, then published
      {Req(p, 5)},                                          // full hit (3 of its 4 blocks)
      {Req(partial, 4, 7)},                                 // partial hit, sampled
      {Req(Tokens(10, 2), 4)},                              // miss
      {Req(p, 4, 1), Req(p, 4, 2), Req(p, 4, 3), Req(Tokens(6, 3), 3)},  // n = 3 of one prompt, and another
  };
  std::vector<GenerationRequest> crowd;  // more than a small cache holds: eviction and preemption
  for (int k = 0; k < 5; ++k) crowd.push_back(Req(Tokens(13 + k, 10 + k), 6, k % 2 ? 20 + k : 0));
  rounds.push_back(crowd);
  rounds.push_back({Req(p, 5)});  // again, after the crowd evicted it
  return rounds;
}

struct RoundsRun {
  std::vector<GenerationResult> results;
  int64_t hits = 0, queries = 0, preemptions = 0;
  bool caching = false;
};

RoundsRun RunRounds(const std::string& dir, bool caching, int64_t kv_memory) {
  EngineOptions eo;
  eo.kv_dtype = "float32";
  eo.block_size = 4;
  eo.max_seqs = 4;
  eo.kv_memory_bytes = kv_memory;
  eo.enable_prefix_caching = caching;
  auto engine = Engine::Create(dir, eo);
  EXPECT_TRUE(engine.ok()) << engine.status();
  RoundsRun run;
  if (!engine.ok()) return run;
  for (const auto& round : Rounds()) {
    auto got = (*engine)->Generate(round);
    EXPECT_TRUE(got.ok()) << got.status();
    if (!got.ok()) return run;
    run.results.insert(run.results.end(), got->begin(), got->end());
  }
  run.hits = (*engine)->scheduler().prefix_cache().hits;
  run.queries = (*engine)->scheduler().prefix_cache().queries;
  run.preemptions = (*engine)->scheduler().num_preemptions();
  run.caching = (*engine)->prefix_caching();
  return run;
}

// KV bytes of `blocks` blocks of this model (measured on an engine, so every bank kind counts).
int64_t BytesForBlocks(const std::string& dir, int64_t blocks) {
  EngineOptions eo;
  eo.kv_dtype = "float32";
  eo.block_size = 4;
  eo.max_seqs = 4;
  eo.kv_memory_bytes = 1 << 20;
  auto e = Engine::Create(dir, eo);
  EXPECT_TRUE(e.ok()) << e.status();
  if (!e.ok()) return 0;
  const int64_t per_block = (int64_t{1} << 20) / (*e)->kv_capacity().num_blocks;
  return per_block * blocks + per_block / 2;
}

TEST(PrefixCache, SameOutputsOnAndOffForEveryScheme) {
  for (const auto& s : AllSchemes()) {
    const std::string dir = MakeModel("prefix-" + s.name, s.options);
    auto spec_engine = Engine::Create(dir, EngineOptions{});
    ASSERT_TRUE(spec_engine.ok());
    const bool eligible = PrefixCachingRefusal((*spec_engine)->spec()).empty();
    // A roomy cache (hits) and one of 14 blocks (the crowd evicts and preempts); a model that
    // refuses caching runs without it either way, so once is enough.
    std::vector<int64_t> memories = {int64_t{64} << 20};
    if (eligible) memories.push_back(BytesForBlocks(dir, 14));
    for (int64_t memory : memories) {
      const RoundsRun off = RunRounds(dir, false, memory);
      const RoundsRun on = RunRounds(dir, true, memory);
      ASSERT_EQ(on.results.size(), off.results.size()) << s.name;
      EXPECT_EQ(on.caching, eligible) << s.name;
      EXPECT_EQ(off.hits, 0);
      if (eligible) {
        EXPECT_GT(on.hits, 0) << s.name;
      } else {
        EXPECT_EQ(on.hits, 0) << s.name;
      }
      for (size_t i = 0; i < off.results.size(); ++i) {
        EXPECT_EQ(on.results[i].tokens, off.results[i].tokens) << s.name << " result " << i << " memory " << memory;
        ASSERT_EQ(on.results[i].logprobs.size(), off.results[i].logprobs.size());
        for (size_t k = 0; k < off.results[i].logprobs.size(); ++k)
          EXPECT_NEAR(on.results[i].logprobs[k], off.results[i].logprobs[k], 1e-4) << s.name << " result " << i;
      }
      if (memory < (int64_t{64} << 20)) {
        EXPECT_GT(off.preemptions, 0) << s.name << ": the small cache never preempted";
      }
    }
  }
}

TEST(PrefixCache, FourSamplesShareOnePrefill) {
  const SchemeCase mlkv = AllSchemes()[5];
  const std::string dir = MakeModel("prefix-n4-" + mlkv.name, mlkv.options);
  EngineOptions eo;
  eo.kv_dtype = "float32";
  eo.block_size = 4;
  auto engine = Engine::Create(dir, eo);
  ASSERT_TRUE(engine.ok()) << engine.status();
  ASSERT_TRUE((*engine)->prefix_caching()) << mlkv.name;
  const std::vector<int> prompt = Tokens(18, 5);
  std::vector<GenerationRequest> samples;
  for (uint64_t seed = 1; seed <= 4; ++seed) samples.push_back(Req(prompt, 6, seed));
  auto together = (*engine)->Generate(samples);
  ASSERT_TRUE(together.ok());
  const int64_t prefill = (*engine)->stats().prefill_tokens;
  const int64_t hits = (*engine)->scheduler().prefix_cache().hits;
  // The first sample prefills all 18 tokens; each sibling shares its 4 full blocks, copies the
  // partly filled fifth (token 17 of 18) and computes only the last token, for its own logits.
  EXPECT_EQ(hits, 3 * 17);
  EXPECT_EQ(prefill, 18 + 3 * 1);
  for (size_t i = 0; i < samples.size(); ++i) {
    EngineOptions alone_options = eo;
    alone_options.enable_prefix_caching = false;
    auto alone_engine = Engine::Create(dir, alone_options);
    ASSERT_TRUE(alone_engine.ok());
    auto alone = (*alone_engine)->Generate({samples[i]});
    ASSERT_TRUE(alone.ok());
    EXPECT_EQ((*together)[i].tokens, (*alone)[0].tokens) << "sample " << i;
    for (size_t k = 0; k < (*alone)[0].logprobs.size(); ++k)
      EXPECT_NEAR((*together)[i].logprobs[k], (*alone)[0].logprobs[k], 1e-4) << "sample " << i;
  }
}

}  // namespace
}  // namespace strata::testing
