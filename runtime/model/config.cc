#include "runtime/model/config.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"
#include "runtime/base/status.h"
#include "runtime/model/gguf_checkpoint.h"
#include "runtime/model/gguf_file.h"

namespace strata {
namespace {

using json = nlohmann::json;

// Typed field access with messages naming the file and the field.
class Fields {
 public:
  Fields(const json& j, std::string path) : j_(j), path_(std::move(path)) {}

  absl::Status Error(const std::string& field, const std::string& what) const {
    return absl::InvalidArgumentError(absl::StrCat(path_, ": field '", field, "': ", what));
  }
  bool Has(const std::string& f) const { return j_.contains(f) && !j_.at(f).is_null(); }

  absl::StatusOr<int> Int(const std::string& f, std::optional<int> dflt, int min_value) const {
    if (!Has(f)) {
      if (dflt) return *dflt;
      return Error(f, "missing");
    }
    const json& v = j_.at(f);
    if (!v.is_number_integer()) return Error(f, absl::StrCat("expected an integer, got ", v.dump()));
    int64_t x = v.get<int64_t>();
    if (x < min_value || x > (1ll << 30))
      return Error(f, absl::StrCat("value ", x, " out of range (minimum ", min_value, ")"));
    return static_cast<int>(x);
  }
  absl::StatusOr<double> Number(const std::string& f, double dflt, double lo, double hi) const {
    if (!Has(f)) return dflt;
    const json& v = j_.at(f);
    if (!v.is_number()) return Error(f, absl::StrCat("expected a number, got ", v.dump()));
    double x = v.get<double>();
    if (!std::isfinite(x) || x < lo || x > hi)
      return Error(f, absl::StrCat("value ", x, " outside [", lo, ", ", hi, "]"));
    return x;
  }
  absl::StatusOr<bool> Bool(const std::string& f, bool dflt) const {
    if (!Has(f)) return dflt;
    const json& v = j_.at(f);
    if (!v.is_boolean()) return Error(f, absl::StrCat("expected true or false, got ", v.dump()));
    return v.get<bool>();
  }
  absl::StatusOr<std::string> String(const std::string& f, std::optional<std::string> dflt) const {
    if (!Has(f)) {
      if (dflt) return *dflt;
      return Error(f, "missing");
    }
    const json& v = j_.at(f);
    if (!v.is_string()) return Error(f, absl::StrCat("expected a string, got ", v.dump()));
    return v.get<std::string>();
  }
  const json& Raw(const std::string& f) const { return j_.at(f); }
  const std::string& path() const { return path_; }

