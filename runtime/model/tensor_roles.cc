#include "runtime/model/tensor_roles.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace strata {
namespace {

using L = const LayerSpec&;
using S = const ModelSpec&;
bool Always(S, L) { return true; }
bool Producer(S, L l) { return l.is_producer; }
bool Untied(S s, L) { return !s.tie_word_embeddings; }
bool AttentionBias(S s, L) { return s.attention_bias; }
bool ProducerAttentionBias(S s, L l) { return s.attention_bias && l.is_producer; }
bool OutputBias(S s, L) { return s.attention_output_bias; }
bool MlpBias(S s, L) { return s.mlp_bias; }
bool Fused(S s, L) { return s.qkv_layout == QkvLayout::kFusedNeox; }
bool FusedBias(S s, L) { return s.qkv_layout == QkvLayout::kFusedNeox && s.attention_bias; }
bool Separate(S s, L) { return s.qkv_layout == QkvLayout::kSeparate; }
bool SeparateBias(S s, L) { return s.qkv_layout == QkvLayout::kSeparate && s.attention_bias; }
bool SeparateProducer(S s, L l) { return s.qkv_layout == QkvLayout::kSeparate && l.is_producer; }
bool SeparateProducerBias(S s, L l) { return SeparateProducer(s, l) && s.attention_bias; }

using D = Dim;
using T = TpSplit;
using W = WeightSlot;
using G = GgufRows;

// Llama and the families that load as it (qwen2, mistral, lckv-llama). Table order is the order
// a checkpoint is written in, and the order roles sharing a buffer are joined in.
const TensorRole kLlama[] = {
    {false, "model.embed_tokens.weight", "token_embd.weight", D::kVocab, D::kHidden, T::kVocabRows, W::kEmbed, G::kSame, Always},
    {true, "self_attn.q_proj.weight", "attn_q.weight", D::kQuery, D::kHidden, T::kQueryRows, W::kQ, G::kRotaryPairs, Always},
    {true, "self_attn.q_proj.bias", "attn_q.bias", D::kQuery, D::kOne, T::kQueryRows, W::kQBias, G::kRotaryPairs, AttentionBias},
    {true, "self_attn.k_proj.weight", "attn_k.weight", D::kKv, D::kHidden, T::kKvRows, W::kK, G::kRotaryPairs, Producer},
    {true, "self_attn.k_proj.bias", "attn_k.bias", D::kKv, D::kOne, T::kKvRows, W::kKBias, G::kRotaryPairs, ProducerAttentionBias},
    {true, "self_attn.v_proj.weight", "attn_v.weight", D::kKv, D::kHidden, T::kKvRows, W::kV, G::kSame, Producer},
    {true, "self_attn.v_proj.bias", "attn_v.bias", D::kKv, D::kOne, T::kKvRows, W::kVBias, G::kSame, ProducerAttentionBias},
    {true, "self_attn.o_proj.weight", "attn_output.weight", D::kHidden, D::kQuery, T::kQueryCols, W::kO, G::kSame, Always},
    {true, "self_attn.o_proj.bias", "attn_output.bias", D::kHidden, D::kOne, T::kWhole, W::kOBias, G::kSame, OutputBias},
    {true, "input_layernorm.weight", "attn_norm.weight", D::kHidden, D::kOne, T::kWhole, W::kNorm1, G::kSame, Always},
    {true, "post_attention_layernorm.weight", "ffn_norm.weight", D::kHidden, D::kOne, T::kWhole, W::kNorm2, G::kSame, Always},
    // SwiGLU's gate and up share one [2I, hidden] buffer, gate first.
    {true, "mlp.gate_proj.weight", "ffn_gate.weight", D::kMlp, D::kHidden, T::kMlpRows, W::kUp, G::kSame, Always},
    {true, "mlp.up_proj.weight", "ffn_up.weight", D::kMlp, D::kHidden, T::kMlpRows, W::kUp, G::kSame, Always},
    {true, "mlp.gate_proj.bias", "ffn_gate.bias", D::kMlp, D::kOne, T::kMlpRows, W::kUpBias, G::kSame, MlpBias},
    {true, "mlp.up_proj.bias", "ffn_up.bias", D::kMlp, D::kOne, T::kMlpRows, W::kUpBias, G::kSame, MlpBias},
    {true, "mlp.down_proj.weight", "ffn_down.weight", D::kHidden, D::kMlp, T::kMlpCols, W::kDown, G::kSame, Always},
    {true, "mlp.down_proj.bias", "ffn_down.bias", D::kHidden, D::kOne, T::kWhole, W::kDownBias, G::kSame, MlpBias},
    {false, "model.norm.weight", "output_norm.weight", D::kHidden, D::kOne, T::kWhole, W::kFinalNorm, G::kSame, Always},
    {false, "lm_head.weight", "output.weight", D::kVocab, D::kHidden, T::kVocabRows, W::kLmHead, G::kSame, Untied},
};

// GPT-NeoX: stock Pythia's fused QKV, or MLKV's separate query/key/value (no GGUF names: llama.cpp
// writes only the fused form).
const TensorRole kGptNeox[] = {
    {false, "gpt_neox.embed_in.weight", "token_embd.weight", D::kVocab, D::kHidden, T::kVocabRows, W::kEmbed, G::kSame, Always},
    {true, "attention.query_key_value.weight", "attn_qkv.weight", D::kQkv, D::kHidden, T::kNeoxQkvRows, W::kQ, G::kNeoxQkv, Fused},
    {true, "attention.query_key_value.bias", "attn_qkv.bias", D::kQkv, D::kOne, T::kNeoxQkvRows, W::kQBias, G::kNeoxQkv, FusedBias},
    {true, "attention.query.weight", "", D::kQuery, D::kHidden, T::kQueryRows, W::kQ, G::kSame, Separate},
    {true, "attention.query.bias", "", D::kQuery, D::kOne, T::kQueryRows, W::kQBias, G::kSame, SeparateBias},
    {true, "attention.key.weight", "", D::kKv, D::kHidden, T::kKvRows, W::kK, G::kSame, SeparateProducer},
    {true, "attention.key.bias", "", D::kKv, D::kOne, T::kKvRows, W::kKBias, G::kSame, SeparateProducerBias},
    {true, "attention.value.weight", "", D::kKv, D::kHidden, T::kKvRows, W::kV, G::kSame, SeparateProducer},
    {true, "attention.value.bias", "", D::kKv, D::kOne, T::kKvRows, W::kVBias, G::kSame, SeparateProducerBias},
    {true, "attention.dense.weight", "attn_output.weight", D::kHidden, D::kQuery, T::kQueryCols, W::kO, G::kSame, Always},
    {true, "attention.dense.bias", "attn_output.bias", D::kHidden, D::kOne, T::kWhole, W::kOBias, G::kSame, OutputBias},
    {true, "input_layernorm.weight", "attn_norm.weight", D::kHidden, D::kOne, T::kWhole, W::kNorm1, G::kSame, Always},
    {true, "input_layernorm.bias", "attn_norm.bias", D::kHidden, D::kOne, T::kWhole, W::kNorm1Bias, G::kSame, Always},
    {true, "post_attention_layernorm.weight", "ffn_norm.weight", D::kHidden, D::kOne, T::kWhole, W::kNorm2, G::kSame, Always},
    {true, "post_attention_layernorm.bias", "ffn_norm.bias", D::kHidden, D::kOne, T::kWhole, W::kNorm2Bias, G::kSame, Always},
    {true, "mlp.dense_h_to_4h.weight", "ffn_up.weight", D::kMlp, D::kHidden, T::kMlpRows, W::kUp, G::kSame, Always},
    {true, "mlp.dense_h_to_4h.bias", "ffn_up.bias", D::kMlp, D::kOne, T::kMlpRows, W::kUpBias, G::kSame, Always},
    {true, "mlp.dense_4h_to_h.weight", "ffn_down.weight", D::kHidden, D::kMlp, T::kMlpCols, W::kDown, G::kSame, Always},
    {true, "mlp.dense_4h_to_h.bias", "ffn_down.bias", D::kHidden, D::kOne, T::kWhole, W::kDownBias, G::kSame, Always},
    {false, "gpt_neox.final_layer_norm.weight", "output_norm.weight", D::kHidden, D::kOne, T::kWhole, W::kFinalNorm, G::kSame, Always},
    {false, "gpt_neox.final_layer_norm.bias", "output_norm.bias", D::kHidden, D::kOne, T::kWhole, W::kFinalNormBias, G::kSame, Always},
    {false, "embed_out.weight", "output.weight", D::kVocab, D::kHidden, T::kVocabRows, W::kLmHead, G::kSame, Untied},
};

struct Family_ {
  const TensorRole* begin;
  const TensorRole* end;
  const char* layer_prefix;
};
Family_ TableOf(const ModelSpec& s) {
  if (s.family == Family::kGptNeox) return {std::begin(kGptNeox), std::end(kGptNeox), "gpt_neox.layers."};
  return {std::begin(kLlama), std::end(kLlama), "model.layers."};
}

int64_t Extent(const ModelSpec& s, int layer, Dim d) {
  const int64_t q = int64_t{s.num_heads} * s.head_dim;
  switch (d) {
    case Dim::kOne: return 1;
    case Dim::kHidden: return s.hidden_size;
    case Dim::kQuery: return q;
    case Dim::kKv: return int64_t{s.layers[layer].num_kv_heads} * s.head_dim;
    case Dim::kQkv: return 3 * q;
    case Dim::kMlp: return s.intermediate_size;
    case Dim::kVocab: return s.vocab_size;
  }
  return 0;
}

TensorDecl Declare(const ModelSpec& s, const TensorRole& r, int layer, const char* prefix) {
  TensorDecl t;
  t.role = &r;
  t.layer = layer;
  const std::string hf_prefix = layer < 0 ? "" : absl::StrCat(prefix, layer, ".");
  const std::string gguf_prefix = layer < 0 ? "" : absl::StrCat("blk.", layer, ".");
  t.name = hf_prefix + r.hf;
  if (*r.gguf != '\0') t.gguf_name = gguf_prefix + r.gguf;
  t.shape = {Extent(s, layer, r.rows)};
  if (r.cols != Dim::kOne) t.shape.push_back(Extent(s, layer, r.cols));
  return t;
}

}  // namespace

