#include "runtime/model/model_writer.h"

#include <sys/stat.h>

#include <cmath>
#include <fstream>
#include <random>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"
#include "runtime/base/status.h"
#include "runtime/model/config.h"
#include "runtime/model/safetensors.h"
#include "runtime/model/tensor_roles.h"

namespace strata {
namespace {
using json = nlohmann::json;

// GPT-2's reversible byte -> printable unicode mapping used by byte-level BPE vocabularies.
std::string ByteToUnicode(int b) {
  int cp;
  if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)) {
    cp = b;
  } else {
    int n = 0;
    for (int x = 0; x < b; ++x)
      if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255))) ++n;
    cp = 256 + n;
  }
  std::string s;
  if (cp < 0x80) {
    s.push_back(static_cast<char>(cp));
  } else {
    s.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
  return s;
}

// A valid byte-level BPE tokenizer.json: 256 byte tokens, seeded random merges up to vocab-1,
// and "<|endoftext|>" as the last id.
json MakeTokenizerJson(int vocab, uint64_t seed) {
  std::mt19937_64 rng(seed ^ 0x70C3A11Eull);
  json v = json::object();
  std::vector<std::string> tokens;
  for (int b = 0; b < 256; ++b) {
    tokens.push_back(ByteToUnicode(b));
    v[tokens.back()] = b;
  }
  json merges = json::array();
  // Merge pairs of printable letters first so that ordinary text compresses.
  while (static_cast<int>(tokens.size()) < vocab - 1) {
    const size_t n = tokens.size();
    const std::string& a = tokens[rng() % n];
    const std::string& b = tokens[rng() % n];
    std::string m = a + b;
    if (v.contains(m) || m.size() > 24) continue;
    merges.push_back(a + " " + b);
    v[m] = static_cast<int>(tokens.size());
    tokens.push_back(m);
  }
  const int eos = static_cast<int>(tokens.size());
  v["<|endoftext|>"] = eos;
  json t = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens",
       json::array({{{"id", eos}, {"content", "<|endoftext|>"}, {"single_word", false},
                     {"lstrip", false}, {"rstrip", false}, {"normalized", false}, {"special", true}}})},
      {"normalizer", nullptr},
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true},
                         {"use_regex", true}}},
      {"post_processor", nullptr},
      {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true},
                   {"use_regex", true}}},
      {"model", {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr},
                 {"continuing_subword_prefix", nullptr}, {"end_of_word_suffix", nullptr},
                 {"fuse_unk", false}, {"byte_fallback", false}, {"vocab", v}, {"merges", merges}}},
  };
  return t;
}

// Initialization that keeps activations O(1) so random models have well-separated logits.
void FillTensor(const TensorDecl& t, std::mt19937_64& rng, std::vector<float>* out) {
  int64_t n = 1;
  for (int64_t d : t.shape) n *= d;
  out->resize(static_cast<size_t>(n));
  std::normal_distribution<float> normal(0.f, 1.f);
  const bool is_norm = absl::StrContains(t.name, "norm") || absl::StrContains(t.name, "layernorm");
  const bool is_bias = absl::EndsWith(t.name, ".bias");
  const bool is_embed = absl::StrContains(t.name, "embed_in") || absl::StrContains(t.name, "embed_tokens");
  float scale = 1.f, offset = 0.f;
  if (is_norm && !is_bias) {
    scale = 0.1f;
    offset = 1.f;
  } else if (is_bias) {
    scale = 0.1f;
  } else if (!is_embed && t.shape.size() == 2) {
    scale = 1.f / std::sqrt(static_cast<float>(t.shape[1]));
  }
  for (auto& x : *out) x = offset + scale * normal(rng);
}

}  // namespace