 private:
  const json& j_;
  std::string path_;
};

absl::Status ReadCommonDims(const Fields& f, ModelSpec* s) {
  ASSIGN_OR_RETURN(s->num_layers, f.Int("num_hidden_layers", std::nullopt, 1));
  ASSIGN_OR_RETURN(s->hidden_size, f.Int("hidden_size", std::nullopt, 1));
  ASSIGN_OR_RETURN(s->num_heads, f.Int("num_attention_heads", std::nullopt, 1));
  ASSIGN_OR_RETURN(s->intermediate_size, f.Int("intermediate_size", std::nullopt, 1));
  ASSIGN_OR_RETURN(s->vocab_size, f.Int("vocab_size", std::nullopt, 1));
  ASSIGN_OR_RETURN(s->max_position_embeddings, f.Int("max_position_embeddings", 2048, 1));
  if (f.Has("head_dim")) {
    ASSIGN_OR_RETURN(s->head_dim, f.Int("head_dim", std::nullopt, 1));
  } else {
    if (s->hidden_size % s->num_heads != 0)
      return f.Error("hidden_size", absl::StrCat(s->hidden_size, " is not a multiple of ",
                                                 "num_attention_heads ", s->num_heads));
    s->head_dim = s->hidden_size / s->num_heads;
  }
  if (f.Has("eos_token_id")) {
    const json& e = f.Raw("eos_token_id");
    for (const json& v : e.is_array() ? e : json::array({e})) {
      if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= s->vocab_size)
        return f.Error("eos_token_id", absl::StrCat(v.dump(), " is not a token id below vocab_size"));
      s->eos_token_ids.push_back(v.get<int>());
    }
  }
  if (f.Has("torch_dtype")) {
    ASSIGN_OR_RETURN(std::string d, f.String("torch_dtype", std::nullopt));
    auto dt = ParseDTypeName(d);
    if (!dt.ok()) return f.Error("torch_dtype", std::string(dt.status().message()));
    s->torch_dtype = *dt;
  }
  return absl::OkStatus();
}

// rope_scaling: {"rope_type" (or "type"): linear | llama3 | yarn, "factor", ...}. Anything else
// changes the math in a way Strata does not do, and is refused by name.
absl::Status ReadRopeScaling(const Fields& f, ModelSpec* s) {
  if (!f.Has("rope_scaling")) return absl::OkStatus();
  const json& r = f.Raw("rope_scaling");
  if (!r.is_object()) return f.Error("rope_scaling", "must be an object");
  const std::string type = r.contains("rope_type") ? r.value("rope_type", "") : r.value("type", "");
  auto number = [&](const char* key, double dflt) -> absl::StatusOr<double> {
    if (!r.contains(key) || r[key].is_null()) return dflt;
    if (!r[key].is_number()) return f.Error("rope_scaling", absl::StrCat("'", key, "' must be a number"));
    return r[key].get<double>();
  };
  RopeScaling& out = s->rope_scaling;
  if (type == "default") return absl::OkStatus();
  if (type == "linear") out.type = RopeScaling::kLinear;
  else if (type == "llama3") out.type = RopeScaling::kLlama3;
  else if (type == "yarn") out.type = RopeScaling::kYarn;
  else if (type == "dynamic") {
    // transformers' dynamic NTK scaling (_compute_dynamic_ntk_parameters) multiplies the rotary
    // base by ((factor * L / max_position_embeddings) - (factor - 1)) ^ (dim / (dim - 2)) with
    // L = max(sequence length, max_position_embeddings): 1 for every sequence up to
    // max_position_embeddings, the longest Strata admits. So within what Strata serves the
    // frequencies are the unscaled ones, exactly; only the factor is checked.
    ASSIGN_OR_RETURN(const double factor, number("factor", 0));
    if (!(factor >= 1)) return f.Error("rope_scaling", "'factor' must be a number >= 1");
    return absl::OkStatus();
  } else
    return f.Error("rope_scaling", absl::StrCat("rope_type '", type, "' is not supported (linear, llama3, yarn are)"));
  ASSIGN_OR_RETURN(out.factor, number("factor", 0));
  if (!(out.factor >= 1)) return f.Error("rope_scaling", "'factor' must be a number >= 1");
  ASSIGN_OR_RETURN(double original, number("original_max_position_embeddings",
                                           out.type == RopeScaling::kYarn ? s->max_position_embeddings : 0));
  out.original_max_position_embeddings = static_cast<int>(original);
  if (out.type != RopeScaling::kLinear && out.original_max_position_embeddings < 1)
    return f.Error("rope_scaling", "'original_max_position_embeddings' is required");
  ASSIGN_OR_RETURN(out.low_freq_factor, number("low_freq_factor", 1));
  ASSIGN_OR_RETURN(out.high_freq_factor, number("high_freq_factor", 4));
  if (out.type == RopeScaling::kLlama3 && !(out.high_freq_factor > out.low_freq_factor))
    return f.Error("rope_scaling", "'high_freq_factor' must exceed 'low_freq_factor'");
  ASSIGN_OR_RETURN(out.beta_fast, number("beta_fast", 32));
  ASSIGN_OR_RETURN(out.beta_slow, number("beta_slow", 1));
  ASSIGN_OR_RETURN(out.attention_factor, number("attention_factor", 0));
  for (const char* key : {"mscale", "mscale_all_dim", "short_factor", "long_factor"})
    if (r.contains(key) && !r[key].is_null())
      return f.Error("rope_scaling", absl::StrCat("'", key, "' is not supported"));
  return absl::OkStatus();
}

// config.json fields that change a model's math in ways Strata does not implement, each with the
// value that means "off". A field missing, null or at that value is fine; anything else is refused
// by name rather than served wrong. Fields Strata reads are checked where they are read; all other
// fields (architectures, torch_dtype, transformers_version, use_cache, bos/pad_token_id,
// initializer_range, *_dropout, pretraining_tp, ...) do not change inference and are ignored.
absl::Status RefuseUnsupportedMath(const Fields& f, const ModelSpec& s) {
  struct Unsupported {
    const char* field;
    json off;  // the value that leaves the math unchanged
    const char* what;
  };
  const Unsupported table[] = {
      {"attn_logit_softcapping", json(), "attention logit soft-capping (Gemma 2)"},
      {"final_logit_softcapping", json(), "final logit soft-capping (Gemma 2)"},
      {"partial_rotary_factor", json(1.0), "rotary embeddings on part of each head"},
      {"use_qk_norm", json(false), "normalization of queries and keys"},
      {"qk_layernorm", json(false), "normalization of queries and keys"},
      {"use_sliding_window", json(false), "sliding-window attention outside lckv-llama's layer_types"},
      {"embedding_multiplier", json(1.0), "scaled embeddings (Granite)"},
      {"residual_multiplier", json(1.0), "scaled residuals (Granite)"},
      {"attention_multiplier", json(), "a custom attention scale (Granite)"},
      {"logits_scaling", json(1.0), "scaled logits (Granite)"},
      {"logit_scale", json(1.0), "scaled logits"},
      {"use_bias", json(false), "biases on every linear layer"},
  };
  for (const Unsupported& u : table) {
    if (!f.Has(u.field)) continue;
    const json& v = f.Raw(u.field);
    const bool off = u.off.is_number() && v.is_number() ? v.get<double>() == u.off.get<double>() : v == u.off;
    if (!off)
      return f.Error(u.field, absl::StrCat(v.dump(), " asks for ", u.what, ", which Strata does not implement"));
  }
  // Gemma 2 scales attention by query_pre_attn_scalar**-0.5; equal to head_dim it is the usual scale.
  if (f.Has("query_pre_attn_scalar")) {
    const json& v = f.Raw("query_pre_attn_scalar");
    if (!v.is_number() || v.get<double>() != s.head_dim)
      return f.Error("query_pre_attn_scalar", absl::StrCat(v.dump(), " differs from head_dim ", s.head_dim,
                                                           ": a custom attention scale is not supported"));
  }
  return absl::OkStatus();
}

absl::StatusOr<ModelSpec> ParseGptNeox(const Fields& f, const std::string& model_type) {
  ModelSpec s;
  s.family = Family::kGptNeox;
  s.model_type = model_type;
  RETURN_IF_ERROR(ReadCommonDims(f, &s));
  s.norm = NormKind::kLayerNorm;
  ASSIGN_OR_RETURN(double eps, f.Number("layer_norm_eps", 1e-5, 0, 1));
  s.norm_eps = static_cast<float>(eps);
  ASSIGN_OR_RETURN(std::string act, f.String("hidden_act", std::string("gelu")));
  if (act == "gelu") {
    s.activation = Activation::kGeluErf;
  } else if (act == "gelu_new" || act == "gelu_fast" || act == "gelu_pytorch_tanh") {
    s.activation = Activation::kGeluTanh;
  } else {
    return f.Error("hidden_act", absl::StrCat("unsupported activation '", act, "' for gpt_neox"));
  }
  ASSIGN_OR_RETURN(s.parallel_residual, f.Bool("use_parallel_residual", true));
  ASSIGN_OR_RETURN(s.attention_bias, f.Bool("attention_bias", true));
  s.attention_output_bias = s.attention_bias;
  s.mlp_bias = true;
  ASSIGN_OR_RETURN(s.tie_word_embeddings, f.Bool("tie_word_embeddings", false));
  ASSIGN_OR_RETURN(double pct, f.Number("rotary_pct", 0.25, 0, 1));
  s.rotary_dims = static_cast<int>(s.head_dim * pct);  // int(head_size * rotary_pct), §1.1
  if (s.rotary_dims % 2 != 0)
    return f.Error("rotary_pct", absl::StrCat("gives an odd number of rotary dims (", s.rotary_dims, ")"));
  ASSIGN_OR_RETURN(double base, f.Number("rotary_emb_base", 10000, 1, 1e12));
  s.rope_theta = static_cast<float>(base);
  RETURN_IF_ERROR(ReadRopeScaling(f, &s));
  ASSIGN_OR_RETURN(bool kv_mlp, f.Bool("use_key_value_mlp", false));
  if (kv_mlp) return f.Error("use_key_value_mlp", "the MLKV key/value MLP variant is not supported");

  // MLKV (§1.1): missing fields mean "no sharing", never the class defaults 44/64.
  const bool mlkv = f.Has("num_key_value_layers") || f.Has("num_key_value_heads");
  ASSIGN_OR_RETURN(int m, f.Int("num_key_value_layers", s.num_layers, 1));
  ASSIGN_OR_RETURN(int g, f.Int("num_key_value_heads", s.num_heads, 1));
  if (m > s.num_layers)
    return f.Error("num_key_value_layers",
                   absl::StrCat(m, " exceeds num_hidden_layers ", s.num_layers));
  s.qkv_layout = mlkv ? QkvLayout::kSeparate : QkvLayout::kFusedNeox;

  LayerMapInput in;
  std::vector<int> producers = MlkvProducerLayers(s.num_layers, m);
  for (int l = 0; l < s.num_layers; ++l) {
    int src = 0;
    for (int p : producers)
      if (p <= l) src = p;  // kv_source(l) = max{p in KVL : p <= l}
    in.raw_sources.push_back(src);
  }
  in.windows.assign(s.num_layers, 0);
  in.num_kv_heads.assign(s.num_layers, g);
  in.raw_rope_for_shared = true;
  RETURN_IF_ERROR(BuildLayerMap(in, f.path(), &s));
  return s;
}

absl::StatusOr<ModelSpec> ParseLlama(const Fields& f, const std::string& model_type) {
  ModelSpec s;
  s.family = Family::kLlama;
  s.model_type = model_type;
  RETURN_IF_ERROR(ReadCommonDims(f, &s));
  s.norm = NormKind::kRmsNorm;
  ASSIGN_OR_RETURN(double eps, f.Number("rms_norm_eps", 1e-6, 0, 1));
  s.norm_eps = static_cast<float>(eps);
  ASSIGN_OR_RETURN(std::string act, f.String("hidden_act", std::string("silu")));
  if (act != "silu") return f.Error("hidden_act", absl::StrCat("unsupported activation '", act, "' for llama"));
  s.activation = Activation::kSwiGlu;
  s.parallel_residual = false;
  ASSIGN_OR_RETURN(s.attention_bias, f.Bool("attention_bias", false));
  s.attention_output_bias = s.attention_bias;
  if (model_type == "qwen2") {  // Qwen 2: llama with q/k/v biases (always) and none on o_proj
    ASSIGN_OR_RETURN(const bool sliding, f.Bool("use_sliding_window", false));
    if (sliding) return f.Error("use_sliding_window", "true is not supported for qwen2");
    s.attention_bias = true;
    s.attention_output_bias = false;
  }
  ASSIGN_OR_RETURN(s.mlp_bias, f.Bool("mlp_bias", false));
  // The weight loader has no llama MLP biases (runtime/weights.cc): refuse here, by name, before
  // any weights are read.
  if (s.mlp_bias) return f.Error("mlp_bias", "true is not supported for llama (biases on the MLP projections)");
  ASSIGN_OR_RETURN(s.tie_word_embeddings, f.Bool("tie_word_embeddings", false));
  ASSIGN_OR_RETURN(double theta, f.Number("rope_theta", 10000, 1, 1e12));
  s.rope_theta = static_cast<float>(theta);
  s.rotary_dims = s.head_dim;
  if (s.head_dim % 2 != 0) return f.Error("head_dim", "must be even for rotary embeddings");
  RETURN_IF_ERROR(ReadRopeScaling(f, &s));
  s.qkv_layout = QkvLayout::kSeparate;

  LayerMapInput in;
  // num_key_value_heads: one integer, or one per layer.
  if (f.Has("num_key_value_heads") && f.Raw("num_key_value_heads").is_array()) {
    const json& a = f.Raw("num_key_value_heads");
    if (static_cast<int>(a.size()) != s.num_layers)
      return f.Error("num_key_value_heads", absl::StrCat("has ", a.size(), " entries, expected ",
                                                         s.num_layers));
    for (const json& v : a) {
      if (!v.is_number_integer() || v.get<int64_t>() < 1)
        return f.Error("num_key_value_heads", absl::StrCat("entry ", v.dump(), " is not a positive integer"));
      in.num_kv_heads.push_back(v.get<int>());
    }
  } else {
    ASSIGN_OR_RETURN(int g, f.Int("num_key_value_heads", s.num_heads, 1));
    in.num_kv_heads.assign(s.num_layers, g);
  }

  ASSIGN_OR_RETURN(int window, f.Int("sliding_window", 4096, 1));
  ASSIGN_OR_RETURN(s.forward_passes, f.Int("forward_passes", 7, 1));
  ASSIGN_OR_RETURN(s.backward_passes, f.Int("backward_passes", 2, 1));
  ASSIGN_OR_RETURN(s.use_sequential, f.Bool("use_sequential", false));
  ASSIGN_OR_RETURN(in.force_nodiag, f.Bool("force_nodiag", false));

  if (f.Has("layer_types")) {
    ASSIGN_OR_RETURN(std::string lt, f.String("layer_types", std::nullopt));
    auto entries = ParseLayerTypes(lt);
    if (!entries.ok()) return f.Error("layer_types", std::string(entries.status().message()));
    if (static_cast<int>(entries->size()) != s.num_layers)
      return f.Error("layer_types", absl::StrCat("has ", entries->size(),
                                                 " entries, num_hidden_layers is ", s.num_layers));
    for (int l = 0; l < s.num_layers; ++l) {
      const auto& e = (*entries)[l];
      if (e.source < 0 || e.source >= s.num_layers)
        return f.Error("layer_types", absl::StrCat("layer ", l, " reads layer ", e.source,
                                                   ", outside 0..", s.num_layers - 1));
      in.raw_sources.push_back(e.source);
      in.windows.push_back(e.sliding ? window : 0);
    }
  } else {
    for (int l = 0; l < s.num_layers; ++l) in.raw_sources.push_back(l);
    in.windows.assign(s.num_layers, 0);
  }
  RETURN_IF_ERROR(BuildLayerMap(in, absl::StrCat(f.path(), ": field 'layer_types'"), &s));
  return s;
}

}  // namespace

