// Configs as checkpoints publish them. rope_scaling against Hugging Face's formulas (transformers' modeling_rope_utils, transcribed
// into a Python script the test runs with numpy): linear, llama3 (Llama 3.1's parameters) and
// yarn (Qwen 2.5's), from config.json through the config reader; unsupported kinds are refused
// by name (dynamic NTK scaling with the reason). generation_config.json: its end-of-sequence ids
// join config.json's, its sampling defaults are read, and a bad value is an error naming the file
// and field. Fields that change the math and are not implemented are refused by name; fields that
// do not change inference are accepted.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>

#include "nlohmann/json.hpp"
#include "runtime/model/config.h"
#include "tests/shell.h"
#include "tests/test_models.h"

namespace strata::testing {
namespace {

using json = nlohmann::json;

constexpr char kHfFormulas[] = R"PY(
import json, math, sys
import numpy as np
cfg = json.load(open(sys.argv[1]))
base, dim = cfg["rope_theta"], cfg["head_dim"]
r = cfg.get("rope_scaling") or {}
kind = r.get("rope_type", r.get("type", "default"))
inv = 1.0 / (base ** (np.arange(0, dim, 2, dtype=np.int64).astype(np.float64) / dim))
attention = 1.0
if kind == "linear":
    inv = inv / r["factor"]
elif kind == "llama3":
    factor, low, high, old = r["factor"], r["low_freq_factor"], r["high_freq_factor"], r["original_max_position_embeddings"]
    low_wavelen, high_wavelen = old / low, old / high
    wavelen = 2 * math.pi / inv
    out = np.where(wavelen > low_wavelen, inv / factor, inv)
    smooth = (old / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * out / factor + smooth * out
    medium = ~(wavelen < high_wavelen) * ~(wavelen > low_wavelen)
    inv = np.where(medium, smoothed, out)
elif kind == "yarn":
    factor, old = r["factor"], r["original_max_position_embeddings"]
    beta_fast, beta_slow = r.get("beta_fast", 32), r.get("beta_slow", 1)
    attention = r.get("attention_factor") or (0.1 * math.log(factor) + 1.0 if factor > 1 else 1.0)
    def corr(n): return (dim * math.log(old / (n * 2 * math.pi))) / (2 * math.log(base))
    low, high = max(math.floor(corr(beta_fast)), 0), min(math.ceil(corr(beta_slow)), dim - 1)
    if low == high: high += 0.001
    ramp = np.clip((np.arange(dim // 2, dtype=np.float64) - low) / (high - low), 0, 1)
    extrapolation = 1 - ramp
    pos = base ** (np.arange(0, dim, 2).astype(np.float64) / dim)
    inv = (1.0 / (factor * pos)) * (1 - extrapolation) + (1.0 / pos) * extrapolation
elif kind == "dynamic":
    # transformers' _compute_dynamic_ntk_parameters at the longest sequence Strata admits.
    max_pos = cfg["max_position_embeddings"]
    seq_len = max(cfg["max_position_embeddings"], max_pos)
    base = base * ((r["factor"] * seq_len / max_pos) - (r["factor"] - 1)) ** (dim / (dim - 2))
    inv = 1.0 / (base ** (np.arange(0, dim, 2, dtype=np.int64).astype(np.float64) / dim))
print(json.dumps({"inv_freq": [float(x) for x in inv], "attention_factor": attention}))
)PY";

ModelSpec SpecWith(const std::string& dir, const json& rope_scaling, double theta, int heads, int hidden) {
  json cfg = {{"model_type", "llama"}, {"architectures", {"LlamaForCausalLM"}}, {"hidden_size", hidden},
              {"intermediate_size", 64}, {"num_hidden_layers", 1}, {"num_attention_heads", heads},
              {"num_key_value_heads", heads}, {"vocab_size", 64}, {"max_position_embeddings", 4096},
              {"rope_theta", theta}, {"rms_norm_eps", 1e-5}, {"torch_dtype", "float32"}};
  if (!rope_scaling.is_null()) cfg["rope_scaling"] = rope_scaling;
  std::ofstream(dir + "/config.json") << cfg.dump();
  auto spec = LoadModelConfig(dir);
  EXPECT_TRUE(spec.ok()) << spec.status();
  return spec.ok() ? *spec : ModelSpec{};
}

TEST(RopeScaling, MatchesHuggingFaceFormulas) {
  const std::string dir = TempDir("rope-scaling");
  std::ofstream(dir + "/hf.py") << kHfFormulas;
  const std::vector<std::pair<json, double>> cases = {
      {json(), 10000.0},
      {{{"type", "linear"}, {"factor", 4.0}}, 10000.0},
      {{{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0}, {"high_freq_factor", 4.0},
        {"original_max_position_embeddings", 8192}},
       500000.0},
      {{{"rope_type", "yarn"}, {"factor", 4.0}, {"original_max_position_embeddings", 32768}}, 1000000.0},
      {{{"type", "dynamic"}, {"factor", 2.0}}, 10000.0},
      {{{"rope_type", "yarn"}, {"factor", 2.0}, {"original_max_position_embeddings", 2048}, {"beta_fast", 16},
        {"beta_slow", 2}, {"attention_factor", 1.2}},
       10000.0},
  };
  for (const auto& [rs, theta] : cases) {
    const ModelSpec spec = SpecWith(dir, rs, theta, 4, 512);  // head_dim 128, as Llama 3.1 8B
    json hf_cfg = {{"rope_theta", theta}, {"head_dim", spec.head_dim}, {"rope_scaling", rs},
                   {"max_position_embeddings", spec.max_position_embeddings}};
    std::ofstream(dir + "/hf.json") << hf_cfg.dump();
    // Debian's interpreter, where python3-numpy installs (a python3 earlier on PATH may lack it).
    const ShellResult r = RunShell("/usr/bin/python3 " + dir + "/hf.py " + dir + "/hf.json 2>&1");
    ASSERT_EQ(r.code, 0) << "python3 with numpy is needed (Debian: python3-numpy): " << r.out;
    const json want = json::parse(r.out);
    const std::vector<double> got = RopeInverseFrequencies(spec);
    ASSERT_EQ(got.size(), want["inv_freq"].size()) << rs.dump();
    for (size_t i = 0; i < got.size(); ++i)
      EXPECT_NEAR(got[i], want["inv_freq"][i].get<double>(), 1e-12 + 1e-9 * std::abs(got[i])) << rs.dump() << " i " << i;
    EXPECT_NEAR(RopeAttentionFactor(spec), want["attention_factor"].get<double>(), 1e-12) << rs.dump();
  }
}

TEST(RopeScaling, UnsupportedKindsAreRefusedByName) {
  const std::string dir = TempDir("rope-refused");
  for (const json& rs : {json{{"rope_type", "longrope"}, {"factor", 2.0}}, json{{"type", "su"}, {"factor", 2.0}},
                         json{{"rope_type", "yarn"}, {"factor", 2.0}, {"original_max_position_embeddings", 100},
                              {"mscale", 0.7}},
                         json{{"rope_type", "linear"}, {"factor", 0.5}}}) {
    json cfg = {{"model_type", "llama"}, {"hidden_size", 64}, {"intermediate_size", 64}, {"num_hidden_layers", 1},
                {"num_attention_heads", 4}, {"vocab_size", 64}, {"max_position_embeddings", 128},
                {"rope_scaling", rs}};
    std::ofstream(dir + "/config.json") << cfg.dump();
    auto spec = LoadModelConfig(dir);
    ASSERT_FALSE(spec.ok()) << rs.dump();
    EXPECT_NE(spec.status().message().find("rope_scaling"), std::string::npos) << spec.status();
  }
}

// A small llama config.json in Llama 2's published shape, with `extra` merged over it.
absl::StatusOr<ModelSpec> LlamaWith(const json& extra) {
  json cfg = {{"architectures", {"LlamaForCausalLM"}}, {"model_type", "llama"}, {"hidden_size", 64},
              {"intermediate_size", 96}, {"num_hidden_layers", 2}, {"num_attention_heads", 4},
              {"num_key_value_heads", 2}, {"vocab_size", 100}, {"max_position_embeddings", 256},
              {"rms_norm_eps", 1e-5}, {"hidden_act", "silu"}, {"torch_dtype", "float16"}};
  for (auto& [k, v] : extra.items()) cfg[k] = v;
  return ParseModelConfig(cfg.dump(), "/m/config.json");
}

// Dynamic NTK scales only past max_position_embeddings, which no request reaches: the frequencies
// match transformers' at that length (MatchesHuggingFaceFormulas), a longer request is refused as
// for every model, and a bad factor is an error naming the field.
TEST(RopeScaling, DynamicIsExactUpToTheContextLength) {
  auto spec = LlamaWith({{"rope_scaling", {{"type", "dynamic"}, {"factor", 2.0}}}});
  ASSERT_TRUE(spec.ok()) << spec.status();
  auto bad = LlamaWith({{"rope_scaling", {{"type", "dynamic"}, {"factor", 0.5}}}});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(std::string(bad.status().message()).find("rope_scaling"), std::string::npos) << bad.status();
}

TEST(PublishedConfig, FieldsThatDoNotChangeTheMathAreAccepted) {
  // Llama 2 / TinyLlama / Llama 3.1 configs carry these; none changes inference.
  auto spec = LlamaWith({{"bos_token_id", 1}, {"pad_token_id", nullptr}, {"initializer_range", 0.02},
                         {"transformers_version", "4.43.0"}, {"use_cache", true}, {"attention_dropout", 0.0},
                         {"pretraining_tp", 1}, {"tie_word_embeddings", false}, {"rope_scaling", nullptr},
                         {"attn_logit_softcapping", nullptr}, {"partial_rotary_factor", 1.0},
                         {"use_qk_norm", false}, {"some_future_field", "whatever"}});
  ASSERT_TRUE(spec.ok()) << spec.status();
  // pretraining_tp > 1 only splits the same matmuls into slices (transformers sums them back).
  EXPECT_TRUE(LlamaWith({{"pretraining_tp", 2}}).ok());
}

TEST(PublishedConfig, MathChangingFieldsAreRefusedByName) {
  const std::vector<std::pair<std::string, json>> cases = {
      {"attn_logit_softcapping", 50.0}, {"final_logit_softcapping", 30.0}, {"partial_rotary_factor", 0.5},
      {"use_qk_norm", true},            {"qk_layernorm", true},            {"use_sliding_window", true},
      {"embedding_multiplier", 12.0},   {"residual_multiplier", 0.22},     {"attention_multiplier", 0.0078125},
      {"logits_scaling", 8.0},          {"query_pre_attn_scalar", 144},    {"mlp_bias", true},
      {"hidden_act", "gelu"},
  };
  for (const auto& [field, value] : cases) {
    auto spec = LlamaWith({{field, value}});
    ASSERT_FALSE(spec.ok()) << field;
    const std::string m(spec.status().message());
    EXPECT_NE(m.find("'" + field + "'"), std::string::npos) << m;
    EXPECT_NE(m.find("/m/config.json"), std::string::npos) << m;
  }
  // query_pre_attn_scalar equal to head_dim is the usual 1/sqrt(head_dim) scale.
  EXPECT_TRUE(LlamaWith({{"query_pre_attn_scalar", 16}}).ok());
}

TEST(PublishedConfig, HeadDimBiasesAndSeveralEosIds) {
  // An explicit head_dim that is not hidden_size / num_attention_heads (as Gemma and Qwen 3 publish).
  auto spec = LlamaWith({{"head_dim", 32}});
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->head_dim, 32);
  EXPECT_EQ(spec->rotary_dims, 32);
  EXPECT_FALSE(LlamaWith({{"head_dim", 31}}).ok());  // rotary embeddings need an even head_dim
  spec = LlamaWith({});
  ASSERT_TRUE(spec.ok());
  EXPECT_EQ(spec->head_dim, 16);
  EXPECT_FALSE(spec->attention_bias);
  EXPECT_FALSE(spec->mlp_bias);
  // attention_bias: q, k, v and o biases, as transformers' LlamaAttention gives o_proj one too
  // (Qwen 2's attention has q/k/v biases only), read from the checkpoint.
  spec = LlamaWith({{"attention_bias", true}});
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_TRUE(spec->attention_bias);
  EXPECT_TRUE(spec->attention_output_bias);
  // qwen2: q/k/v biases always, none on o_proj; its sliding window is refused by name.
  spec = LlamaWith({{"model_type", "qwen2"}, {"use_sliding_window", false}, {"sliding_window", 32768}});
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_TRUE(spec->attention_bias);
  EXPECT_FALSE(spec->attention_output_bias);
  const auto qwen_sliding = LlamaWith({{"model_type", "qwen2"}, {"use_sliding_window", true}});
  ASSERT_FALSE(qwen_sliding.ok());
  EXPECT_NE(qwen_sliding.status().message().find("use_sliding_window"), std::string::npos);
  // Llama 3.1 lists three end-of-sequence ids in config.json.
  spec = LlamaWith({{"eos_token_id", {98, 99, 97}}});
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->eos_token_ids, (std::vector<int>{98, 99, 97}));
  spec = LlamaWith({{"eos_token_id", 2}});
  ASSERT_TRUE(spec.ok());
  EXPECT_EQ(spec->eos_token_ids, (std::vector<int>{2}));
  auto bad = LlamaWith({{"eos_token_id", {1, 100}}});  // 100 is not below vocab_size
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("eos_token_id"), std::string::npos) << bad.status();
  // mlp_bias false is the default and fine; true is refused at parse time, naming the field.
  EXPECT_TRUE(LlamaWith({{"mlp_bias", false}}).ok());
  bad = LlamaWith({{"mlp_bias", true}});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("mlp_bias"), std::string::npos) << bad.status();
}

TEST(GenerationConfig, EosIdsAndSamplingDefaults) {
  const std::string dir = TempDir("generation-config");
  const ModelSpec plain = SpecWith(dir, json(), 10000.0, 4, 64);
  EXPECT_LT(plain.default_temperature, 0);
  std::ofstream(dir + "/generation_config.json")
      << json{{"eos_token_id", {5, 7}}, {"temperature", 0.6}, {"top_p", 0.9}, {"top_k", 20}, {"do_sample", true}}.dump();
  auto spec = LoadModelConfig(dir);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_NE(std::find(spec->eos_token_ids.begin(), spec->eos_token_ids.end(), 5), spec->eos_token_ids.end());
  EXPECT_NE(std::find(spec->eos_token_ids.begin(), spec->eos_token_ids.end(), 7), spec->eos_token_ids.end());
  EXPECT_DOUBLE_EQ(spec->default_temperature, 0.6);
  EXPECT_DOUBLE_EQ(spec->default_top_p, 0.9);
  EXPECT_EQ(spec->default_top_k, 20);
  std::ofstream(dir + "/generation_config.json") << json{{"temperature", 0.6}, {"do_sample", false}}.dump();
  spec = LoadModelConfig(dir);
  ASSERT_TRUE(spec.ok());
  EXPECT_EQ(spec->default_temperature, 0);  // greedy, as transformers reads do_sample false
  std::ofstream(dir + "/generation_config.json") << json{{"eos_token_id", 100000}}.dump();
  spec = LoadModelConfig(dir);
  ASSERT_FALSE(spec.ok());
  EXPECT_NE(spec.status().message().find("generation_config.json"), std::string::npos) << spec.status();
}

}  // namespace
}  // namespace strata::testing
