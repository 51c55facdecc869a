// Every malformed input gets a clear error naming the file and the field or tensor; nothing
// crashes. Checkpoints are corrupted on disk, configs are edited JSON.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "nlohmann/json.hpp"
#include "runtime/engine.h"
#include "runtime/model/config.h"
#include "runtime/model/checkpoint.h"
#include "tests/test_models.h"

namespace strata::testing {
namespace {

using json = nlohmann::json;

void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

// A safetensors file with the given header JSON and `data_bytes` bytes of data.
std::string RawSafetensors(const std::string& header, size_t data_bytes, uint64_t claimed_len = 0) {
  std::string out(8, '\0');
  uint64_t n = claimed_len ? claimed_len : header.size();
  std::memcpy(out.data(), &n, 8);
  return out + header + std::string(data_bytes, '\x01');
}

void ExpectError(const absl::Status& st, std::vector<std::string> needles) {
  ASSERT_FALSE(st.ok()) << "expected an error containing " << needles[0];
  for (const auto& n : needles) EXPECT_NE(std::string(st.message()).find(n), std::string::npos) << st.message();
}

MakeModelOptions SmallOptions(int shards = 1) {
  MakeModelOptions o;
  o.layers = 2;
  o.hidden = 32;
  o.heads = 2;
  o.vocab = 300;
  o.shards = shards;
  return o;
}

std::string SmallModel(const std::string& tag) { return MakeModel(tag, SmallOptions()); }

TEST(MalformedSafetensors, HeaderAndOffsets) {
  const std::string dir = TempDir("st");
  const std::string p = dir + "/x.safetensors";
  auto open = [&](const std::string& bytes) {
    WriteBytes(p, bytes);
    return SafetensorsFile::Open(p).status();
  };
  ExpectError(open("abc"), {p, "truncated"});
  ExpectError(open(RawSafetensors("{}", 0, 500)), {p, "truncated", "500"});
  ExpectError(open(RawSafetensors("{}", 0, 200ull << 20)), {p, "100 MB"});
  ExpectError(open(RawSafetensors("{not json", 0)), {p, "not a JSON object"});
  ExpectError(open(RawSafetensors(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 4)),
              {p, "'w'", "out of range"});
  ExpectError(open(RawSafetensors(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8)),
              {p, "'w'", "needs 12"});
  ExpectError(open(RawSafetensors(R"({"w":{"dtype":"Q7","shape":[2],"data_offsets":[0,8]}})", 8)),
              {p, "'w'", "unsupported dtype 'Q7'"});
  ExpectError(open(RawSafetensors(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                  R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12)),
              {p, "overlap"});
  ExpectError(open(RawSafetensors(R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8)),
              {p, "'w'", "bad dimension"});
  ExpectError(open(RawSafetensors(R"({"w":{"dtype":"F32","shape":[2]}})", 8)), {p, "'w'", "data_offsets"});
  EXPECT_TRUE(open(RawSafetensors(R"({"w":{"dtype":"BF16","shape":[2,2],"data_offsets":[0,8]}})", 8)).ok());
}

TEST(MalformedSafetensors, RandomCorruptionNeverCrashes) {
  const std::string dir = SmallModel("fuzz");
  std::ifstream in(dir + "/model.safetensors", std::ios::binary);
  std::string good((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  uint64_t header_len;
  std::memcpy(&header_len, good.data(), 8);
  std::mt19937_64 rng(1234);
  int rejected = 0;
  for (int trial = 0; trial < 300; ++trial) {
    std::string bad = good;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) bad[rng() % (8 + header_len)] = static_cast<char>(rng());
    if (trial % 7 == 0) bad.resize(rng() % bad.size());
    WriteBytes(dir + "/model.safetensors", bad);
    auto engine = Engine::Create(dir, EngineOptions{});
    if (!engine.ok()) {
      ++rejected;
      EXPECT_FALSE(engine.status().message().empty());
    }
  }
  EXPECT_GT(rejected, 150);
}

class MalformedCheckpoint : public ::testing::Test {
 protected:
  // Rewrites model.safetensors through `edit`.
  void Rewrite(const std::function<void(std::vector<TensorToWrite>&)>& edit) {
    auto f = SafetensorsFile::Open(dir_ + "/model.safetensors");
    ASSERT_TRUE(f.ok());
    std::vector<TensorToWrite> ts;
    for (const auto& [name, info] : (*f)->tensors()) {
      const uint8_t* d = (*f)->data(info);
      ts.push_back({name, info.dtype, info.shape, std::vector<uint8_t>(d, d + info.nbytes)});
    }
    f->reset();
    edit(ts);
    ASSERT_TRUE(WriteSafetensors(dir_ + "/model.safetensors", ts).ok());
  }
  absl::Status Load() { return Engine::Create(dir_, EngineOptions{}).status(); }
  std::string dir_ = SmallModel("ckpt");
};

TEST_F(MalformedCheckpoint, MissingTensor) {
  Rewrite([](auto& ts) { std::erase_if(ts, [](auto& t) { return t.name == "model.layers.1.mlp.up_proj.weight"; }); });
  ExpectError(Load(), {"missing tensor", "model.layers.1.mlp.up_proj.weight"});
}

TEST_F(MalformedCheckpoint, ExtraTensor) {
  Rewrite([](auto& ts) { ts.push_back({"model.layers.7.self_attn.q_proj.weight", DType::kF32, {2}, std::vector<uint8_t>(8)}); });
  ExpectError(Load(), {"model.safetensors", "unexpected tensor", "model.layers.7.self_attn.q_proj.weight"});
}

TEST_F(MalformedCheckpoint, WrongShape) {
  Rewrite([](auto& ts) {
    for (auto& t : ts)
      if (t.name == "model.norm.weight") t.shape = {16, 2};
  });
  ExpectError(Load(), {"model.safetensors", "model.norm.weight", "[16, 2]", "expected [32]"});
}

TEST_F(MalformedCheckpoint, NoWeightFiles) {
  std::filesystem::remove(dir_ + "/model.safetensors");
  ExpectError(Load(), {dir_, "model.safetensors"});
}

TEST(MalformedShards, IndexNamesAMissingFile) {
  const std::string dir = MakeModel("shards", SmallOptions(3));
  ASSERT_TRUE(Engine::Create(dir, EngineOptions{}).ok());  // the sharded layout itself loads
  std::filesystem::remove(dir + "/model-00002-of-00003.safetensors");
  ExpectError(Engine::Create(dir, EngineOptions{}).status(), {"model-00002-of-00003.safetensors", "cannot open"});
}

TEST(MalformedShards, TensorInTheWrongShard) {
  const std::string dir = MakeModel("shards2", SmallOptions(2));
  std::ifstream in(dir + "/model.safetensors.index.json");
  json idx = json::parse(in);
  const std::string where = idx["weight_map"]["model.norm.weight"];
  idx["weight_map"]["model.norm.weight"] = where == "model-00001-of-00002.safetensors"
                                               ? "model-00002-of-00002.safetensors"
                                               : "model-00001-of-00002.safetensors";
  std::ofstream(dir + "/model.safetensors.index.json") << idx.dump();
  ExpectError(Engine::Create(dir, EngineOptions{}).status(), {"model.norm.weight"});
}

json LlamaConfig() {
  return {{"model_type", "lckv-llama"}, {"hidden_size", 64}, {"num_attention_heads", 4},
          {"num_key_value_heads", 2}, {"num_hidden_layers", 4}, {"intermediate_size", 128},
          {"vocab_size", 300}};
}

absl::Status Parse(const json& c) { return ParseModelConfig(c.dump(), "/m/config.json").status(); }

TEST(MalformedConfig, LayerTypes) {
  json c = LlamaConfig();
  c["layer_types"] = "0_1_2";
  ExpectError(Parse(c), {"/m/config.json", "'layer_types'", "3 entries", "num_hidden_layers is 4"});
  c["layer_types"] = "0_1_9_3";
  ExpectError(Parse(c), {"/m/config.json", "'layer_types'", "layer 2 reads layer 9"});
  c["layer_types"] = "0_1_2x_3";
  ExpectError(Parse(c), {"/m/config.json", "'layer_types'", "'2x'"});
  c["layer_types"] = "1_2_0_3";
  ExpectError(Parse(c), {"/m/config.json", "'layer_types'", "never reaches a producer"});
  c["layer_types"] = "0s_0_2_3";
  ExpectError(Parse(c), {"/m/config.json", "'layer_types'", "layer 1", "window"});
  c["layer_types"] = "0_0_2_2";
  c["num_key_value_heads"] = {2, 1, 2, 2};
  ExpectError(Parse(c), {"/m/config.json", "layer 1 reads the K/V of layer 0", "1 KV heads", "producer has 2"});
  c["layer_types"] = "0_0_2_2";
  c["num_key_value_heads"] = {2, 2, 1, 1};
  EXPECT_TRUE(Parse(c).ok());  // groups with their own head counts are fine
}

TEST(MalformedConfig, FieldsAndTypes) {
  json c = LlamaConfig();
  c.erase("hidden_size");
  ExpectError(Parse(c), {"/m/config.json", "'hidden_size'", "missing"});
  c = LlamaConfig();
  c["num_hidden_layers"] = "4";
  ExpectError(Parse(c), {"'num_hidden_layers'", "expected an integer"});
  c = LlamaConfig();
  c["model_type"] = "mamba";
  ExpectError(Parse(c), {"'model_type'", "mamba"});
  c = LlamaConfig();
  c["hidden_size"] = 66;
  ExpectError(Parse(c), {"'hidden_size'", "not a multiple"});
  c = LlamaConfig();
  c["rope_scaling"] = {{"type", "linear"}};
  ExpectError(Parse(c), {"'rope_scaling'"});
  ExpectError(ParseModelConfig("{\"model_type\": ", "/m/config.json").status(), {"/m/config.json", "not valid JSON"});
  json n = {{"model_type", "gpt_neox"}, {"hidden_size", 64}, {"num_attention_heads", 4},
            {"num_hidden_layers", 4}, {"intermediate_size", 128}, {"vocab_size", 300},
            {"num_key_value_layers", 6}};
  ExpectError(Parse(n), {"'num_key_value_layers'", "exceeds num_hidden_layers"});
  n["num_key_value_layers"] = 2;
  n["num_key_value_heads"] = 3;
  ExpectError(Parse(n), {"layer 0", "not a multiple of its KV heads 3"});
}

TEST(MalformedRequests, EngineRejectsBadPrompts) {
  auto engine = Engine::Create(SmallModel("req"), EngineOptions{});
  ASSERT_TRUE(engine.ok());
  GenerationRequest r;
  r.prompt = {1, 300};
  ExpectError((*engine)->Generate({r}).status(), {"token id 300", "vocabulary"});
  r.prompt = {};
  ExpectError((*engine)->Generate({r}).status(), {"empty"});
  r.prompt = std::vector<int>(4090, 1);
  r.max_tokens = 10;
  ExpectError((*engine)->Generate({r}).status(), {"exceeds the context length 4096"});
  r.prompt = {1};
  r.sampling.top_p = 0;
  ExpectError((*engine)->Generate({r}).status(), {"top_p"});
}

}  // namespace
}  // namespace strata::testing