absl::StatusOr<std::vector<LayerTypeEntry>> ParseLayerTypes(const std::string& s) {
  std::vector<LayerTypeEntry> out;
  int index = 0;
  for (absl::string_view tok : absl::StrSplit(s, '_')) {
    std::string t(tok);
    bool sliding = !t.empty() && t.back() == 's';
    if (sliding) t.pop_back();
    int v = -1;
    bool digits = !t.empty() && t.size() <= 9 &&
                  t.find_first_not_of("0123456789") == std::string::npos;
    if (!digits || !absl::SimpleAtoi(t, &v))
      return absl::InvalidArgumentError(absl::StrCat("entry ", index, " '", tok,
                                                     "' is not a layer index with an optional 's'"));
    out.push_back({v, sliding});
    ++index;
  }
  return out;
}

absl::StatusOr<ModelSpec> ParseModelConfig(const std::string& json_text, const std::string& path) {
  json j = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError(absl::StrCat(path, ": not valid JSON"));
  if (!j.is_object()) return absl::InvalidArgumentError(absl::StrCat(path, ": not a JSON object"));
  Fields f(j, path);
  ASSIGN_OR_RETURN(std::string model_type, f.String("model_type", std::nullopt));
  absl::StatusOr<ModelSpec> spec;
  if (model_type == "gpt_neox" || model_type == "gpt_neox_mlkv") {
    spec = ParseGptNeox(f, model_type);
  } else if (model_type == "llama" || model_type == "lckv-llama" || model_type == "qwen2") {
    spec = ParseLlama(f, model_type);
  } else {
    return f.Error("model_type", absl::StrCat("unsupported '", model_type,
                                              "' (Strata reads gpt_neox, llama, lckv-llama, qwen2)"));
  }
  if (!spec.ok()) return spec.status();
  if (spec->num_heads * spec->head_dim <= 0) return f.Error("head_dim", "invalid");
  RETURN_IF_ERROR(RefuseUnsupportedMath(f, *spec));
  return spec;
}

