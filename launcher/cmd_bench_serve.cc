// strata bench serve --url URL [--concurrency C | --rate R] --num-prompts N --prompt-len P
// --output-len O [--shared-prefix-len P --num-prefixes K] [--model NAME] [--api-key KEY] [--json]: load on
// any OpenAI-compatible server.
#include <cstdio>

#include "absl/flags/flag.h"
#include "launcher/commands.h"
#include "launcher/flags.h"
#include "runtime/serving/load_generator.h"

ABSL_DECLARE_FLAG(int, prompt_len);
ABSL_DECLARE_FLAG(int, output_len);
ABSL_DECLARE_FLAG(std::string, api_key);
ABSL_DECLARE_FLAG(std::string, served_model_name);
ABSL_FLAG(std::string, url, "http://127.0.0.1:8000", "bench serve: the server's base URL");
ABSL_FLAG(int, concurrency, 8, "bench serve: clients at once (closed loop; a cap under --rate)");
ABSL_FLAG(double, rate, 0, "bench serve: Poisson arrivals per second (0: closed loop)");
ABSL_FLAG(int, num_prompts, 64, "bench serve: requests to send");
ABSL_FLAG(int, vocab_range, 256, "bench serve: prompt token ids are drawn from [0, N)");
ABSL_FLAG(int, shared_prefix_len, 0,
          "bench serve: each prompt starts with one of --num-prefixes shared prefixes of this many tokens");
ABSL_FLAG(int, num_prefixes, 1, "bench serve: distinct shared prefixes (with --shared-prefix-len)");

namespace strata {

int RunBenchServe() {
  LoadOptions o;
  o.url = absl::GetFlag(FLAGS_url);
  o.model = absl::GetFlag(FLAGS_served_model_name);
  o.api_key = absl::GetFlag(FLAGS_api_key);
  o.concurrency = absl::GetFlag(FLAGS_concurrency);
  o.rate = absl::GetFlag(FLAGS_rate);
  o.num_prompts = absl::GetFlag(FLAGS_num_prompts);
  o.prompt_len = absl::GetFlag(FLAGS_prompt_len);
  o.output_len = absl::GetFlag(FLAGS_output_len);
  o.vocab = absl::GetFlag(FLAGS_vocab_range);
  o.shared_prefix_len = absl::GetFlag(FLAGS_shared_prefix_len);
  o.num_prefixes = absl::GetFlag(FLAGS_num_prefixes);
  o.seed = absl::GetFlag(FLAGS_seed);
  auto r = RunLoad(o);
  if (!r.ok()) return Fail("bench serve", std::string(r.status().message()));
  const nlohmann::json j = r->ToJson(o);
  if (absl::GetFlag(FLAGS_json)) {
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("config       %s\n", j["config"].dump().c_str());
    std::printf("completed    %d, errors %d, %.2f s\n", r->completed, r->errors, r->duration_s);
    std::printf("throughput   %.2f req/s, %.1f output tokens/s\n", j["request_throughput"].get<double>(),
                j["output_tokens_per_s"].get<double>());
    for (const char* k : {"ttft_ms", "itl_ms", "e2e_ms"})
      std::printf("%-12s mean %.1f  p50 %.1f  p90 %.1f  p99 %.1f\n", k, j[k]["mean"].get<double>(),
                  j[k]["p50"].get<double>(), j[k]["p90"].get<double>(), j[k]["p99"].get<double>());
    for (const auto& e : r->error_samples) std::printf("error        %s\n", e.c_str());
  }
  return r->errors > 0 ? 1 : 0;
}

}  // namespace strata
