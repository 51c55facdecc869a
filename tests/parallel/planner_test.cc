// The cache placement planner: properties over seeded random models, optimality against a
// brute-force search of every partition on small models, and golden plans for two realistic
// models (tests/parallel/golden/*.txt).
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>

#include "nlohmann/json.hpp"
#include "parallel/planner.h"
#include "runtime/model/config.h"
#include "runtime/model/tensor_roles.h"

namespace strata {
namespace {

using json = nlohmann::json;

// A random valid sharing map: random producers, every layer reading one of them, some windows.
ModelSpec RandomModel(std::mt19937_64& rng, int L) {
  std::vector<int> producers;
  for (int l = 0; l < L; ++l)
    if (l == 0 || rng() % 3 == 0) producers.push_back(l);
  std::string types;
  std::map<int, bool> window;
  for (int p : producers) window[p] = rng() % 5 == 0;
  window[producers[0]] = false;  // readers of full attention need a full producer
  std::vector<int> full;
  for (int p : producers)
    if (!window[p]) full.push_back(p);
  for (int l = 0; l < L; ++l) {
    int src = l;
    if (!window.count(l)) src = full[rng() % full.size()];
    types += (l ? "_" : "") + std::to_string(src) + (window.count(l) && window[l] ? "s" : "");
  }
  const int kv = std::vector<int>{1, 2, 4}[rng() % 3];
  json c = {{"model_type", "lckv-llama"}, {"hidden_size", 256}, {"num_attention_heads", 8},
            {"num_key_value_heads", kv}, {"num_hidden_layers", L}, {"intermediate_size", 512},
            {"vocab_size", 1000 + static_cast<int>(rng() % 5000)}, {"layer_types", types},
            {"sliding_window", 64}, {"torch_dtype", "bfloat16"}};
  auto spec = ParseModelConfig(c.dump(), "random");
  EXPECT_TRUE(spec.ok()) << spec.status() << " " << types;
  return *spec;
}

int64_t RowBytes(const ModelSpec& s, int p, int tp) {
  return 2ll * std::max(1, s.layers[p].num_kv_heads / tp) * s.head_dim * 2;
}

TEST(Planner, PropertiesOverRandomModels) {
  std::mt19937_64 rng(2026);
  for (int trial = 0; trial < 300; ++trial) {
    const int L = 2 + static_cast<int>(rng() % 23);
    const ModelSpec s = RandomModel(rng, L);
    const Topology topo{std::vector<int>{1, 2, 4}[rng() % 3], 1 + static_cast<int>(rng() % std::min(L, 6))};
    PlannerOptions o;
    o.kv_memory_bytes = 1 << 24;
    o.kv_dtype = DType::kBF16;
    o.max_seqs = 8;
    auto plan = PlanPipeline(s, topo, o);
    ASSERT_TRUE(plan.ok()) << plan.status();
    SCOPED_TRACE(LayerTypesString(s) + " tp " + std::to_string(topo.tp) + " pp " + std::to_string(topo.pp));
    // Every layer on exactly one stage; stages contiguous, non-empty, in order.
    ASSERT_EQ(plan->stages.size(), static_cast<size_t>(topo.pp));
    int next = 0;
    for (int st = 0; st < topo.pp; ++st) {
      EXPECT_EQ(plan->layout.stage_layers(st).first, next);
      EXPECT_GE(plan->layout.stage_layers(st).last, plan->layout.stage_layers(st).first);
      for (int l = plan->layout.stage_layers(st).first; l <= plan->layout.stage_layers(st).last; ++l)
        EXPECT_EQ(plan->layout.stage_of_layer(l), st);
      next = plan->layout.stage_layers(st).last + 1;
    }
    EXPECT_EQ(next, L);
    int64_t total_tok = 0, expected_tok = 0;
    std::set<std::pair<int, int>> expected_edges;
    for (int st = 0; st < topo.pp; ++st) {
      const StagePlan& sp = plan->stages[st];
      std::set<int> read;
      for (int l = plan->layout.stage_layers(st).first; l <= plan->layout.stage_layers(st).last; ++l) read.insert(s.layers[l].kv_source);
      std::set<int> homes(sp.homes.begin(), sp.homes.end()), mirrors(sp.mirrors.begin(), sp.mirrors.end());
      for (int p : read) {
        // Homes on producer stages; mirrors exactly where readers are.
        if (plan->layout.stage_of_layer(p) == st) {
          EXPECT_TRUE(homes.count(p));
        } else {
          EXPECT_TRUE(mirrors.count(p));
          expected_edges.insert({p, st});
        }
        if (s.layers[p].window == 0) expected_tok += RowBytes(s, p, topo.tp);
      }
      EXPECT_EQ(homes.size() + mirrors.size(), read.size());
      total_tok += sp.kv_bytes_per_token_per_rank;
      if (sp.kv_bytes_per_token_per_rank > 0) {
        const int64_t left = o.kv_memory_bytes - sp.kv_bytes_per_sequence_per_rank * o.max_seqs;
        EXPECT_EQ(sp.kv_capacity_tokens, left < 0 ? 0 : left / (sp.kv_bytes_per_token_per_rank * 16) * 16);
      }
    }
    // Memory totals equal the sum over groups of (home + mirrors) x row bytes.
    EXPECT_EQ(total_tok, expected_tok);
    std::set<std::pair<int, int>> edges;
    for (const TransferEdge& e : plan->edges) {
      edges.insert({e.producer_layer, e.to_stage});
      EXPECT_EQ(e.from_stage, plan->layout.stage_of_layer(e.producer_layer));
      EXPECT_EQ(e.upward, e.from_stage > e.to_stage);
      EXPECT_EQ(e.bytes_per_token_per_rank, RowBytes(s, e.producer_layer, topo.tp));
      EXPECT_EQ(e.bytes_per_token, e.bytes_per_token_per_rank * topo.tp);
    }
    EXPECT_EQ(edges, expected_edges);
    // Same input, same plan.
    auto again = PlanPipeline(s, topo, o);
    EXPECT_EQ(PlanToJson(s, *plan), PlanToJson(s, *again));
  }
}

// Brute force: every partition of L layers into P stages, scored by the planner's stated
// priorities, computed here from the stage plans a forced partition yields.
TEST(Planner, OptimalAgainstBruteForceOnSmallModels) {
  std::mt19937_64 rng(7);
  for (int trial = 0; trial < 60; ++trial) {
    const int L = 3 + static_cast<int>(rng() % 8);
    const ModelSpec s = RandomModel(rng, L);
    const Topology topo{1, 2 + static_cast<int>(rng() % std::min(3, L - 1))};
    PlannerOptions o;
    o.kv_memory_bytes = 1 << 22;
    o.max_seqs = 4;
    auto plan = PlanPipeline(s, topo, o);
    ASSERT_TRUE(plan.ok());
    double best_flops = 1e300;
    int64_t best_cap = -1;
    std::vector<int> cuts(topo.pp - 1);
    std::function<void(int, int)> rec = [&](int k, int from) {
      if (k == topo.pp - 1) {
        PlannerOptions f = o;
        int a = 0;
        for (int c : cuts) {
          f.forced_partition.push_back({a, c - 1});
          a = c;
        }
        f.forced_partition.push_back({a, L - 1});
        auto p = PlanPipeline(s, topo, f);
        ASSERT_TRUE(p.ok());
        double mx = 0;
        for (const auto& st : p->stages) mx = std::max(mx, st.gflops_per_token);
        if (p->kv_capacity_tokens > best_cap || (p->kv_capacity_tokens == best_cap && mx < best_flops)) {
          best_cap = p->kv_capacity_tokens;
          best_flops = mx;
        }
        return;
      }
      for (int c = from; c <= L - (topo.pp - 1 - k); ++c) {
        cuts[k] = c;
        rec(k + 1, c + 1);
      }
    };
    rec(0, 1);
    double mx = 0;
    for (const auto& st : plan->stages) mx = std::max(mx, st.gflops_per_token);
    EXPECT_EQ(plan->kv_capacity_tokens, best_cap) << LayerTypesString(s);
    EXPECT_NEAR(mx, best_flops, 1e-12) << LayerTypesString(s);
  }
}

TEST(Planner, RejectsBadTopologiesAndPartitions) {
  std::mt19937_64 rng(1);
  json c = {{"model_type", "llama"}, {"hidden_size", 256}, {"num_attention_heads", 8}, {"num_key_value_heads", 2},
            {"num_hidden_layers", 4}, {"intermediate_size", 512}, {"vocab_size", 100}};
  const ModelSpec s = *ParseModelConfig(c.dump(), "m");
  EXPECT_FALSE(PlanPipeline(s, {3, 1}, {}).ok());  // 3 does not divide 8 heads
  EXPECT_TRUE(PlanPipeline(s, {4, 1}, {}).ok());   // 2 KV heads replicated over 4 ranks
  EXPECT_FALSE(PlanPipeline(s, {1, 5}, {}).ok());  // more stages than layers
  PlannerOptions o;
  o.forced_partition = {{0, 1}, {3, 3}};
  EXPECT_FALSE(PlanPipeline(s, {1, 2}, o).ok());  // a gap
  o.forced_partition = {{0, 3}};
  EXPECT_FALSE(PlanPipeline(s, {1, 2}, o).ok());  // wrong count
  EXPECT_FALSE(ParsePartition("0-3,x").ok());
}

// Tensor parallelism keeps quantized matrices packed only where every column slice is whole
// blocks: with hidden 768 and MLP 1536, o_proj's input columns split into 768 / tp and
// down_proj's into 1536 / tp; tp 2 cuts 256-element K-quant super-blocks (384), tp 3 does not.
TEST(Planner, RefusesATpThatCutsQuantizedBlocks) {
  json c = {{"model_type", "llama"}, {"hidden_size", 768}, {"num_attention_heads", 12}, {"num_key_value_heads", 6},
            {"num_hidden_layers", 2}, {"intermediate_size", 1536}, {"vocab_size", 1000}};
  const ModelSpec s = *ParseModelConfig(c.dump(), "m");
  for (int block : {32, 256}) {
    PlannerOptions o;
    for (const TensorDecl& t : ExpectedTensors(s)) {
      if (!t.matrix() || t.layer < 0) continue;
      o.weight_formats.by_tensor[t.name] = WeightFormat::PackedU4();
      o.weight_formats.stored_block_elems[t.name] = block;
    }
    for (int tp : {1, 2, 3}) {
      const auto plan = PlanPipeline(s, {tp, 1}, o);
      // The naive rule: every split column range a multiple of the block.
      const bool whole = (768 / tp) % block == 0 && (1536 / tp) % block == 0;
      EXPECT_EQ(plan.ok(), whole) << block << " tp " << tp << ": " << plan.status();
      if (!whole) EXPECT_NE(std::string(plan.status().message()).find("o_proj"), std::string::npos) << plan.status();
    }
  }
}

std::string ReadGolden(const std::string& name) {
  std::ifstream in(std::string(STRATA_SOURCE_DIR) + "/tests/parallel/golden/" + name);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Golden plans: regenerate with `strata plan` (commands in tests/parallel/golden/README.md) when the
// planner's policy changes on purpose.
TEST(Planner, GoldenPythia160MMlkv6OnFourStages) {
  json c = {{"model_type", "gpt_neox"}, {"hidden_size", 768}, {"num_attention_heads", 12}, {"num_hidden_layers", 12},
            {"intermediate_size", 3809}, {"vocab_size", 50304}, {"num_key_value_layers", 6},
            {"num_key_value_heads", 1}, {"torch_dtype", "float16"}};
  const ModelSpec s = *ParseModelConfig(c.dump(), "pythia-160m-mlkv-6");
  PlannerOptions o;
  o.kv_memory_bytes = int64_t{1} << 30;
  auto plan = PlanPipeline(s, {1, 4}, o);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(PlanToText(s, *plan) + "\n", ReadGolden("pythia160m_mlkv6_pp4.txt"));
}

TEST(Planner, GoldenLckv22LayersOnTwoStages) {
  std::string types = "0";
  for (int l = 1; l <= 20; ++l) types += "_20";
  types += "_21";
  json c = {{"model_type", "lckv-llama"}, {"hidden_size", 2048}, {"num_attention_heads", 32},
            {"num_key_value_heads", 4}, {"num_hidden_layers", 22}, {"intermediate_size", 5632},
            {"vocab_size", 32000}, {"layer_types", types}, {"torch_dtype", "bfloat16"}};
  const ModelSpec s = *ParseModelConfig(c.dump(), "tinyllama-lckv-w2");
  PlannerOptions o;
  o.kv_memory_bytes = int64_t{1} << 30;
  o.kv_dtype = DType::kBF16;
  o.weight_formats.matrices = WeightFormat::Plain(DType::kBF16);
  auto plan = PlanPipeline(s, {1, 2}, o);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(PlanToText(s, *plan) + "\n", ReadGolden("lckv22_w2_pp2.txt"));
}

}  // namespace
}  // namespace strata
