// File: runtime/base/token_choice.h
// Which token one uniform draw selects from a row of logits under a temperature and the top-k,
// top-p and min-p cuts: the one definition shared by the CPU sampler (runtime/sampler.h) and the
// GPU sampler's CPU specification (kernels/cuda/sampling_params_pack.h).
//
// The definition is chosen so that neither a CPU nor a GPU has to sort the whole vocabulary (a
// full sort cost 7.7 ms per token at a 50k vocabulary on the CPU): the cuts need only the
// boundary of a best-ranked set, and the draw walks the kept tokens in id order.
//  - Rank: descending logit, ties by ascending id (-0 equals +0). NaN and -inf logits are never
//    chosen while the row's best logit is finite. Where it is not (a +inf, or nothing but -inf
//    and NaN), the choice is ArgmaxToken's, std::max_element's: the first +inf, or the first
//    entry, even a NaN, when nothing beats it.
//  - p_i = exp((l_i - l_best) / T), in double (p_best = 1).
//  - top_k > 0: keep the k best-ranked tokens.
//  - top_p < 1: of those, keep the shortest rank prefix whose mass, summed in rank order,
//    reaches top_p x their total mass, summed in id order.
//  - min_p > 0: of those, keep the tokens with p_i >= min_p (the best always stays).
//  - Draw: s = the kept mass summed in id order; walking the kept tokens in id order, subtract
//    each p_i from u x s; the first token that takes it below 0 is chosen (where rounding leaves
//    none, the last kept token with p_i > 0).
#pragma once

namespace strata {

struct TokenCuts {
  float temperature = 1.f;  // > 0
  int top_k = 0;            // 0: no cut
  float top_p = 1.f;        // 1: no cut
  float min_p = 0.f;        // 0: no cut
};

// The token that u in [0, 1) selects, as defined above. Thread-safe (its scratch space is per
// thread, kept between calls so that a 50k-entry row allocates nothing).
int ChooseToken(const float* logits, int vocab, const TokenCuts& cuts, double u);

// The first index of the largest logit (greedy decoding).
int ArgmaxToken(const float* logits, int vocab);

// log_softmax(logits)[token], computed in double.
double LogSoftmaxAt(const float* logits, int vocab, int token);

}  // namespace strata
