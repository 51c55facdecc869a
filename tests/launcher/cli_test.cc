// The real `strata` binary: make-model writes a checkpoint, generate prints the stable JSON
// interface, and bad input exits non-zero with a message.
#include <gtest/gtest.h>

#include <algorithm>

#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "nlohmann/json.hpp"
#include "runtime/engine.h"
#include "runtime/tokenizer/tokenizer.h"
#include "tests/shell.h"
#include "tests/test_models.h"

namespace strata::testing {
namespace {

// The binary with both output streams (messages are checked too).
ShellResult Strata(const std::string& args) {
  const char* bin = std::getenv("STRATA_BIN");
  EXPECT_NE(bin, nullptr) << "STRATA_BIN is set by ctest";
  return RunShell(std::string(bin ? bin : "strata") + " " + args + " 2>&1");
}

TEST(Cli, MakeModelThenGenerateJsonMatchesTheEngine) {
  const std::string dir = TempDir("cli");
  ShellResult mk = Strata("make-model " + dir + " --family gpt_neox --layers 6 --kv-layers 3 --kv-heads 2 --hidden 64"
                  " --heads 4 --vocab 300 --dtype bfloat16 --shards 2 --seed 5");
  ASSERT_EQ(mk.code, 0) << mk.out;
  ShellResult gen = Strata("generate --model " + dir + " --prompt-ids 1,2,3,4 --max-tokens 6 --ignore-eos --json"
                   " --temperature 0.9 --top-p 0.95 --top-k 50 --seed 3");
  ASSERT_EQ(gen.code, 0) << gen.out;
  nlohmann::json j = nlohmann::json::parse(gen.out);
  ASSERT_TRUE(j.contains("tokens") && j.contains("logprobs")) << gen.out;

  auto engine = Engine::Create(dir, EngineOptions{});
  ASSERT_TRUE(engine.ok());
  GenerationRequest r;
  r.prompt = {1, 2, 3, 4};
  r.max_tokens = 6;
  r.ignore_eos = true;
  r.sampling.temperature = 0.9f;
  r.sampling.top_p = 0.95f;
  r.sampling.top_k = 50;
  r.sampling.seed = 3;
  auto res = (*engine)->Generate({r});
  ASSERT_TRUE(res.ok());
  EXPECT_EQ(j["tokens"].get<std::vector<int>>(), (*res)[0].tokens);
  const auto lp = j["logprobs"].get<std::vector<double>>();
  ASSERT_EQ(lp.size(), 6u);
  for (size_t i = 0; i < lp.size(); ++i) EXPECT_NEAR(lp[i], (*res)[0].logprobs[i], 1e-6);
}

TEST(Cli, BadInputExitsNonZeroWithAMessage) {
  ShellResult r = Strata("generate --model /nonexistent --prompt-ids 1 --json");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("/nonexistent/config.json"), std::string::npos) << r.out;
  r = Strata("generate --model /tmp --prompt-ids 1,x");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("'x' is not an integer"), std::string::npos) << r.out;
  r = Strata("make-model " + TempDir("cli-bad") + " --family gpt_neox --layer-types 0_0");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("--layer-types is for the llama family"), std::string::npos) << r.out;
  r = Strata("frobnicate");
  EXPECT_EQ(r.code, 2);
}

TEST(Cli, InspectReportsKvBytes) {
  const std::string dir = TempDir("cli-inspect");
  ASSERT_EQ(Strata("make-model " + dir + " --family llama --layers 8 --layer-types 0_6_6_6_6_6_6_7 --hidden 64"
                   " --heads 4 --kv-heads 2").code, 0);
  ShellResult r = Strata("inspect --model " + dir + " --kv-dtype bfloat16 --json");
  ASSERT_EQ(r.code, 0) << r.out;
  nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["kv_bytes_per_token"], 2 * 3 * 2 * 16 * 2);  // LCKV w=2: banks 0, 6, 7
  EXPECT_EQ(j["kv_groups"].size(), 3u);
}

}  // namespace
}  // namespace strata::testing

