#include "runtime/model/gguf_checkpoint.h"

#include <cmath>
#include <cstring>
#include <map>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"
#include "runtime/base/status.h"
#include "runtime/model/ggml_blocks.h"
#include "runtime/model/safetensors.h"
#include "runtime/model/tensor_roles.h"

namespace strata {
namespace {

using json = nlohmann::json;
constexpr char kRopeFreqs[] = "rope_freqs.weight";

// The architectures read, with their Hugging Face model_type: llama (rotary pairs interleaved
// by llama.cpp, so Q and K rows are permuted), qwen2 (rotate-half as in transformers: not) and
// gptneox (rotate-half; the fused QKV's rows regrouped as [3, H, hs]).
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
  if (arch == "gptneox") return Arch{arch, "gpt_neox", "GPTNeoXForCausalLM", false};
  return absl::UnimplementedError(absl::StrCat(m.path(), ": GGUF general.architecture '", arch,
                                               "' is not supported yet (llama, qwen2 and gptneox are)"));
}

struct LlamaShape {
  int64_t heads = 0, kv_heads = 0, head_dim = 0, rotary = 0;
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
  ASSIGN_OR_RETURN(s.rotary, m.IntOr(p + "rope.dimension_count", s.head_dim));
  if (s.rotary <= 0 || s.rotary > s.head_dim || s.rotary % 2 != 0)
    return absl::InvalidArgumentError(absl::StrCat(m.path(), ": GGUF ", p, "rope.dimension_count ", s.rotary,
                                                   " is not an even number of dimensions up to the head's ", s.head_dim));
  if (s.rotary != s.head_dim && a.name != "gptneox")
    return absl::UnimplementedError(absl::StrCat(m.path(), ": GGUF ", p, "rope.dimension_count ", s.rotary,
                                                 " is not the head dimension ", s.head_dim,
                                                 " (partial rotary is not supported)"));
  return s;
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
  const bool neox = a.name == "gptneox";
  json c = {{"architectures", {a.hf_class}}, {"model_type", a.model_type}, {"torch_dtype", "float32"},
            {"num_attention_heads", s.heads}};
  for (const auto& [field, key] : {std::pair<const char*, const char*>{"hidden_size", "embedding_length"},
                                   {"num_hidden_layers", "block_count"},
                                   {"intermediate_size", "feed_forward_length"},
                                   {"max_position_embeddings", "context_length"}}) {
    ASSIGN_OR_RETURN(const int64_t v, m.Int(p + key));
    c[field] = v;
  }
  if (neox) {
    // Pythia's published config: exact GELU (llama.cpp's own graph uses the tanh form).
    c["hidden_act"] = "gelu";
    if (s.kv_heads != s.heads)
      return absl::InvalidArgumentError(absl::StrCat(m.path(), ": GGUF gptneox with ", s.kv_heads, " KV heads for ",
                                                     s.heads, " heads (GPT-NeoX has one per head)"));
    ASSIGN_OR_RETURN(c["layer_norm_eps"], m.Float(p + "attention.layer_norm_epsilon"));
    ASSIGN_OR_RETURN(c["use_parallel_residual"], m.BoolOr(p + "use_parallel_residual", true));
    c["rotary_pct"] = static_cast<double>(s.rotary) / static_cast<double>(s.head_dim);
    ASSIGN_OR_RETURN(c["rotary_emb_base"], m.FloatOr(p + "rope.freq_base", 10000.0));
    c["attention_bias"] = m.HasTensor("blk.0.attn_qkv.bias");
  } else {
    c["hidden_act"] = "silu";
    c["num_key_value_heads"] = s.kv_heads;
    c["head_dim"] = s.head_dim;
    ASSIGN_OR_RETURN(const double eps, m.Float(p + "attention.layer_norm_rms_epsilon"));
    c["rms_norm_eps"] = eps;
    ASSIGN_OR_RETURN(c["rope_theta"], m.FloatOr(p + "rope.freq_base", 10000.0));
    if (a.name == "llama") c["attention_bias"] = m.HasTensor("blk.0.attn_q.bias");
  }
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
  for (const auto& [field, key] : {std::pair<const char*, const char*>{"bos_token_id", "tokenizer.ggml.bos_token_id"},
                                   {"eos_token_id", "tokenizer.ggml.eos_token_id"}})
    if (m.Has(key)) {
      ASSIGN_OR_RETURN(const int64_t v, m.Int(key));
      c[field] = v;
    }
  return c.dump(2);
}

absl::Status CompleteSpecFromGguf(const GgufModel& m, ModelSpec* spec) {
  ASSIGN_OR_RETURN(const Arch a, ReadArch(m));
  ASSIGN_OR_RETURN(const LlamaShape s, ReadLlamaShape(m, a));
  spec->rotary_dims = static_cast<int>(s.rotary);  // exactly, not through config.json's rotary_pct
  if (!m.HasTensor(kRopeFreqs)) return absl::OkStatus();
  ASSIGN_OR_RETURN(const GgufTensorInfo* t, m.Tensor(kRopeFreqs));
  const int64_t want = spec->rotary_dims / 2;
  if (t->ggml_type != 0 || t->ne.size() != 1 || t->ne[0] != want)
    return absl::InvalidArgumentError(absl::StrCat(m.path(), ": GGUF tensor '", kRopeFreqs, "' must be F32 [", want,
                                                   "] (one factor per rotary frequency), not ",
                                                   GgmlTypeName(t->ggml_type), " ", ShapeString(t->torch_shape())));
  const float* f = reinterpret_cast<const float*>(m.Data(*t));
  spec->rope_freq_factors.assign(f, f + want);
  for (double x : spec->rope_freq_factors)
    if (!(x > 0) || !std::isfinite(x))
      return absl::InvalidArgumentError(absl::StrCat(m.path(), ": GGUF tensor '", kRopeFreqs, "' holds ", x,
                                                     " (factors must be positive and finite)"));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<GgufTensorAsHf>> GgufTensorsAsHf(const GgufModel& m, const ModelSpec& spec) {
  ASSIGN_OR_RETURN(const Arch a, ReadArch(m));
  std::map<std::string, TensorDecl> by_gguf_name;
  for (TensorDecl& t : ExpectedTensors(spec))
    if (!t.gguf_name.empty()) by_gguf_name[t.gguf_name] = std::move(t);
  std::vector<GgufTensorAsHf> out;
  for (const std::string& name : m.TensorNames()) {
    if (name == kRopeFreqs) continue;  // read into the model's spec (CompleteSpecFromGguf)
    ASSIGN_OR_RETURN(const GgufTensorInfo* t, m.Tensor(name));
    auto it = by_gguf_name.find(name);
    if (it == by_gguf_name.end())
      return absl::UnimplementedError(absl::StrCat(m.path(), ": GGUF tensor '", name, "' has no place in a ",
                                                   a.name, " model of ", spec.num_layers, " layers"));
    const TensorDecl& d = it->second;
    const GgmlType* type = FindGgmlType(t->ggml_type);  // known: the reader checked
    if (!type->dequantizable)
      return absl::UnimplementedError(absl::StrCat(m.path(), ": GGUF tensor '", name, "' is ", type->name,
                                                   ", which Strata cannot load (F32, F16, BF16, Q8_0, Q4_0, Q4_1, "
                                                   "Q5_0, Q5_1, Q4_K, Q5_K and Q6_K it can)"));
    if (t->torch_shape() != d.shape)
      return absl::InvalidArgumentError(absl::StrCat(m.path(), ": GGUF tensor '", name, "' has shape ",
                                                     ShapeString(t->torch_shape()), ", expected ", ShapeString(d.shape),
                                                     " for ", d.name));
    GgufRows rows = d.role->gguf_rows;
    if (rows == GgufRows::kRotaryPairs && !a.permuted_qk) rows = GgufRows::kSame;
    out.push_back({t, d.name, d.shape, rows, spec.head_dim});
  }
  return out;
}

}  // namespace strata
