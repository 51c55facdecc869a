// strata generate --model DIR --prompt-ids 1,2,3 --max-tokens N [--temperature --top-p --top-k
// --seed] [--json]: prints {"tokens": [...], "logprobs": [...]} (a stable interface). Several
// prompts separated by ';' run as one batch and print a JSON array of such objects.
#include <cstdio>

#include "absl/flags/flag.h"
#include "absl/strings/str_split.h"
#include "launcher/commands.h"
#include "launcher/flags.h"
#include <spdlog/spdlog.h>

#include "nlohmann/json.hpp"
#include "runtime/engine.h"

ABSL_FLAG(std::string, prompt_ids, "", "generate: comma-separated prompt token ids; ';' separates prompts of a batch");
ABSL_FLAG(int, max_tokens, 16, "generate: tokens to generate");
ABSL_FLAG(double, temperature, 0.0, "generate: sampling temperature (0: greedy)");
ABSL_FLAG(double, top_p, 1.0, "generate: nucleus sampling mass");
ABSL_FLAG(int, top_k, 0, "generate: keep the k most likely tokens (0: all)");
ABSL_FLAG(bool, ignore_eos, false, "generate: keep going past the end-of-sequence token");
ABSL_FLAG(std::string, score_ids, "",
          "generate: teacher forcing: these comma-separated ids are the continuation, each reported with its "
          "logprob (for perplexity; sets --max-tokens to their count and ignores EOS)");

namespace strata {

int RunGenerate(const std::vector<std::string>& args) {
  if (!args.empty()) return Fail("generate", "takes no positional arguments", 2);
  if (absl::GetFlag(FLAGS_model).empty()) return Fail("generate", "--model is required", 2);
  std::vector<std::vector<int>> prompts;
  for (const std::string& part : std::vector<std::string>(absl::StrSplit(absl::GetFlag(FLAGS_prompt_ids), ';'))) {
    auto prompt = ParseIntList(part, "prompt-ids");
    if (!prompt.ok()) return Fail("generate", std::string(prompt.status().message()), 2);
    prompts.push_back(*prompt);
  }
  std::vector<int> forced;  // parsed on every rank before any joins the job, as the prompts are
  if (!absl::GetFlag(FLAGS_score_ids).empty()) {
    auto ids = ParseIntList(absl::GetFlag(FLAGS_score_ids), "score-ids");
    if (!ids.ok()) return Fail("generate", std::string(ids.status().message()), 2);
    forced = *ids;
  }
  JobComms comms = CreateJobCommsFromFlags();
  auto engine = CreateEngineOrAbort("generate", comms);
  if (!engine.ok()) return Fail("generate", std::string(engine.status().message()));
  if (comms.world->rank() != 0) {  // workers follow rank 0's steps; only rank 0 prints
    absl::Status st = (*engine)->RunWorker();
    if (!st.ok()) comms.world->Abort(std::string(st.message()));
    return 0;
  }
  GenerationRequest r;
  r.max_tokens = absl::GetFlag(FLAGS_max_tokens);
  r.sampling.temperature = static_cast<float>(absl::GetFlag(FLAGS_temperature));
  r.sampling.top_p = static_cast<float>(absl::GetFlag(FLAGS_top_p));
  r.sampling.top_k = absl::GetFlag(FLAGS_top_k);
  r.sampling.seed = absl::GetFlag(FLAGS_seed);
  r.ignore_eos = absl::GetFlag(FLAGS_ignore_eos);
  if (!forced.empty()) {
    r.forced_tokens = forced;
    r.max_tokens = static_cast<int>(forced.size());
    r.ignore_eos = true;
  }
  if (!absl::GetFlag(FLAGS_json)) std::printf("%s\n", (*engine)->kv_budget().c_str());
  std::vector<GenerationRequest> batch;
  for (const std::vector<int>& p : prompts) {
    batch.push_back(r);
    batch.back().prompt = p;
  }
  auto results = (*engine)->Generate(batch);
  if (absl::Status st = (*engine)->Shutdown(); !st.ok()) comms.world->Abort(std::string(st.message()));
  if (!results.ok()) return Fail("generate", std::string(results.status().message()));
  if ((*engine)->prefix_caching()) {
    const PrefixCacheStats& pc = (*engine)->scheduler().prefix_cache();
    spdlog::debug("prefix cache: {} of {} prompt tokens found cached", pc.hits, pc.queries);
  } else if (!(*engine)->prefix_caching_refusal().empty()) {
    spdlog::debug("prefix caching off for this model: {}", (*engine)->prefix_caching_refusal());
  }
  nlohmann::json all = nlohmann::json::array();
  for (const GenerationResult& g : *results) {
    nlohmann::json j = {{"tokens", g.tokens}, {"logprobs", g.logprobs}};
    if (!absl::GetFlag(FLAGS_json)) {
      std::printf("tokens:   %s\nlogprobs: %s\nfinish:   %s\n", j["tokens"].dump().c_str(),
                  j["logprobs"].dump().c_str(), g.finish_reason.c_str());
    }
    all.push_back(std::move(j));
  }
  if (absl::GetFlag(FLAGS_json)) std::printf("%s\n", (all.size() == 1 ? all[0] : all).dump().c_str());
  return 0;
}

}  // namespace strata