namespace strata::testing {
namespace {

// make-model --tokenizer places a real tokenizer (SmolLM2's tokenizer.json, which
// scripts/python_env.sh writes from its GGUF) and points eos at its end token; a tokenizer larger
// than --vocab is refused.
TEST(Cli, MakeModelPlacesARealTokenizer) {
  const std::string src = STRATA_SMOLLM2_TOKENIZER_DIR;
  ASSERT_TRUE(std::ifstream(src + "/tokenizer.json")) << src << " is missing: scripts/python_env.sh writes it";
  const std::string dir = TempDir("cli-tok");
  ShellResult r = Strata("make-model " + dir + " --family llama --layers 2 --hidden 32 --heads 2 --vocab 49152"
                    " --tokenizer " + src);
  ASSERT_EQ(r.code, 0) << r.out;
  auto tok = Tokenizer::Load(dir);
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ((*tok)->Encode("Hello world"), (std::vector<int>{19556, 905}));
  std::ifstream cfg(dir + "/config.json");
  EXPECT_EQ(nlohmann::json::parse(cfg)["eos_token_id"], 2);  // <|im_end|>, tokenizer_config.json's eos_token
  r = Strata("make-model " + TempDir("cli-tok-small") + " --family gpt_neox --layers 2 --hidden 32 --heads 2"
             " --vocab 512 --tokenizer " + src);
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("49152 tokens; --vocab is 512"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace strata::testing

namespace strata::testing {
namespace {

// bench sampler --json: every setting timed on a row of the asked length.
TEST(Cli, BenchSamplerTimesEverySetting) {
  const ShellResult r = Strata("bench sampler --sampler-vocab 2000 --sampler-reps 3 --seed 4 --json");
  ASSERT_EQ(r.code, 0) << r.out;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["vocab_size"], 2000);
  for (const char* s : {"greedy", "temperature_1", "top_k_40", "top_p_0.9", "min_p_0.05", "llama_cpp_defaults"}) {
    for (const char* table : {"us_per_token", "us_per_token_without_logprob"}) {
      ASSERT_TRUE(j[table].contains(s)) << table << " " << s;
      EXPECT_GT(j[table][s].get<double>(), 0.0) << table << " " << s;
    }
  }
}

// bench offline --json: the fields other tools read, and the floor recomputed from its parts:
// decode bytes/token = (weights minus the embedding + batch x mean context x KV bytes/token) / batch.
TEST(Cli, BenchOfflineReportsItsFloorAndConfiguration) {
  const std::string dir = TempDir("cli-bench");
  ASSERT_EQ(Strata("make-model " + dir + " --family gpt_neox --layers 2 --hidden 64 --heads 4 --vocab 512 --seed 2").code, 0);
  ShellResult r = Strata("bench offline --model " + dir + " --batch 2 --prompt-len 8 --output-len 4 --repeat 3 --threads 1 --json");
  ASSERT_EQ(r.code, 0) << r.out;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  for (const char* f : {"prefill_tokens_per_s", "decode_tokens_per_s", "kv_bytes_per_token", "bandwidth_floor_tokens_per_s",
                        "read_bandwidth_bytes_per_s", "gemm_flops_per_s", "config", "ranks"})
    EXPECT_TRUE(j.contains(f)) << f;
  const double kv = j["kv_bytes_per_token"].get<double>();
  EXPECT_EQ(kv, 2 * 2 * 64 * 4);  // 2 layers x K,V x 64 dims x float32
  const double weights = j["weight_bytes"].get<double>() - 512.0 * 64 * 4;  // minus the embedding
  const double per_token = (weights + 2 * (8 + 4 / 2.0) * kv) / 2;
  EXPECT_NEAR(j["decode_bytes_per_token"].get<double>(), per_token, 1e-6 * per_token);
  EXPECT_NEAR(j["bandwidth_floor_tokens_per_s"].get<double>(), j["read_bandwidth_bytes_per_s"].get<double>() / per_token,
              1e-6 * j["bandwidth_floor_tokens_per_s"].get<double>());
  EXPECT_GT(j["read_bandwidth_bytes_per_s"].get<double>(), 1e8);
  // Each run is set against the bandwidth measured just before it; the report is the median.
  const auto& decode_runs = j["decode_tokens_per_s_runs"];
  const auto& bandwidth_runs = j["read_bandwidth_bytes_per_s_runs"];
  const auto& fraction_runs = j["decode_fraction_of_floor_runs"];
  ASSERT_EQ(decode_runs.size(), 3u);
  ASSERT_EQ(bandwidth_runs.size(), 3u);
  ASSERT_EQ(fraction_runs.size(), 3u);
  std::vector<double> fractions;
  for (int i = 0; i < 3; ++i) {
    const double want = decode_runs[i].get<double>() * per_token / bandwidth_runs[i].get<double>();
    EXPECT_NEAR(fraction_runs[i].get<double>(), want, 1e-9 * want) << "run " << i;
    fractions.push_back(want);
  }
  std::sort(fractions.begin(), fractions.end());
  EXPECT_NEAR(j["decode_fraction_of_floor"].get<double>(), fractions[1], 1e-9 * fractions[1]);
  EXPECT_EQ(j["config"]["batch"], 2);
  ASSERT_EQ(j["ranks"].size(), 1u);
  EXPECT_GT(j["ranks"][0]["steps"].get<int>(), 0);
  EXPECT_EQ(j["admitted_batch"], 2);
  // A 64 KiB budget holds 64 tokens of 1 KiB: four 16-token blocks, one per 12-token sequence,
  // so 4 of 6 sequences run at once.
  r = Strata("bench offline --model " + dir + " --batch 6 --prompt-len 8 --output-len 4 --repeat 1 --threads 1"
             " --kv-memory 65536 --json");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(nlohmann::json::parse(r.out)["admitted_batch"], 4);
}

}  // namespace
}  // namespace strata::testing

namespace strata::testing {
namespace {

// plan --memory-per-rank: the verdict per stage is weights + KV budget + the engine's activation
// reserve against the memory, and the exit code says whether every rank fits. The weights and
// the reserve are recomputed here from the shapes and the default step sizes.
TEST(Cli, PlanSaysWhetherTheModelFits) {
  const std::string dir = TempDir("cli-fit");
  ASSERT_EQ(Strata("make-model " + dir + " --family gpt_neox --layers 2 --hidden 64 --heads 4 --intermediate 256"
                   " --vocab 512 --seed 2").code, 0);
  // F32 gpt_neox, one stage: embedding + LM head 2 x 512 x 64; per layer QKV 64x192 + 192,
  // dense 64x64 + 64, MLP 64x256 + 256 and 256x64 + 64, two LayerNorms 4 x 64; final norm 2 x 64.
  const int64_t layer = 64 * 192 + 192 + 64 * 64 + 64 + 64 * 256 + 256 + 256 * 64 + 64 + 4 * 64;
  const int64_t weights = 4 * (2 * 512 * 64 + 2 * layer + 2 * 64);
  const int64_t kv = 1 << 20;
  // float32 activations of a 2048-token step (8 hidden-wide rows and 3 MLP-wide ones per token),
  // the logits of 256 sequences twice, and 256 MiB for the runtime's own workspaces.
  const int64_t act = 4 * (2048 * (8 * 64 + 3 * 256) + 2 * 256 * 512) + (int64_t{256} << 20);
  ShellResult ok = Strata("plan --model " + dir + " --kv-memory " + std::to_string(kv) +
                     " --memory-per-rank " + std::to_string(weights + kv + act) + " --json");
  ASSERT_EQ(ok.code, 0) << ok.out;
  const nlohmann::json j = nlohmann::json::parse(ok.out);
  EXPECT_EQ(j["fits"], true);
  EXPECT_EQ(j["stage_memory"][0]["needed_bytes"], weights + kv + act);
  ShellResult tight = Strata("plan --model " + dir + " --kv-memory " + std::to_string(kv) +
                        " --memory-per-rank " + std::to_string(weights + kv + act - 1));
  EXPECT_EQ(tight.code, 1) << tight.out;
  EXPECT_NE(tight.out.find("does not fit"), std::string::npos) << tight.out;
}

// strata tokenize: the ids are the library's (Tokenizer::Load + Encode, BOS by add_bos_token),
// --decode gives the text back, and bad ids are refused.
TEST(Cli, TokenizeIsTheLibrarysTokenizer) {
  const std::string dir = TempDir("cli-tokenize");
  ASSERT_EQ(Strata("make-model " + dir + " --layers 1 --hidden 16 --heads 2 --vocab 512 --seed 3").code, 0);
  auto t = Tokenizer::Load(dir);
  ASSERT_TRUE(t.ok()) << t.status();
  const std::string text = "hello world, twice: hello world";
  std::vector<int> want = (*t)->Encode(text);
  if ((*t)->bos_to_add() >= 0) want.insert(want.begin(), (*t)->bos_to_add());
  const ShellResult r = Strata("tokenize --model " + dir + " --text '" + text + "' --json");
  ASSERT_EQ(r.code, 0) << r.out;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["tokens"].get<std::vector<int>>(), want);
  EXPECT_EQ(j["count"], want.size());
  std::string ids;
  for (int id : (*t)->Encode(text)) ids += (ids.empty() ? "" : ",") + std::to_string(id);
  const ShellResult back = Strata("tokenize --model " + dir + " --decode " + ids);
  ASSERT_EQ(back.code, 0) << back.out;
  EXPECT_EQ(back.out, text + "\n");
  EXPECT_EQ(Strata("tokenize --model " + dir + " --decode 1,999999").code, 2);
  EXPECT_EQ(Strata("tokenize --model " + dir).code, 2);
  // The empty text is a text: no ids but the BOS the tokenizer adds, as --file of an empty file.
  std::vector<int> empty;
  if ((*t)->bos_to_add() >= 0) empty.push_back((*t)->bos_to_add());
  const ShellResult e = Strata("tokenize --model " + dir + " --text '' --json");
  ASSERT_EQ(e.code, 0) << e.out;
  EXPECT_EQ(nlohmann::json::parse(e.out)["tokens"].get<std::vector<int>>(), empty);
  const ShellResult plain = Strata("tokenize --model " + dir + " --text '' --add-special-tokens=false");
  ASSERT_EQ(plain.code, 0) << plain.out;
  EXPECT_EQ(plain.out, "\n");
}

}  // namespace
}  // namespace strata::testing
