// Packing of sampling settings for the GPU sampler, and its CPU specification
// (sampling_params_pack.h). SampleFromPacked is strata::SampleToken's selection (both call
// runtime/base/token_choice.h) with the stream's draw taken by index instead of from a SamplerRng.
#include "kernels/cuda/sampling_params_pack.h"

#include "runtime/base/token_choice.h"

namespace strata {
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
  batch.kernel = any_sampled ? SamplingKernel::kCutAndWalk : any_gpu_row ? SamplingKernel::kArgmax
                                                                          : SamplingKernel::kNone;
  return batch;
}

PackedSample SampleFromPacked(const float* logits, int vocab, const PackedSamplingParams& p) {
  if (p.flags & kPackedOnHost) return {};
  const int token =
      (p.flags & kPackedGreedy)
          ? ArgmaxToken(logits, vocab)
          : ChooseToken(logits, vocab, {.temperature = p.temperature, .top_k = p.top_k, .top_p = p.top_p, .min_p = p.min_p},
                        UniformAt(p.seed, p.draw_index));
  return {.token = token, .logprob = static_cast<float>(LogSoftmaxAt(logits, vocab, token))};
}

}  // namespace strata
