#include "parallel/parallel_layout.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace strata {

absl::StatusOr<ParallelLayout> ParallelLayout::Create(const ModelSpec& spec, int tp, int pp) {
  if (tp < 1 || pp < 1) return absl::InvalidArgumentError("--tp and --pp must be at least 1");
  if (pp > spec.num_layers)
    return absl::InvalidArgumentError(absl::StrCat("--pp ", pp, " exceeds the ", spec.num_layers, " layers of the model"));
  if (spec.num_heads % tp != 0)
    return absl::InvalidArgumentError(
        absl::StrCat("--tp ", tp, " does not divide the ", spec.num_heads, " attention heads"));
  if (spec.intermediate_size % tp != 0)
    return absl::InvalidArgumentError(
        absl::StrCat("--tp ", tp, " does not divide the MLP width (intermediate_size ", spec.intermediate_size, ")"));
  for (int l = 0; l < spec.num_layers; ++l) {
    const int g = spec.layers[l].num_kv_heads;
    if (g < 1 || (g % tp != 0 && tp % g != 0))
      return absl::InvalidArgumentError(absl::StrCat("--tp ", tp, ": layer ", l, " has ", g,
                                                     " KV heads, which neither divide nor are divided by the TP degree"));
  }
  ParallelLayout p;
  p.topo_ = Topology{tp, pp};
  p.num_layers_ = spec.num_layers;
  p.num_heads_ = spec.num_heads;
  p.head_dim_ = spec.head_dim;
  p.intermediate_ = spec.intermediate_size;
  p.vocab_size_ = spec.vocab_size;
  return p;
}

ParallelLayout ParallelLayout::Single(const ModelSpec& spec) {
  auto p = Create(spec, 1, 1);
  if (!p.ok() || spec.num_layers < 1) {  // a spec without layers (never a loaded model): geometry only
    ParallelLayout q;
    q.num_heads_ = spec.num_heads;
    q.head_dim_ = spec.head_dim;
    q.intermediate_ = spec.intermediate_size;
    q.vocab_size_ = spec.vocab_size;
    return q;
  }
  return *p->WithStages({{0, spec.num_layers - 1}});
}

absl::StatusOr<ParallelLayout> ParallelLayout::WithStages(const std::vector<LayerSpan>& stages) const {
  if (static_cast<int>(stages.size()) != pp())
    return absl::InvalidArgumentError(absl::StrCat("--partition has ", stages.size(), " ranges for ", pp(), " stages"));
  ParallelLayout p = *this;
  p.stages_ = stages;
  p.stage_of_layer_.clear();
  int next = 0;
  for (int s = 0; s < pp(); ++s) {
    const auto [a, b] = stages[s];
    if (a != next || b < a || b >= num_layers_)
      return absl::InvalidArgumentError(absl::StrCat("--partition: range ", a, "-", b, " must start at layer ", next,
                                                     " and end by layer ", num_layers_ - 1));
    for (int l = a; l <= b; ++l) p.stage_of_layer_.push_back(s);
    next = b + 1;
  }
  if (next != num_layers_)
    return absl::InvalidArgumentError(absl::StrCat("--partition ends at layer ", next - 1, ", not ", num_layers_ - 1));
  return p;
}

int ParallelLayout::control_parent(int rank) const {
  const int stage = stage_of(rank), slice = slice_of(rank);
  if (stage > 0) return rank_of(stage - 1, slice);
  return slice > 0 ? 0 : -1;
}

std::vector<int> ParallelLayout::control_children(int rank) const {
  const int stage = stage_of(rank), slice = slice_of(rank);
  std::vector<int> out;
  if (rank == 0)
    for (int t = 1; t < tp(); ++t) out.push_back(rank_of(0, t));
  if (stage + 1 < pp()) out.push_back(rank_of(stage + 1, slice));
  return out;
}

IndexRange ParallelLayout::query_heads(int slice) const {
  const int64_t per = num_heads_ / tp();
  return {slice * per, per};
}

IndexRange ParallelLayout::kv_heads(int kv_heads, int slice) const {
  // The group of query heads a KV head serves is num_heads / kv_heads wide; the slice's first
  // query head falls in the group of its first KV head.
  const int64_t first = (slice * int64_t{num_heads_ / tp()}) / (num_heads_ / kv_heads);
  return {first, kv_heads_per_slice(kv_heads)};
}

IndexRange ParallelLayout::mlp_columns(int slice) const {
  const int64_t per = intermediate_ / tp();
  return {slice * per, per};
}

IndexRange ParallelLayout::vocab_rows(int slice) const {
  const int64_t per = vocab_rows_padded();
  const int64_t first = std::min<int64_t>(slice * per, vocab_size_);
  return {first, std::min<int64_t>(per, vocab_size_ - first)};
}

std::vector<TensorDecl> ParallelLayout::SliceTensors(const ModelSpec& spec, int first_layer, int last_layer,
                                                     int slice) const {
  const int64_t h = spec.hidden_size, hs = spec.head_dim;
  const int64_t q = query_heads(slice).count * hs, cols = mlp_columns(slice).count;
  const int64_t vocab = vocab_rows(slice).count;
  std::vector<TensorDecl> out;
  auto add = [&](const std::string& name, std::vector<int64_t> shape) {
    if (!name.empty()) out.push_back({name, std::move(shape)});
  };
  const GlobalTensorNames g = GlobalNames(spec);
  const bool first_stage = first_layer == 0, last_stage = last_layer == spec.num_layers - 1;
  // The embedding on the first stage; tied, it is the LM head too, so the last stage has it.
  if (first_stage || (last_stage && spec.tie_word_embeddings)) add(g.embed, {vocab, h});
  for (int l = first_layer; l <= last_layer; ++l) {
    const LayerTensorNames n = LayerNames(spec, l);
    const int64_t kv = kv_heads(spec.layers[l].num_kv_heads, slice).count * hs;
    add(n.norm1_w, {h});
    add(n.norm1_b, {h});
    add(n.norm2_w, {h});
    add(n.norm2_b, {h});
    // Fused GPT-NeoX QKV: this slice's heads of Q, K and V, whether or not others read the layer.
    add(n.qkv_w, {q + 2 * kv, h});
    add(n.qkv_b, {q + 2 * kv});
    add(n.q_w, {q, h});
    add(n.q_b, {q});
    add(n.k_w, {kv, h});
    add(n.k_b, {kv});
    add(n.v_w, {kv, h});
    add(n.v_b, {kv});
    add(n.o_w, {h, q});  // row-parallel: this slice's input columns, the whole bias
    add(n.o_b, {h});
    add(n.gate_w, {cols, h});
    add(n.up_w, {cols, h});
    add(n.up_b, {cols});
    add(n.down_w, {h, cols});  // row-parallel
    add(n.down_b, {h});
  }
  if (last_stage) {
    add(g.final_norm_w, {h});
    add(g.final_norm_b, {h});
    if (!spec.tie_word_embeddings) add(g.lm_head, {vocab, h});
  }
  return out;
}

int64_t ParallelLayout::WeightBytes(const ModelSpec& spec, int first_layer, int last_layer, int slice,
                                    DType matrix_dtype) const {
  int64_t bytes = 0;
  for (const TensorDecl& t : SliceTensors(spec, first_layer, last_layer, slice)) {
    int64_t elements = 1;
    for (int64_t d : t.shape) elements *= d;
    bytes += elements * static_cast<int64_t>(DTypeSize(t.shape.size() == 2 ? matrix_dtype : DType::kF32));
  }
  return bytes;
}

}  // namespace strata
