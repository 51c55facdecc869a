#include "runtime/model/model_spec.h"

#include <algorithm>
#include <cmath>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "runtime/base/status.h"

namespace strata {

std::vector<int> ModelSpec::Producers() const {
  std::vector<int> out;
  for (int l = 0; l < num_layers; ++l)
    if (layers[l].is_producer) out.push_back(l);
  return out;
}

std::vector<int> ModelSpec::Readers(int producer) const {
  std::vector<int> out;
  for (int l = 0; l < num_layers; ++l)
    if (layers[l].kv_source == producer) out.push_back(l);
  return out;
}

bool ModelSpec::HasUpwardEdges() const {
  for (int l = 0; l < num_layers; ++l)
    if (layers[l].upward(l)) return true;
  return false;
}

int ModelSpec::num_kv_heads_max() const {
  int m = 0;
  for (const auto& l : layers) m = std::max(m, l.num_kv_heads);
  return m;
}

std::vector<int> MlkvProducerLayers(int num_layers, int num_kv_layers) {
  std::vector<int> kvl = {0};
  for (int i = 0; i < num_kv_layers - 1; ++i) {
    // Python: int((i + 1) * (L / m)), float division then truncation (§1.2).
    double v = (i + 1) * (static_cast<double>(num_layers) / num_kv_layers);
    kvl.push_back(static_cast<int>(v));
  }
  return kvl;
}

absl::Status BuildLayerMap(const LayerMapInput& in, const std::string& where, ModelSpec* spec) {
  const int n = static_cast<int>(in.raw_sources.size());
  if (n != spec->num_layers || static_cast<int>(in.windows.size()) != n ||
      static_cast<int>(in.num_kv_heads.size()) != n) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": layer map has ", n,
                                                   " entries, num_hidden_layers is ",
                                                   spec->num_layers));
  }
  for (int l = 0; l < n; ++l) {
    if (in.raw_sources[l] < 0 || in.raw_sources[l] >= n)
      return absl::InvalidArgumentError(absl::StrCat(where, ": layer ", l, " reads layer ",
                                                     in.raw_sources[l], ", outside 0..", n - 1));
  }
  spec->layers.assign(n, LayerSpec{});
  for (int l = 0; l < n; ++l) {
    // Resolve chains to the root producer (decision (d)); a cycle never reaches a root.
    int src = l, steps = 0;
    while (in.raw_sources[src] != src) {
      src = in.raw_sources[src];
      if (++steps > n)
        return absl::InvalidArgumentError(absl::StrCat(
            where, ": layer ", l, " reads a chain of layers that never reaches a producer "
            "(a layer that reads its own K/V); cycles are not a valid sharing map"));
    }
    spec->layers[l].kv_source = src;
  }
  for (int l = 0; l < n; ++l) spec->layers[spec->layers[l].kv_source].is_producer = true;
  for (int l = 0; l < n; ++l) {
    LayerSpec& ls = spec->layers[l];
    const int p = ls.kv_source;
    if (in.num_kv_heads[l] <= 0)
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": layer ", l, " has num_key_value_heads ", in.num_kv_heads[l]));
    if (in.num_kv_heads[l] != in.num_kv_heads[p])
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": layer ", l, " reads the K/V of layer ", p, " but has ", in.num_kv_heads[l],
          " KV heads where its producer has ", in.num_kv_heads[p]));
    if (spec->num_heads % in.num_kv_heads[l] != 0)
      return absl::InvalidArgumentError(absl::StrCat(where, ": layer ", l, ": num_attention_heads ",
                                                     spec->num_heads,
                                                     " is not a multiple of its KV heads ",
                                                     in.num_kv_heads[l]));
    const int wp = in.windows[p], wl = in.windows[l];
    if (wp > 0 && (wl == 0 || wl > wp))
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": layer ", l, " (window ", wl == 0 ? std::string("full") : absl::StrCat(wl),
          ") reads sliding-window layer ", p, " (window ", wp,
          "); a reader's window must be no larger than its producer's"));
    ls.window = wl;
    ls.num_kv_heads = in.num_kv_heads[l];
    ls.mask_diag = in.force_nodiag || p > l;
    ls.rope_mode = KvRopeMode::kPost;
  }
  if (in.raw_rope_for_shared) {
    for (int p : spec->Producers())
      if (spec->Readers(p).size() > 1) spec->layers[p].rope_mode = KvRopeMode::kRaw;
  }
  return absl::OkStatus();
}

