// `strata bench sampler`: microseconds to choose one token from a row of seeded logits under the
// sampling settings users send (greedy, temperature, top-k, top-p, min-p, llama.cpp's default
// chain), with the sampled token's logprob (what the engine reports by default) and without it
// (what the server asks for when the client wants no logprobs), as the scheduler does for every
// sequence of every step.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "launcher/commands.h"
#include "nlohmann/json.hpp"
#include "runtime/sampler.h"

ABSL_FLAG(int, sampler_vocab, 50257, "bench sampler: vocabulary size (the row's length)");
ABSL_FLAG(int, sampler_reps, 100, "bench sampler: tokens per timed batch (5 batches, the median kept)");
ABSL_DECLARE_FLAG(bool, json);
ABSL_DECLARE_FLAG(uint64_t, seed);

namespace strata {

int RunBenchSampler() {
  const int vocab = std::max(1, absl::GetFlag(FLAGS_sampler_vocab)), reps = std::max(1, absl::GetFlag(FLAGS_sampler_reps));
  // Normal(0, 3) logits: the best token takes about a tenth of the mass at 50k, a model's
  // distribution rather than a flat random one.
  std::mt19937_64 rng(absl::GetFlag(FLAGS_seed));
  std::normal_distribution<float> normal(0.f, 3.f);
  std::vector<float> logits(vocab);
  for (float& l : logits) l = normal(rng);
  struct Setting {
    const char* name;
    float temperature;
    int top_k;
    float top_p, min_p;
  };
  const Setting settings[] = {{"greedy", 0.f, 0, 1.f, 0.f},
                              {"temperature_1", 1.f, 0, 1.f, 0.f},
                              {"top_k_40", 0.8f, 40, 1.f, 0.f},
                              {"top_p_0.9", 1.f, 0, 0.9f, 0.f},
                              {"min_p_0.05", 1.f, 0, 1.f, 0.05f},
                              {"llama_cpp_defaults", 0.8f, 40, 0.95f, 0.05f}};
  using Clock = std::chrono::steady_clock;
  nlohmann::json with_logprob = nlohmann::json::object(), without_logprob = nlohmann::json::object();
  for (const Setting& s : settings) {
    SamplingParams p;
    p.temperature = s.temperature;
    p.top_k = s.top_k;
    p.top_p = s.top_p;
    p.min_p = s.min_p;
    for (bool logprob : {true, false}) {
      SamplerRng sampler_rng(1);
      std::vector<double> batch_us;
      for (int b = 0; b < 5; ++b) {
        const auto t0 = Clock::now();
        for (int i = 0; i < reps; ++i) SampleToken(logits.data(), vocab, p, &sampler_rng, {.logprob = logprob});
        batch_us.push_back(1e6 * std::chrono::duration<double>(Clock::now() - t0).count() / reps);
      }
      std::sort(batch_us.begin(), batch_us.end());
      (logprob ? with_logprob : without_logprob)[s.name] = batch_us[2];
    }
  }
  if (absl::GetFlag(FLAGS_json)) {
    std::printf("%s\n", nlohmann::json{{"vocab_size", vocab},
                                       {"us_per_token", with_logprob},
                                       {"us_per_token_without_logprob", without_logprob},
                                       {"reps", reps}}
                            .dump()
                            .c_str());
  } else {
    std::printf("sampling one token from %d logits, us (median of 5 batches of %d): with logprob / without\n", vocab,
                reps);
    for (const Setting& s : settings)
      std::printf("  %-20s %8.1f %8.1f\n", s.name, with_logprob[s.name].get<double>(),
                  without_logprob[s.name].get<double>());
  }
  return 0;
}

}  // namespace strata
