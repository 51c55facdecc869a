#include "runtime/model/gguf_checkpoint.h"

#include <cstring>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"
#include "runtime/base/status.h"
#include "runtime/model/ggml_blocks.h"

namespace strata {
namespace {

using json = nlohmann::json;

// The architectures read, with their Hugging Face model_type: llama (rotary pairs interleaved
// by llama.cpp, so Q and K rows are permuted) and qwen2 (rotate-half as in transformers: not).
struct Arch {
  std::string name;  // the GGUF metadata prefix
  const char* model_type;
  const char* hf_class;
  bool permuted_qk;
};

absl::StatusOr<Arch> ReadArch(const GgufModel& m) {
  ASSIGN_OR_RETURN(const std::string arch, m.String("general.architecture"));
  if (arch == "llama") return Arch{arch, "llama", "LlamaForCausalLM", true};
  if (arch == "qwen2") return Arch{arch, "qwen2", "Qwen2ForCausalLM", false};
  return absl::UnimplementedError(absl::StrCat(m.path(), ": GGUF general.architecture '", arch,
                                               "' is not supported yet (llama and qwen2 are)"));
}

struct LlamaShape {
  int64_t heads = 0, kv_heads = 0, head_dim = 0;
};

absl::StatusOr<LlamaShape> ReadLlamaShape(const GgufModel& m, const Arch& a) {
  LlamaShape s;
  const std::string p = a.name + ".";
  ASSIGN_OR_RETURN(const int64_t hidden, m.Int(p + "embedding_length"));
  ASSIGN_OR_RETURN(s.heads, m.Int(p + "attention.head_count"));
  ASSIGN_OR_RETURN(s.kv_heads, m.IntOr(p + "attention.head_count_kv", s.heads));
  if (s.heads <= 0 || s.kv_heads <= 0 || hidden <= 0 || s.heads % s.kv_heads != 0)
    return absl::InvalidArgumentError(absl::StrCat(m.path(), ": GGUF ", p, "attention.head_count ", s.heads,
                                                   " and head_count_kv ", s.kv_heads, " do not form groups"));
  ASSIGN_OR_RETURN(s.head_dim, m.IntOr(p + "attention.key_length", hidden / s.heads));
  if (s.head_dim <= 0 || s.head_dim % 2 != 0)
    return absl::InvalidArgumentError(absl::StrCat(m.path(), ": GGUF head dimension ", s.head_dim, " is not even"));
  ASSIGN_OR_RETURN(const int64_t rotary, m.IntOr(p + "rope.dimension_count", s.head_dim));
  if (rotary != s.head_dim)
    return absl::UnimplementedError(absl::StrCat(m.path(), ": GGUF ", p, "rope.dimension_count ", rotary,
                                                 " is not the head dimension ", s.head_dim,
                                                 " (partial rotary is not supported)"));
  return s;
}

// The Hugging Face name of a llama GGUF tensor, and how many heads its rows are permuted over
// (0: not permuted).
absl::StatusOr<std::pair<std::string, int64_t>> HfName(const std::string& name, const LlamaShape& s, int64_t layers,
                                                       const std::string& path) {
  static const std::map<std::string, std::string> kGlobal = {
      {"token_embd.weight", "model.embed_tokens.weight"},
      {"output_norm.weight", "model.norm.weight"},
      {"output.weight", "lm_head.weight"},
  };
  static const std::map<std::string, std::string> kLayer = {
      {"attn_norm.weight", "input_layernorm.weight"},
      {"attn_q.weight", "self_attn.q_proj.weight"},
      {"attn_k.weight", "self_attn.k_proj.weight"},
      {"attn_v.weight", "self_attn.v_proj.weight"},
      {"attn_output.weight", "self_attn.o_proj.weight"},
      {"attn_q.bias", "self_attn.q_proj.bias"},
      {"attn_k.bias", "self_attn.k_proj.bias"},
      {"attn_v.bias", "self_attn.v_proj.bias"},
      {"attn_output.bias", "self_attn.o_proj.bias"},
      {"ffn_norm.weight", "post_attention_layernorm.weight"},
      {"ffn_gate.weight", "mlp.gate_proj.weight"},
      {"ffn_up.weight", "mlp.up_proj.weight"},
      {"ffn_down.weight", "mlp.down_proj.weight"},
  };
  if (auto it = kGlobal.find(name); it != kGlobal.end()) return std::make_pair(it->second, int64_t{0});
  const std::vector<std::string> parts = absl::StrSplit(name, absl::MaxSplits('.', 2));
  int layer = -1;
  // "blk.N." with N written plainly (no sign, no leading zero) and below block_count.
  if (parts.size() == 3 && parts[0] == "blk" && absl::SimpleAtoi(parts[1], &layer) && layer >= 0 &&
      layer < layers && parts[1] == absl::StrCat(layer))
    if (auto it = kLayer.find(parts[2]); it != kLayer.end()) {
      const int64_t heads = absl::StartsWith(parts[2], "attn_q.") ? s.heads : absl::StartsWith(parts[2], "attn_k.") ? s.kv_heads : 0;
      return std::make_pair(absl::StrCat("model.layers.", layer, ".", it->second), heads);
    }
  if (name == "rope_freqs.weight")
    return absl::UnimplementedError(absl::StrCat(path, ": GGUF tensor 'rope_freqs.weight' (Llama 3.1's RoPE factors) is not "
                                                       "supported yet"));
  return absl::UnimplementedError(absl::StrCat(path, ": GGUF tensor '", name, "' has no place in the model"));
}

}  // namespace

int64_t GgufRowOfHfRow(int64_t hf_row, int64_t head_dim) {
  const int64_t head = hf_row / head_dim, i = hf_row % head_dim, half = head_dim / 2;
  return head * head_dim + (i < half ? 2 * i : 2 * (i - half) + 1);
}

absl::StatusOr<std::string> ConfigJsonFromGguf(const GgufModel& m) {
  ASSIGN_OR_RETURN(const Arch a, ReadArch(m));
  ASSIGN_OR_RETURN(const LlamaShape s, ReadLlamaShape(m, a));
  const std::string p = a.name + ".";
  json c = {{"architectures", {a.hf_class}}, {"model_type", a.model_type}, {"hidden_act", "silu"},
            {"torch_dtype", "float32"}, {"num_attention_heads", s.heads}, {"num_key_value_heads", s.kv_heads},
            {"head_dim", s.head_dim}};
  for (const auto& [field, key] : {std::pair<const char*, const char*>{"hidden_size", "embedding_length"},
                                   {"num_hidden_layers", "block_count"},
                                   {"intermediate_size", "feed_forward_length"},
                                   {"max_position_embeddings", "context_length"}}) {
    ASSIGN_OR_RETURN(const int64_t v, m.Int(p + key));
    c[field] = v;
  }
  ASSIGN_OR_RETURN(const double eps, m.Float(p + "attention.layer_norm_rms_epsilon"));
  c["rms_norm_eps"] = eps;
  ASSIGN_OR_RETURN(c["rope_theta"], m.FloatOr(p + "rope.freq_base", 10000.0));
  if (m.Has(p + "rope.scaling.type")) {
    ASSIGN_OR_RETURN(const std::string type, m.String(p + "rope.scaling.type"));
    if (type != "none") {
      if (type != "linear")
        return absl::UnimplementedError(absl::StrCat(m.path(), ": GGUF ", p, "rope.scaling.type '", type, "' is not supported"));
      ASSIGN_OR_RETURN(const double factor, m.Float(p + "rope.scaling.factor"));
      c["rope_scaling"] = {{"rope_type", "linear"}, {"factor", factor}};
    }
  }
  ASSIGN_OR_RETURN(const std::vector<std::string> tokens, m.StringArray("tokenizer.ggml.tokens"));
  ASSIGN_OR_RETURN(c["vocab_size"], m.IntOr(p + "vocab_size", static_cast<int64_t>(tokens.size())));
  c["tie_word_embeddings"] = !m.HasTensor("output.weight");
  if (a.name == "llama") c["attention_bias"] = m.HasTensor("blk.0.attn_q.bias");
  for (const auto& [field, key] : {std::pair<const char*, const char*>{"bos_token_id", "tokenizer.ggml.bos_token_id"},
                                   {"eos_token_id", "tokenizer.ggml.eos_token_id"}})
    if (m.Has(key)) {
      ASSIGN_OR_RETURN(const int64_t v, m.Int(key));
      c[field] = v;
    }
  return c.dump(2);
}

absl::StatusOr<std::vector<TensorToWrite>> HfTensorsFromGguf(const GgufModel& m) {
  ASSIGN_OR_RETURN(const Arch a, ReadArch(m));
  ASSIGN_OR_RETURN(const LlamaShape s, ReadLlamaShape(m, a));
  ASSIGN_OR_RETURN(const int64_t layers, m.Int(a.name + ".block_count"));
  std::vector<TensorToWrite> out;
  for (const std::string& name : m.TensorNames()) {
    ASSIGN_OR_RETURN(const GgufTensorInfo* t, m.Tensor(name));
    ASSIGN_OR_RETURN(const auto hf, HfName(name, s, layers, m.path()));
    const GgmlType* type = FindGgmlType(t->ggml_type);  // known: the reader checked
    if (!type->dequantizable)
      return absl::UnimplementedError(absl::StrCat(m.path(), ": GGUF tensor '", name, "' is ", type->name,
                                                   ", which Strata cannot load (F32, F16, BF16, Q8_0, Q4_0, Q4_1, "
                                                   "Q5_0, Q5_1, Q4_K, Q5_K and Q6_K it can)"));
    TensorToWrite w;
    w.name = hf.first;
    w.dtype = DType::kF32;
    w.shape = t->torch_shape();
    std::vector<float> values(static_cast<size_t>(t->numel()));
    if (absl::Status st = DequantizeGgml(t->ggml_type, m.Data(*t), t->numel(), values.data()); !st.ok())
      return absl::Status(st.code(), absl::StrCat(m.path(), ": GGUF tensor '", name, "': ", st.message()));
    const int64_t heads = a.permuted_qk ? hf.second : 0;
    if (heads > 0) {  // undo llama.cpp's Q/K row permutation (rows are output features)
      const int64_t rows = w.shape[0], cols = w.shape.size() > 1 ? w.shape[1] : 1;
      if (rows != heads * s.head_dim)
        return absl::InvalidArgumentError(absl::StrCat(m.path(), ": GGUF tensor '", name, "' has ", rows, " rows, not ",
                                                       heads, " heads x ", s.head_dim));
      std::vector<float> hf_rows(values.size());
      for (int64_t r = 0; r < rows; ++r)
        std::memcpy(&hf_rows[r * cols], &values[GgufRowOfHfRow(r, s.head_dim) * cols], cols * sizeof(float));
      values.swap(hf_rows);
    }
    w.bytes.resize(values.size() * sizeof(float));
    std::memcpy(w.bytes.data(), values.data(), w.bytes.size());
    out.push_back(std::move(w));
  }
  return out;
}

}  // namespace strata