std::vector<TensorDecl> TensorsOf(const ModelSpec& s, int layer) {
  const Family_ f = TableOf(s);
  const LayerSpec none;
  std::vector<TensorDecl> out;
  for (const TensorRole* r = f.begin; r != f.end; ++r)
    if (r->per_layer == (layer >= 0) && r->present(s, layer >= 0 ? s.layers[layer] : none))
      out.push_back(Declare(s, *r, layer, f.layer_prefix));
  return out;
}

std::vector<TensorDecl> ExpectedTensors(const ModelSpec& s) {
  // The embedding first and the other globals last: the order checkpoints are written in.
  std::vector<TensorDecl> out, globals = TensorsOf(s, -1);
  for (const TensorDecl& g : globals)
    if (g.role->slot == WeightSlot::kEmbed) out.push_back(g);
  for (int l = 0; l < s.num_layers; ++l)
    for (TensorDecl& t : TensorsOf(s, l)) out.push_back(std::move(t));
  for (const TensorDecl& g : globals)
    if (g.role->slot != WeightSlot::kEmbed) out.push_back(g);
  return out;
}

bool IsIgnorableTensor(const ModelSpec& s, const std::string& name) {
  if (absl::EndsWith(name, "attention.bias") || absl::EndsWith(name, "attention.masked_bias") ||
      absl::EndsWith(name, "rotary_emb.inv_freq"))
    return true;
  // K/V weights of reader layers (§6.1: consumers do not load K/V weights): the roles a producer
  // of the same layer would have and the reader lacks.
  const Family_ f = TableOf(s);
  for (int l = 0; l < s.num_layers; ++l) {
    if (s.layers[l].is_producer) continue;
    LayerSpec as_producer = s.layers[l];
    as_producer.is_producer = true;
    for (const TensorRole* r = f.begin; r != f.end; ++r)
      if (r->per_layer && r->split == TpSplit::kKvRows && r->present(s, as_producer) &&
          name == absl::StrCat(f.layer_prefix, l, ".", r->hf))
        return true;
  }
  return false;
}

double LayerMatmulParams(const ModelSpec& s, int layer) {
  double params = 0;
  const double q = static_cast<double>(s.num_heads) * s.head_dim;
  for (const TensorDecl& t : TensorsOf(s, layer)) {
    if (!t.matrix()) continue;
    const double rows = static_cast<double>(t.shape[0]), cols = static_cast<double>(t.shape[1]);
    if (t.role->split == TpSplit::kNeoxQkvRows)  // Q always; K and V where the layer produces them
      params += (s.layers[layer].is_producer ? rows : q) * cols;
    else
      params += rows * cols;
  }
  return params;
}

}  // namespace strata