std::string RandomModelConfigJson(const MakeModelOptions& o) {
  const int kv_heads = o.kv_heads > 0 ? o.kv_heads : o.heads;
  json c;
  if (o.family == "gpt_neox") {
    c = {{"architectures", {"GPTNeoXForCausalLM"}},
         {"model_type", "gpt_neox"},
         {"hidden_act", "gelu"},
         {"hidden_size", o.hidden},
         {"intermediate_size", o.intermediate > 0 ? o.intermediate : 4 * o.hidden},
         {"num_attention_heads", o.heads},
         {"num_hidden_layers", o.layers},
         {"vocab_size", o.vocab},
         {"max_position_embeddings", o.max_position},
         {"layer_norm_eps", 1e-5},
         {"rotary_pct", o.rotary_pct},
         {"rotary_emb_base", 10000},
         {"use_parallel_residual", !o.sequential_residual},
         {"tie_word_embeddings", o.tie_embeddings},
         {"bos_token_id", o.vocab - 1},
         {"eos_token_id", o.vocab - 1}};
    if (o.kv_layers > 0 || kv_heads != o.heads) {
      c["num_key_value_layers"] = o.kv_layers > 0 ? o.kv_layers : o.layers;
      c["num_key_value_heads"] = kv_heads;
    }
  } else {
    c = {{"architectures", {"LlamaForCausalLM"}},
         {"model_type", o.layer_types.empty() ? "llama" : "lckv-llama"},
         {"hidden_act", "silu"},
         {"hidden_size", o.hidden},
         {"intermediate_size", o.intermediate > 0 ? o.intermediate : 3 * o.hidden},
         {"num_attention_heads", o.heads},
         {"num_key_value_heads", kv_heads},
         {"num_hidden_layers", o.layers},
         {"vocab_size", o.vocab},
         {"max_position_embeddings", o.max_position},
         {"rms_norm_eps", 1e-6},
         {"rope_theta", 10000.0},
         {"tie_word_embeddings", o.tie_embeddings},
         {"bos_token_id", o.vocab - 1},
         {"eos_token_id", o.vocab - 1}};
    if (!o.layer_types.empty()) {
      c["architectures"] = {"LCKVLlamaForCausalLM"};
      c["layer_types"] = o.layer_types;
      c["sliding_window"] = o.sliding_window;
      c["forward_passes"] = o.forward_passes;
      c["backward_passes"] = o.backward_passes;
      c["use_sequential"] = o.use_sequential;
      c["force_nodiag"] = o.force_nodiag;
    }
  }
  auto dt = ParseDTypeName(o.dtype);
  c["torch_dtype"] = dt.ok() ? std::string(TorchDTypeName(*dt)) : o.dtype;
  return c.dump(2);
}

absl::Status WriteRandomModel(const std::string& dir, const MakeModelOptions& o) {
  if (o.family != "gpt_neox" && o.family != "llama")
    return absl::InvalidArgumentError(absl::StrCat("--family must be gpt_neox or llama, got '", o.family, "'"));
  if (o.family == "gpt_neox" && !o.layer_types.empty())
    return absl::InvalidArgumentError("--layer-types is for the llama family; gpt_neox uses --kv-layers");
  if (o.family == "llama" && o.kv_layers > 0)
    return absl::InvalidArgumentError("--kv-layers is for the gpt_neox family; llama uses --layer-types");
  if (o.shards < 1) return absl::InvalidArgumentError("--shards must be at least 1");
  ASSIGN_OR_RETURN(DType dtype, ParseDTypeName(o.dtype));
  const std::string config = RandomModelConfigJson(o);
  ASSIGN_OR_RETURN(ModelSpec spec, ParseModelConfig(config, "config.json"));

  ::mkdir(dir.c_str(), 0755);
  {
    std::ofstream f(dir + "/config.json");
    if (!f) return absl::PermissionDeniedError(absl::StrCat(dir, ": cannot write config.json"));
    f << config << "\n";
  }
  {
    std::ofstream f(dir + "/tokenizer.json");
    f << MakeTokenizerJson(o.vocab, o.seed).dump() << "\n";
  }

  const std::vector<TensorDecl> decls = ExpectedTensors(spec);
  std::vector<std::vector<TensorToWrite>> shards(o.shards);
  std::vector<float> values;
  size_t total_bytes = 0;
  for (size_t i = 0; i < decls.size(); ++i) {
    // One stream per tensor: a tensor's values do not depend on the others or on sharding.
    std::mt19937_64 rng(o.seed * 0x9E3779B97F4A7C15ull + i * 0xD1B54A32D192ED03ull + 1);
    FillTensor(decls[i], rng, &values);
    TensorToWrite t{decls[i].name, dtype, decls[i].shape, {}};
    t.bytes.resize(values.size() * DTypeSize(dtype));
    FromFloat(dtype, values.data(), t.bytes.data(), values.size());
    total_bytes += t.bytes.size();
    shards[i * o.shards / decls.size()].push_back(std::move(t));
  }
  if (o.shards == 1) return WriteSafetensors(dir + "/model.safetensors", shards[0]);
  json index = {{"metadata", {{"total_size", total_bytes}}}, {"weight_map", json::object()}};
  for (int s = 0; s < o.shards; ++s) {
    const std::string name = absl::StrFormat("model-%05d-of-%05d.safetensors", s + 1, o.shards);
    RETURN_IF_ERROR(WriteSafetensors(dir + "/" + name, shards[s]));
    for (const auto& t : shards[s]) index["weight_map"][t.name] = name;
  }
  std::ofstream f(dir + "/model.safetensors.index.json");
  f << index.dump(2) << "\n";
  return absl::OkStatus();
}

}  // namespace strata
