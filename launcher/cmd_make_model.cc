// strata make-model OUT --family gpt_neox|llama --layers N [--layer-types S | --kv-layers M] ...
#include <cstdio>
#include <fstream>
#include <sstream>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "runtime/base/status.h"
#include "launcher/commands.h"
#include "launcher/flags.h"
#include "runtime/model/model_writer.h"
#include "runtime/tokenizer/tokenizer.h"

ABSL_FLAG(std::string, family, "llama", "make-model: gpt_neox or llama");
ABSL_FLAG(int, layers, 4, "make-model: number of layers");
ABSL_FLAG(int, hidden, 64, "make-model: hidden size");
ABSL_FLAG(int, heads, 4, "make-model: attention heads");
ABSL_FLAG(int, kv_heads, 0, "make-model: KV heads (0: = heads)");
ABSL_FLAG(int, intermediate, 0, "make-model: MLP width (0: family default)");
ABSL_FLAG(int, vocab, 512, "make-model: vocabulary size");
ABSL_FLAG(int, max_position, 4096, "make-model: max_position_embeddings");
ABSL_FLAG(std::string, layer_types, "", "make-model (llama): lckv-llama layer map, e.g. 0_6_6_6_6_6_6_7");
ABSL_FLAG(int, kv_layers, 0, "make-model (gpt_neox): MLKV num_key_value_layers (0: stock fused QKV)");
ABSL_FLAG(int, sliding_window, 4096, "make-model: window of 's' layers");
ABSL_FLAG(int, forward_passes, 7, "make-model: LCKV forward_passes (m)");
ABSL_FLAG(int, backward_passes, 2, "make-model: LCKV backward_passes (b)");
ABSL_FLAG(bool, use_sequential, false, "make-model: LCKV use_sequential");
ABSL_FLAG(bool, force_nodiag, false, "make-model: LCKV force_nodiag");
ABSL_FLAG(bool, tie_embeddings, false, "make-model: tie_word_embeddings");
ABSL_FLAG(bool, sequential_residual, false, "make-model (gpt_neox): use_parallel_residual=false");
ABSL_FLAG(double, rotary_pct, 0.25, "make-model (gpt_neox): rotary_pct");
ABSL_FLAG(std::string, dtype, "float32", "make-model: float32, float16 or bfloat16");
ABSL_FLAG(int, shards, 1, "make-model: number of safetensors shards");
ABSL_FLAG(std::string, tokenizer, "",
          "make-model: directory with a tokenizer (tokenizer.json, vocab.json + merges.txt, or GPT-2's "
          "encoder.json + vocab.bpe) to place in the model instead of the generated one");

namespace strata {
namespace {

// Writes the tokenizer of `src` as `dir`/tokenizer.json, or copies a SentencePiece
// tokenizer.model (plus its tokenizer_config.json), and
// points config.json's eos/bos at its end-of-text token.
absl::Status PlaceTokenizer(const std::string& src, const std::string& dir, int model_vocab) {
  ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tok, Tokenizer::Load(src));
  if (tok->vocab_size() > model_vocab)
    return absl::InvalidArgumentError(absl::StrCat("--tokenizer ", src, " has ", tok->vocab_size(),
                                                   " tokens; --vocab is ", model_vocab));
  if (const std::string tj = tok->ToTokenizerJson(); !tj.empty()) {
    std::ofstream(dir + "/tokenizer.json") << tj << "\n";
  } else {  // a SentencePiece model: the checkpoint ships it as it is, and only it (a
             // tokenizer.json beside it, the random model's own, would be loaded first)
    std::ifstream model(src + "/tokenizer.model", std::ios::binary);
    std::ofstream(dir + "/tokenizer.model", std::ios::binary) << model.rdbuf();
    std::remove((dir + "/tokenizer.json").c_str());
  }
  // EOS and BOS: tokenizer_config.json's eos_token / bos_token where it names them (SmolLM2's
  // eos is <|im_end|>, not its <|endoftext|>), else the first end-of-text token found.
  nlohmann::json tok_cfg;
  if (std::ifstream cfg(src + "/tokenizer_config.json"); cfg) {
    std::stringstream text;
    text << cfg.rdbuf();
    std::ofstream(dir + "/tokenizer_config.json") << text.str();
    tok_cfg = nlohmann::json::parse(text.str(), nullptr, false);
  }
  auto configured = [&](const char* key) {
    if (!tok_cfg.is_object() || !tok_cfg.contains(key)) return -1;
    const nlohmann::json& v = tok_cfg[key];
    return v.is_string() ? tok->TokenId(v.get<std::string>())
           : v.is_object() && v.contains("content") && v["content"].is_string() ? tok->TokenId(v["content"].get<std::string>())
                                                                                 : -1;
  };
  int eos = configured("eos_token");
  for (const char* name : {"<|endoftext|>", "</s>", "<|end_of_text|>", "<|eot_id|>"})
    if (eos < 0) eos = tok->TokenId(name);
  if (eos >= 0) {
    int bos = configured("bos_token");
    if (bos < 0) bos = tok->TokenId("<s>") >= 0 ? tok->TokenId("<s>") : eos;
    std::ifstream in(dir + "/config.json");
    nlohmann::json c = nlohmann::json::parse(in);
    c["eos_token_id"] = eos;
    c["bos_token_id"] = bos;
    std::ofstream(dir + "/config.json") << c.dump(2) << "\n";
  }
  return absl::OkStatus();
}

}  // namespace

int RunMakeModel(const std::vector<std::string>& args) {
  if (args.size() != 1) return Fail("make-model", "usage: strata make-model OUT_DIR --family ... --seed S", 2);
  MakeModelOptions o;
  o.family = absl::GetFlag(FLAGS_family);
  o.layers = absl::GetFlag(FLAGS_layers);
  o.hidden = absl::GetFlag(FLAGS_hidden);
  o.heads = absl::GetFlag(FLAGS_heads);
  o.kv_heads = absl::GetFlag(FLAGS_kv_heads);
  o.intermediate = absl::GetFlag(FLAGS_intermediate);
  o.vocab = absl::GetFlag(FLAGS_vocab);
  o.max_position = absl::GetFlag(FLAGS_max_position);
  o.layer_types = absl::GetFlag(FLAGS_layer_types);
  o.kv_layers = absl::GetFlag(FLAGS_kv_layers);
  o.sliding_window = absl::GetFlag(FLAGS_sliding_window);
  o.forward_passes = absl::GetFlag(FLAGS_forward_passes);
  o.backward_passes = absl::GetFlag(FLAGS_backward_passes);
  o.use_sequential = absl::GetFlag(FLAGS_use_sequential);
  o.force_nodiag = absl::GetFlag(FLAGS_force_nodiag);
  o.tie_embeddings = absl::GetFlag(FLAGS_tie_embeddings);
  o.sequential_residual = absl::GetFlag(FLAGS_sequential_residual);
  o.rotary_pct = absl::GetFlag(FLAGS_rotary_pct);
  o.dtype = absl::GetFlag(FLAGS_dtype);
  o.shards = absl::GetFlag(FLAGS_shards);
  o.seed = absl::GetFlag(FLAGS_seed);
  absl::Status st = WriteRandomModel(args[0], o);
  if (!st.ok()) return Fail("make-model", std::string(st.message()));
  if (const std::string src = absl::GetFlag(FLAGS_tokenizer); !src.empty()) {
    st = PlaceTokenizer(src, args[0], o.vocab);
    if (!st.ok()) return Fail("make-model", std::string(st.message()));
  }
  return 0;
}

}  // namespace strata
