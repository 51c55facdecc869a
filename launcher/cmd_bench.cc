// strata bench offline --model DIR --batch B --prompt-len P --output-len O [--json]:
// prefill and decode throughput of the engine on random prompts (seeded).
#include <cstdio>
#include <random>

#include "absl/flags/flag.h"
#include "launcher/commands.h"
#include "launcher/flags.h"
#include "nlohmann/json.hpp"
#include "runtime/engine.h"

ABSL_FLAG(int, batch, 1, "bench: sequences per batch");
ABSL_FLAG(int, prompt_len, 32, "bench: prompt tokens per sequence");
ABSL_FLAG(int, output_len, 64, "bench: generated tokens per sequence");
ABSL_FLAG(int, repeat, 3, "bench: measured runs (the median is reported)");

namespace strata {

int RunBench(const std::vector<std::string>& args) {
  if (args.size() == 1 && args[0] == "serve") return RunBenchServe();
  if (args.size() != 1 || args[0] != "offline")
    return Fail("bench", "usage: strata bench offline --model DIR ... | strata bench serve --url URL ...", 2);
  const EngineOptions opts = EngineOptionsFromFlags();
  JobComms comms = CreateJobComms();
  auto engine = CreateEngineOrAbort("bench", comms);
  if (!engine.ok()) return Fail("bench", std::string(engine.status().message()));
  if (comms.world->rank() != 0) {
    absl::Status st = (*engine)->RunWorker();
    if (!st.ok()) comms.world->Abort(std::string(st.message()));
    return 0;
  }
  // Rank 0 releases the workers however the measurement ends.
  struct Release {
    Engine* e;
    ~Release() { (void)e->Shutdown(); }
  } release{engine->get()};
  const int batch = absl::GetFlag(FLAGS_batch), plen = absl::GetFlag(FLAGS_prompt_len),
            olen = absl::GetFlag(FLAGS_output_len), repeat = std::max(1, absl::GetFlag(FLAGS_repeat));
  std::mt19937_64 rng(absl::GetFlag(FLAGS_seed));
  std::vector<GenerationRequest> reqs(batch);
  for (auto& r : reqs) {
    for (int i = 0; i < plen; ++i) r.prompt.push_back(static_cast<int>(rng() % (*engine)->spec().vocab_size));
    r.max_tokens = olen;
    r.ignore_eos = true;
  }
  // Warm-up (page faults, BLAS thread start), then `repeat` measured runs.
  std::vector<GenerationRequest> warm = reqs;
  for (auto& r : warm) r.max_tokens = 2;
  if (auto w = (*engine)->Generate(warm); !w.ok()) return Fail("bench", std::string(w.status().message()));
  std::vector<double> prefill, decode;
  for (int i = 0; i < repeat; ++i) {
    auto res = (*engine)->Generate(reqs);
    if (!res.ok()) return Fail("bench", std::string(res.status().message()));
    const EngineStats& s = (*engine)->stats();
    prefill.push_back(s.prefill_tokens / s.prefill_seconds);
    decode.push_back(s.decode_seconds > 0 ? s.decode_tokens / s.decode_seconds : 0);
  }
  std::sort(prefill.begin(), prefill.end());
  std::sort(decode.begin(), decode.end());
  const ModelSpec& spec = (*engine)->spec();
  nlohmann::json j = {
      {"prefill_tokens_per_s", prefill[prefill.size() / 2]},
      {"decode_tokens_per_s", decode[decode.size() / 2]},
      {"kv_bytes_per_token", (*engine)->kv_layout().bytes_per_token},
      {"weight_bytes", (*engine)->weight_bytes()},
      {"config",
       {{"model", absl::GetFlag(FLAGS_model)}, {"model_type", spec.model_type}, {"layer_types", LayerTypesString(spec)},
        {"batch", batch}, {"prompt_len", plen}, {"output_len", olen}, {"repeat", repeat},
        {"threads", opts.backend.threads}, {"device", opts.backend.device}, {"tp", opts.tp}, {"pp", opts.pp},
        {"kv_dtype", std::string(TorchDTypeName((*engine)->kv_layout().dtype))}, {"seed", absl::GetFlag(FLAGS_seed)}}}};
  if (absl::GetFlag(FLAGS_json)) {
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("config   %s\n", j["config"].dump().c_str());
    std::printf("prefill  %10.1f tokens/s\n", j["prefill_tokens_per_s"].get<double>());
    std::printf("decode   %10.1f tokens/s (batch %d; median of %d)\n", j["decode_tokens_per_s"].get<double>(), batch, repeat);
    std::printf("KV       %lld bytes/token, weights %lld bytes\n",
                static_cast<long long>((*engine)->kv_layout().bytes_per_token),
                static_cast<long long>((*engine)->weight_bytes()));
  }
  return 0;
}

}  // namespace strata
