// Packing of sampling settings for the GPU sampler, and its CPU specification
// (sampling_params_pack.h). SampleFromPacked follows strata::SampleToken line for line, with the
// stream's draw taken by index instead of from a SamplerRng.
#include "kernels/cuda/sampling_params_pack.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace strata {
namespace {

double RawLogprob(const float* logits, int vocab, int token) {
  double mx = logits[0];
  for (int i = 1; i < vocab; ++i) mx = std::max(mx, static_cast<double>(logits[i]));
  double sum = 0;
  for (int i = 0; i < vocab; ++i) sum += std::exp(logits[i] - mx);
  return logits[token] - mx - std::log(sum);
}

int SampleWithTemperature(const float* logits, int vocab, const PackedSamplingParams& p) {
  std::vector<int> idx(vocab);
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int a, int b) { return logits[a] > logits[b]; });
  size_t keep = p.top_k > 0 ? std::min<size_t>(p.top_k, idx.size()) : idx.size();
  std::vector<double> prob(keep);
  const double mx = logits[idx[0]];
  double sum = 0;
  for (size_t i = 0; i < keep; ++i) sum += prob[i] = std::exp((logits[idx[i]] - mx) / p.temperature);
  if (p.top_p < 1.f) {
    double cum = 0;
    size_t k = 0;
    while (k < keep) {
      cum += prob[k++] / sum;
      if (cum >= p.top_p) break;
    }
    keep = k;
  }
  if (p.min_p > 0.f) {
    size_t k = 1;
    while (k < keep && prob[k] >= p.min_p * prob[0]) ++k;
    keep = k;
  }
  sum = 0;
  for (size_t i = 0; i < keep; ++i) sum += prob[i];
  double u = UniformAt(p.seed, p.draw_index) * sum;
  for (size_t i = 0; i < keep; ++i) {
    u -= prob[i];
    if (u < 0) return idx[i];
  }
  return idx[keep - 1];
}

}  // namespace

PackedSamplingParams PackSamplingParams(const SequenceSampling& s) {
  uint32_t flags = 0;
  if (s.temperature <= 0.f) flags |= kPackedGreedy;
  if (s.on_host) flags |= kPackedOnHost;
  return {.seed = s.seed,
          .draw_index = s.draw_index,
          .flags = flags,
          .temperature = s.temperature,
          .top_p = s.top_p,
          .min_p = s.min_p,
          .top_k = s.top_k};
}

PackedSamplingBatch PackSamplingBatch(const std::vector<SequenceSampling>& seqs) {
  PackedSamplingBatch batch;
  bool any_gpu_row = false, any_sampled = false;
  for (size_t i = 0; i < seqs.size(); ++i) {
    const PackedSamplingParams p = PackSamplingParams(seqs[i]);
    batch.rows.push_back(p);
    if (p.flags & kPackedOnHost) {
      batch.host_rows.push_back(static_cast<int>(i));
      continue;
    }
    any_gpu_row = true;
    if (p.flags & kPackedGreedy) continue;  // greedy ignores the cuts, as SampleToken does
    any_sampled = true;
    batch.any_truncation |= p.top_k > 0 || p.top_p < 1.f || p.min_p > 0.f;
  }
  batch.kernel = any_sampled ? SamplingKernel::kSortedWalk : any_gpu_row ? SamplingKernel::kArgmax
                                                                          : SamplingKernel::kNone;
  return batch;
}

PackedSample SampleFromPacked(const float* logits, int vocab, const PackedSamplingParams& p) {
  if (p.flags & kPackedOnHost) return {};
  const int token = (p.flags & kPackedGreedy)
                        ? static_cast<int>(std::max_element(logits, logits + vocab) - logits)
                        : SampleWithTemperature(logits, vocab, p);
  return {.token = token, .logprob = static_cast<float>(RawLogprob(logits, vocab, token))};
}

}  // namespace strata
