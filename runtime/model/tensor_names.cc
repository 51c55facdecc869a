#include "runtime/model/tensor_names.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace strata {

LayerTensorNames LayerNames(const ModelSpec& s, int l) {
  LayerTensorNames n;
  const bool producer = s.layers[l].is_producer;
  if (s.family == Family::kGptNeox) {
    const std::string p = absl::StrCat("gpt_neox.layers.", l, ".");
    if (s.qkv_layout == QkvLayout::kFusedNeox) {
      n.qkv_w = p + "attention.query_key_value.weight";
      n.qkv_b = p + "attention.query_key_value.bias";
    } else {
      n.q_w = p + "attention.query.weight";
      n.q_b = p + "attention.query.bias";
      if (producer) {
        n.k_w = p + "attention.key.weight";
        n.k_b = p + "attention.key.bias";
        n.v_w = p + "attention.value.weight";
        n.v_b = p + "attention.value.bias";
      }
    }
    n.o_w = p + "attention.dense.weight";
    n.o_b = p + "attention.dense.bias";
    n.norm1_w = p + "input_layernorm.weight";
    n.norm1_b = p + "input_layernorm.bias";
    n.norm2_w = p + "post_attention_layernorm.weight";
    n.norm2_b = p + "post_attention_layernorm.bias";
    n.up_w = p + "mlp.dense_h_to_4h.weight";
    n.up_b = p + "mlp.dense_h_to_4h.bias";
    n.down_w = p + "mlp.dense_4h_to_h.weight";
    n.down_b = p + "mlp.dense_4h_to_h.bias";
    if (!s.attention_bias) n.qkv_b = n.q_b = n.k_b = n.v_b = "";
    if (!s.attention_output_bias) n.o_b = "";
    return n;
  }
  const std::string p = absl::StrCat("model.layers.", l, ".");
  n.q_w = p + "self_attn.q_proj.weight";
  if (producer) {
    n.k_w = p + "self_attn.k_proj.weight";
    n.v_w = p + "self_attn.v_proj.weight";
  }
  n.o_w = p + "self_attn.o_proj.weight";
  if (s.attention_bias) {
    n.q_b = p + "self_attn.q_proj.bias";
    if (producer) {
      n.k_b = p + "self_attn.k_proj.bias";
      n.v_b = p + "self_attn.v_proj.bias";
    }
  }
  if (s.attention_output_bias) n.o_b = p + "self_attn.o_proj.bias";
  n.norm1_w = p + "input_layernorm.weight";
  n.norm2_w = p + "post_attention_layernorm.weight";
  n.gate_w = p + "mlp.gate_proj.weight";
  n.up_w = p + "mlp.up_proj.weight";
  n.down_w = p + "mlp.down_proj.weight";
  if (s.mlp_bias) {
    n.up_b = p + "mlp.up_proj.bias";
    n.down_b = p + "mlp.down_proj.bias";
  }
  return n;
}

GlobalTensorNames GlobalNames(const ModelSpec& s) {
  GlobalTensorNames g;
  if (s.family == Family::kGptNeox) {
    g.embed = "gpt_neox.embed_in.weight";
    g.final_norm_w = "gpt_neox.final_layer_norm.weight";
    g.final_norm_b = "gpt_neox.final_layer_norm.bias";
    g.lm_head = s.tie_word_embeddings ? g.embed : "embed_out.weight";
  } else {
    g.embed = "model.embed_tokens.weight";
    g.final_norm_w = "model.norm.weight";
    g.lm_head = s.tie_word_embeddings ? g.embed : "lm_head.weight";
  }
  return g;
}

std::vector<TensorDecl> ExpectedTensors(const ModelSpec& s) {
  const int64_t h = s.hidden_size, q = int64_t{s.num_heads} * s.head_dim, i = s.intermediate_size;
  std::vector<TensorDecl> out;
  auto add = [&](const std::string& name, std::vector<int64_t> shape) {
    if (!name.empty()) out.push_back({name, std::move(shape)});
  };
  const GlobalTensorNames g = GlobalNames(s);
  add(g.embed, {s.vocab_size, h});
  for (int l = 0; l < s.num_layers; ++l) {
    const LayerTensorNames n = LayerNames(s, l);
    const int64_t kv = int64_t{s.layers[l].num_kv_heads} * s.head_dim;
    add(n.qkv_w, {3 * q, h});
    add(n.qkv_b, {3 * q});
    add(n.q_w, {q, h});
    add(n.q_b, {q});
    add(n.k_w, {kv, h});
    add(n.k_b, {kv});
    add(n.v_w, {kv, h});
    add(n.v_b, {kv});
    add(n.o_w, {h, q});
    add(n.o_b, {h});
    add(n.norm1_w, {h});
    add(n.norm1_b, {h});
    add(n.norm2_w, {h});
    add(n.norm2_b, {h});
    add(n.gate_w, {i, h});
    add(n.up_w, {i, h});
    add(n.up_b, {i});
    add(n.down_w, {h, i});
    add(n.down_b, {h});
  }
  add(g.final_norm_w, {h});
  add(g.final_norm_b, {h});
  if (!s.tie_word_embeddings) add(g.lm_head, {s.vocab_size, h});
  return out;
}

bool IsIgnorableTensor(const ModelSpec& s, const std::string& name) {
  if (absl::EndsWith(name, "attention.bias") || absl::EndsWith(name, "attention.masked_bias") ||
      absl::EndsWith(name, "rotary_emb.inv_freq"))
    return true;
  // K/V weights of reader layers (§6.1: consumers do not load K/V weights).
  for (int l = 0; l < s.num_layers; ++l) {
    if (s.layers[l].is_producer) continue;
    const std::string p = s.family == Family::kGptNeox ? absl::StrCat("gpt_neox.layers.", l, ".attention.")
                                                       : absl::StrCat("model.layers.", l, ".self_attn.");
    for (const char* kv : {"key.", "value.", "k_proj.", "v_proj."})
      if (absl::StartsWith(name, p + kv)) return true;
  }
  return false;
}

}  // namespace strata
