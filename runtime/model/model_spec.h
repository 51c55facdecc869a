// File: runtime/model/model_spec.h
// The one normalized description of a model that every other part of Strata reads.
// Both checkpoint families (gpt_neox incl. MLKV, llama incl. lckv-llama) reduce to this: dims,
// norms, rotary, residual form and, per layer, which layer's K/V it reads (`kv_source`).
// See ../shared/design/kv-sharing-semantics.md §6.1 for the per-layer fields.
#pragma once

#include <string>
#include <vector>

#include "runtime/base/dtype.h"

namespace strata {

enum class Family { kGptNeox, kLlama };
enum class NormKind { kLayerNorm, kRmsNorm };
enum class Activation { kGeluErf, kGeluTanh, kSwiGlu };
// How a producer caches K (§6.1 kv_rope_mode): kPost caches rotated K; kRaw caches unrotated K and
// the producer rotates on read, so that MLKV consumers see unrotated keys (§1.4, decision (a)).
enum class KvRopeMode { kPost, kRaw };
// gpt_neox checkpoints store either one fused [H,3,hs] query_key_value tensor (stock Pythia) or
// separate query/key/value tensors (MLKV checkpoints).
enum class QkvLayout { kSeparate, kFusedNeox };

struct LayerSpec {
  int kv_source = 0;       // root producer whose bank this layer reads
  bool is_producer = false;  // some layer reads this layer's K/V: it owns K/V weights and a bank
  int window = 0;          // sliding window in tokens; 0 = full attention
  bool mask_diag = false;  // the current token's own slot is excluded (§2.3 v2 rule)
  int num_kv_heads = 0;    // KV heads of the bank it reads (equal to its producer's)
  KvRopeMode rope_mode = KvRopeMode::kPost;  // meaningful for producers

  bool upward(int layer) const { return kv_source > layer; }
};

// config.json's rope_scaling (Hugging Face's rope_type), applied to the rotary inverse
// frequencies once (RopeInverseFrequencies). "dynamic" (NTK) scales only sequences longer than
// max_position_embeddings, which Strata never admits, so the config reader reads it as none.
struct RopeScaling {
  enum Type { kNone, kLinear, kLlama3, kYarn } type = kNone;
  double factor = 1;
  int original_max_position_embeddings = 0;  // llama3 and yarn
  double low_freq_factor = 1, high_freq_factor = 4;  // llama3
  double beta_fast = 32, beta_slow = 1;              // yarn
  double attention_factor = 0;                       // yarn: cos/sin scale; 0: 0.1 ln(factor) + 1
};

struct ModelSpec {
  Family family = Family::kLlama;
  std::string model_type;  // as written in config.json
  int num_layers = 0;
  int hidden_size = 0;
  int num_heads = 0;
  int head_dim = 0;
  int intermediate_size = 0;
  int vocab_size = 0;
  int max_position_embeddings = 0;

  NormKind norm = NormKind::kRmsNorm;
  float norm_eps = 1e-6f;
  Activation activation = Activation::kSwiGlu;
  bool parallel_residual = false;
  bool attention_bias = false;         // the q/k/v projections carry biases
  bool attention_output_bias = false;  // and the o projection (llama's attention_bias, gpt_neox; not qwen2)
  bool mlp_bias = false;
  QkvLayout qkv_layout = QkvLayout::kSeparate;
  int rotary_dims = 0;  // leading dims of each head that get RoPE
  float rope_theta = 10000.f;
  RopeScaling rope_scaling;
  // A GGUF file's rope_freqs.weight (Llama 3.1's scaling as llama.cpp stores it): each inverse
  // frequency is divided by its factor, after rope_scaling. Empty: none.
  std::vector<double> rope_freq_factors;
  bool tie_word_embeddings = false;

  // LCKV iterative prefill (§2.4).
  int forward_passes = 7;
  int backward_passes = 2;
  bool use_sequential = false;

  DType torch_dtype = DType::kF32;
  std::vector<int> eos_token_ids;  // generation stops at any of these unless told otherwise
  // generation_config.json's sampling defaults for requests that leave them out (< 0: none).
  double default_temperature = -1, default_top_p = -1;
  int default_top_k = -1;
  std::vector<LayerSpec> layers;

  // Layers that own a KV bank, ascending.
  std::vector<int> Producers() const;
  // Layers reading `producer`'s bank (the producer included), ascending.
  std::vector<int> Readers(int producer) const;
  bool HasUpwardEdges() const;
  int num_kv_heads_max() const;
};

// Resolves chains to root producers, derives is_producer, and enforces the invariants of
// decision (d)/(e): equal KV heads, a window no larger than the producer's, no full-attention
// reader of a sliding-window producer, no cycles. `where` prefixes error messages (e.g. the
// config path). `raw_sources` are the per-layer indices as written in the config.
// On success fills spec->layers[*].kv_source / is_producer / mask_diag / rope_mode.
struct LayerMapInput {
  std::vector<int> raw_sources;
  std::vector<int> windows;       // 0 = full
  std::vector<int> num_kv_heads;  // per layer, as configured
  bool force_nodiag = false;
  bool raw_rope_for_shared = false;  // gpt_neox/MLKV: groups with readers cache raw K
};
absl::Status BuildLayerMap(const LayerMapInput& in, const std::string& where, ModelSpec* spec);

// The MLKV producer list of §1.2: [0] + [int((i+1) * (L/m)) for i in range(m-1)].
std::vector<int> MlkvProducerLayers(int num_layers, int num_kv_layers);

// LCKV iteration plan (§2.4): maximal runs of layers, each run once, or a cyclic block run
// forward_passes + backward_passes times.
struct PlanSegment {
  int first_layer;
  int last_layer;  // inclusive
  bool cyclic;
};
std::vector<PlanSegment> IterationPlan(const ModelSpec& spec);

// The rotary inverse frequencies theta^(-2i/rotary_dims), i < rotary_dims / 2, after
// rope_scaling (Hugging Face's _compute_*_parameters), and the factor cos and sin are scaled by
// (1 except for yarn).
std::vector<double> RopeInverseFrequencies(const ModelSpec& spec);
double RopeAttentionFactor(const ModelSpec& spec);

// The exact "layer_types" string of a spec (e.g. "0s_1s_2_2"), for logs and tests.
std::string LayerTypesString(const ModelSpec& spec);

}  // namespace strata