std::vector<PlanSegment> IterationPlan(const ModelSpec& spec) {
  // LayerTypeParser.iteration_plan: a layer reading upward opens a cyclic block [i, top], where
  // top grows to max(kv_source[i..top]) until it stops changing.
  std::vector<PlanSegment> plan;
  int l = 0;
  const int n = spec.num_layers;
  while (l < n) {
    if (spec.layers[l].upward(l)) {
      int top = spec.layers[l].kv_source;
      for (;;) {
        int next = top;
        for (int j = l; j <= top; ++j) next = std::max(next, spec.layers[j].kv_source);
        if (next == top) break;
        top = next;
      }
      plan.push_back({l, top, true});
      l = top + 1;
    } else {
      int start = l;
      while (l < n && !spec.layers[l].upward(l)) ++l;
      plan.push_back({start, l - 1, false});
    }
  }
  return plan;
}

std::string LayerTypesString(const ModelSpec& spec) {
  std::vector<std::string> parts;
  for (const auto& l : spec.layers)
    parts.push_back(absl::StrCat(l.kv_source, l.window > 0 ? "s" : ""));
  return absl::StrJoin(parts, "_");
}

std::vector<double> RopeInverseFrequencies(const ModelSpec& s) {
  const int dim = s.rotary_dims, half = dim / 2;
  const double base = s.rope_theta;
  const RopeScaling& r = s.rope_scaling;
  std::vector<double> inv(half);
  for (int i = 0; i < half; ++i) inv[i] = 1.0 / std::pow(base, 2.0 * i / dim);
  if (r.type == RopeScaling::kLinear) {
    for (double& f : inv) f /= r.factor;
  } else if (r.type == RopeScaling::kLlama3) {
    const double old = r.original_max_position_embeddings;
    const double low_wavelen = old / r.low_freq_factor, high_wavelen = old / r.high_freq_factor;
    for (double& f : inv) {
      const double wavelen = 2 * M_PI / f;
      if (wavelen > low_wavelen) {
        f /= r.factor;
      } else if (wavelen >= high_wavelen) {  // between: a smooth blend
        const double smooth = (old / wavelen - r.low_freq_factor) / (r.high_freq_factor - r.low_freq_factor);
        f = (1 - smooth) * f / r.factor + smooth * f;
      }
    }
  } else if (r.type == RopeScaling::kYarn) {
    const double max_pos = r.original_max_position_embeddings;
    auto correction_dim = [&](double rotations) {
      return dim * std::log(max_pos / (rotations * 2 * M_PI)) / (2 * std::log(base));
    };
    const double low = std::max(0.0, std::floor(correction_dim(r.beta_fast)));
    double high = std::min(dim - 1.0, std::ceil(correction_dim(r.beta_slow)));
    if (high == low) high += 0.001;
    for (int i = 0; i < half; ++i) {
      const double ramp = std::clamp((i - low) / (high - low), 0.0, 1.0);
      const double extrapolation = 1 - ramp;  // 1: keep the frequency, 0: interpolate it
      inv[i] = inv[i] / r.factor * (1 - extrapolation) + inv[i] * extrapolation;
    }
  }
  if (s.rope_freq_factors.size() == inv.size())
    for (int i = 0; i < half; ++i) inv[i] /= s.rope_freq_factors[i];
  return inv;
}

double RopeAttentionFactor(const ModelSpec& s) {
  const RopeScaling& r = s.rope_scaling;
  if (r.type != RopeScaling::kYarn) return 1;
  if (r.attention_factor > 0) return r.attention_factor;
  return r.factor <= 1 ? 1 : 0.1 * std::log(r.factor) + 1;
}

}  // namespace strata
