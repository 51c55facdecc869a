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

WeightFormat WeightFormats::Of(const std::string& tensor) const {
  auto it = by_tensor.find(tensor);
  return it == by_tensor.end() ? matrices : it->second;
}

WeightFormat WeightFormats::Of(const WeightSlice& slice) const {
  if (!slice.matrix) return WeightFormat::Plain(DType::kF32);
  const WeightFormat first = Of(slice.parts.front().tensor);
  for (const SlicePart& p : slice.parts)
    if (Of(p.tensor) != first) return joined;
  if (!BlockCut(slice).empty()) return joined;  // a layout the planner would have refused
  return first;
}

std::string WeightFormats::BlockCut(const WeightSlice& slice) const {
  if (!slice.matrix) return "";
  for (const SlicePart& p : slice.parts) {
    const WeightFormat f = Of(p.tensor);
    if (!f.packed()) continue;
    auto it = stored_block_elems.find(p.tensor);
    const int64_t block = it == stored_block_elems.end() ? f.block_elems : it->second;
    if (p.cols.first % block != 0 || p.cols.count % block != 0)
      return absl::StrCat("columns ", p.cols.first, "..", p.cols.first + p.cols.count - 1, " of ", p.tensor,
                          " are not whole blocks of its ", block, "-element quantization blocks");
  }
  return "";
}

std::vector<WeightSlice> ParallelLayout::SliceWeights(const ModelSpec& spec, int first_layer, int last_layer,
                                                      int slice) const {
  const int64_t hs = spec.head_dim;
  std::vector<WeightSlice> out;
  // Appends rows of `t` to the buffer `slot` of its layer (a new one unless the last buffer is it:
  // roles sharing a buffer are adjacent in the table).
  auto add = [&](const TensorDecl& t, WeightSlot slot, IndexRange rows, IndexRange cols) {
    if (out.empty() || out.back().slot != slot || out.back().layer != t.layer) {
      out.push_back({slot, t.layer, {}, 0, cols.count, t.matrix()});
    }
    out.back().parts.push_back({t.name, t.shape, rows, cols});
    out.back().rows += rows.count;
  };
  auto place = [&](const TensorDecl& t) {
    const IndexRange all_rows{0, t.shape[0]}, all_cols{0, t.matrix() ? t.shape[1] : 1};
    const IndexRange heads = query_heads(slice), mlp = mlp_columns(slice);
    const IndexRange head_rows{heads.first * hs, heads.count * hs};
    const WeightSlot slot = t.role->slot;
    switch (t.role->split) {
      case TpSplit::kWhole: add(t, slot, all_rows, all_cols); break;
      case TpSplit::kQueryRows: add(t, slot, head_rows, all_cols); break;
      case TpSplit::kKvRows: {
        const IndexRange kv = kv_heads(spec.layers[t.layer].num_kv_heads, slice);
        add(t, slot, {kv.first * hs, kv.count * hs}, all_cols);
        break;
      }
      case TpSplit::kNeoxQkvRows:  // rows [H, 3, hs]: this slice's heads of Q, then of K and V
        for (int which = 0; which < (spec.layers[t.layer].is_producer ? 3 : 1); ++which) {
          const WeightSlot to = static_cast<WeightSlot>(static_cast<int>(slot) + 2 * which);
          const IndexRange kv = which == 0 ? heads : kv_heads(spec.layers[t.layer].num_kv_heads, slice);
          for (int64_t h = kv.first; h < kv.end(); ++h) add(t, to, {(h * 3 + which) * hs, hs}, all_cols);
        }
        break;
      case TpSplit::kQueryCols: add(t, slot, all_rows, head_rows); break;
      case TpSplit::kMlpRows: add(t, slot, mlp, all_cols); break;
      case TpSplit::kMlpCols: add(t, slot, all_rows, mlp); break;
      case TpSplit::kVocabRows: add(t, slot, vocab_rows(slice), all_cols); break;
    }
  };
  const std::vector<TensorDecl> globals = TensorsOf(spec, -1);
  const bool first_stage = first_layer == 0, last_stage = last_layer == spec.num_layers - 1;
  // The embedding on the first stage; tied, it is the LM head too, so the last stage has it.
  for (const TensorDecl& g : globals)
    if (g.role->slot == WeightSlot::kEmbed && (first_stage || (last_stage && spec.tie_word_embeddings))) place(g);
  for (int l = first_layer; l <= last_layer; ++l)
    for (const TensorDecl& t : TensorsOf(spec, l)) place(t);
  if (last_stage)
    for (const TensorDecl& g : globals)
      if (g.role->slot != WeightSlot::kEmbed) place(g);
  return out;
}

int64_t ParallelLayout::WeightBytes(const ModelSpec& spec, int first_layer, int last_layer, int slice,
                                    const WeightFormats& formats) const {
  int64_t bytes = 0;
  for (const WeightSlice& w : SliceWeights(spec, first_layer, last_layer, slice))
    bytes += formats.Of(w).Bytes(w.rows, w.cols);
  return bytes;
}

}  // namespace strata
