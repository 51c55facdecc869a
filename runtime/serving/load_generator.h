// File: runtime/serving/load_generator.h
// An HTTP load generator for any OpenAI-compatible server (strata bench serve): closed loop
// (`concurrency` clients back to back) or open loop (Poisson arrivals at `rate` requests/s,
// seeded), streaming completions with random token-id prompts. Measures throughput, time to
// first token, inter-token latency and end-to-end latency as vLLM's benchmark does (a token
// arrives with each non-empty streamed text; output tokens from the final usage chunk).
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace strata {

struct LoadOptions {
  std::string url = "http://127.0.0.1:8000";
  std::string model;             // empty: the first of GET /v1/models
  std::string api_key;
  int concurrency = 8;           // clients at once (closed loop; also the cap under --rate)
  double rate = 0;               // > 0: Poisson arrivals, requests per second
  int num_prompts = 64;
  int prompt_len = 32;
  int output_len = 64;
  int vocab = 256;               // prompt ids are drawn from [0, vocab)
  // > 0: each prompt starts with one of `num_prefixes` seeded prefixes of this many tokens (the
  // traffic prefix caching serves: system prompts, few-shot examples), then prompt_len own tokens.
  int shared_prefix_len = 0;
  int num_prefixes = 1;
  bool ignore_eos = true;
  uint64_t seed = 0;
};

struct LoadResult {
  std::string model;  // as sent (asked from the server when not given)
  int completed = 0, errors = 0;
  std::vector<std::string> error_samples;  // the first few error messages
  double duration_s = 0;
  int64_t prompt_tokens = 0, output_tokens = 0;
  std::vector<double> ttft_s, itl_s, e2e_s;
  nlohmann::json ToJson(const LoadOptions& o) const;  // configuration, totals, percentiles
};

absl::StatusOr<LoadResult> RunLoad(const LoadOptions& o);

// The p-th percentile (0..100) by linear interpolation; 0 for an empty sample.
double Percentile(std::vector<double> v, double p);

}  // namespace strata