// generation_config.json, when the checkpoint has one: more end-of-sequence ids (Llama 3 lists
// several) and the sampling defaults requests fall back to (vLLM's --generation-config auto).
absl::Status ReadGenerationConfig(const std::string& path, ModelSpec* spec) {
  std::ifstream in(path);
  if (!in) return absl::OkStatus();
  std::stringstream ss;
  ss << in.rdbuf();
  const json g = json::parse(ss.str(), nullptr, false);
  if (g.is_discarded() || !g.is_object()) return absl::InvalidArgumentError(absl::StrCat(path, ": not a JSON object"));
  auto bad = [&](const char* field, const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": field '", field, "': ", what));
  };
  if (g.contains("eos_token_id") && !g["eos_token_id"].is_null()) {
    const json& e = g["eos_token_id"];
    for (const json& v : e.is_array() ? e : json::array({e})) {
      if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= spec->vocab_size)
        return bad("eos_token_id", absl::StrCat(v.dump(), " is not a token id below vocab_size"));
      if (std::find(spec->eos_token_ids.begin(), spec->eos_token_ids.end(), v.get<int>()) == spec->eos_token_ids.end())
        spec->eos_token_ids.push_back(v.get<int>());
    }
  }
  auto number = [&](const char* field, double lo, double hi, double* out) -> absl::Status {
    if (!g.contains(field) || g[field].is_null()) return absl::OkStatus();
    if (!g[field].is_number() || !(g[field].get<double>() >= lo && g[field].get<double>() <= hi))
      return bad(field, absl::StrCat("expected a number in [", lo, ", ", hi, "], got ", g[field].dump()));
    *out = g[field].get<double>();
    return absl::OkStatus();
  };
  // do_sample false means greedy, whatever temperature says (transformers' rule).
  const bool sample = !g.contains("do_sample") || !g["do_sample"].is_boolean() || g["do_sample"].get<bool>();
  RETURN_IF_ERROR(number("temperature", 0, 100, &spec->default_temperature));
  if (!sample && g.contains("do_sample")) spec->default_temperature = 0;
  RETURN_IF_ERROR(number("top_p", 1e-9, 1, &spec->default_top_p));
  double top_k = -1;
  RETURN_IF_ERROR(number("top_k", 0, 1e9, &top_k));
  if (top_k >= 0) spec->default_top_k = static_cast<int>(top_k);
  return absl::OkStatus();
}

absl::StatusOr<ModelSpec> ModelSpecFromGguf(const GgufModel& gguf) {
  // The config.json its metadata amounts to, and what config.json cannot say.
  ASSIGN_OR_RETURN(const std::string config, ConfigJsonFromGguf(gguf));
  ASSIGN_OR_RETURN(ModelSpec spec, ParseModelConfig(config, gguf.path()));
  RETURN_IF_ERROR(CompleteSpecFromGguf(gguf, &spec));
  return spec;
}

absl::StatusOr<ModelSpec> LoadModelConfig(const std::string& model_dir) {
  if (IsGgufPath(model_dir)) {
    ASSIGN_OR_RETURN(const GgufModel gguf, GgufModel::Open(model_dir));
    return ModelSpecFromGguf(gguf);
  }
  const std::string path = model_dir + "/config.json";
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::stringstream ss;
  ss << in.rdbuf();
  ASSIGN_OR_RETURN(ModelSpec spec, ParseModelConfig(ss.str(), path));
  RETURN_IF_ERROR(ReadGenerationConfig(model_dir + "/generation_config.json", &spec));
  return spec;
}

}  // namespace strata
