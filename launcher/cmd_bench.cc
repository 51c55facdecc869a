// strata bench offline --model DIR --batch B --prompt-len P --output-len O [--json]:
// prefill and decode throughput of the engine on random prompts (seeded).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>

#include "absl/flags/flag.h"
#include "launcher/commands.h"
#include "launcher/flags.h"
#include "nlohmann/json.hpp"
#include "kernels/cpu/cpu_isa.h"
#include "runtime/engine.h"
#include "runtime/grammar/grammar_matcher.h"
#include "runtime/tokenizer/tokenizer.h"

ABSL_FLAG(int, batch, 1, "bench: sequences per batch");
ABSL_FLAG(int, prompt_len, 32, "bench: prompt tokens per sequence");
ABSL_FLAG(int, output_len, 64, "bench: generated tokens per sequence");
ABSL_FLAG(int, repeat, 3, "bench: measured runs (the median is reported)");
ABSL_DECLARE_FLAG(std::string, json_schema);
ABSL_DECLARE_FLAG(std::string, grammar);

namespace strata {
namespace {

// The middle value (the upper one of an even count); `v` is taken by value, runs stay in order.
double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int RunBench(const std::vector<std::string>& args) {
  if (args.size() == 1 && args[0] == "serve") return RunBenchServe();
  if (args.size() == 1 && args[0] == "grammar") return RunBenchGrammar();
  if (args.size() == 1 && args[0] == "sampler") return RunBenchSampler();
  if (args.size() != 1 || args[0] != "offline")
    return Fail("bench",
                "usage: strata bench offline --model DIR ... | strata bench serve --url URL ... | "
                "strata bench grammar --tokenizer DIR ... | strata bench sampler [--sampler-vocab N]",
                2);
  const EngineOptions opts = EngineOptionsFromFlags();
  JobComms comms = CreateJobCommsFromFlags();
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
  Engine& e = **engine;
  const int batch = absl::GetFlag(FLAGS_batch), plen = absl::GetFlag(FLAGS_prompt_len),
            olen = absl::GetFlag(FLAGS_output_len), repeat = std::max(1, absl::GetFlag(FLAGS_repeat));
  std::mt19937_64 rng(absl::GetFlag(FLAGS_seed));
  // --json-schema: every sequence's output is held to it (the grammar ends a sequence when its
  // sentence is whole, so decode tokens/s is the figure to compare).
  std::shared_ptr<const grammar::CompiledGrammar> constraint;
  double compile_ms = 0;
  if (!absl::GetFlag(FLAGS_json_schema).empty() || !absl::GetFlag(FLAGS_grammar).empty()) {
    auto g = GrammarFromFlags(/*use_default=*/false);
    if (!g.ok()) return Fail("bench", std::string(g.status().message()));
    auto tok = Tokenizer::Load(absl::GetFlag(FLAGS_model));
    if (!tok.ok()) return Fail("bench", "--json-schema needs the model's tokenizer: " + std::string(tok.status().message()));
    const auto t0 = std::chrono::steady_clock::now();
    auto c = grammar::CompileGrammar(
        *g, grammar::TokenVocabulary::FromTokenizer(**tok, e.spec().vocab_size, e.spec().eos_token_ids));
    if (!c.ok()) return Fail("bench", std::string(c.status().message()));
    compile_ms = 1e3 * std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    constraint = *c;
  }
  std::vector<GenerationRequest> reqs(batch);
  for (auto& r : reqs) {
    for (int i = 0; i < plen; ++i) r.prompt.push_back(static_cast<int>(rng() % e.spec().vocab_size));
    r.max_tokens = olen;
    r.ignore_eos = true;
    r.grammar = constraint;
  }
  // Warm-up (page faults, BLAS thread start), then `repeat` measured runs.
  std::vector<GenerationRequest> warm = reqs;
  for (auto& r : warm) r.max_tokens = 2;
  if (auto w = e.Generate(warm); !w.ok()) return Fail("bench", std::string(w.status().message()));
  const ModelSpec& spec = e.spec();
  // The memory-bandwidth floor: a decode step reads the weights once and each sequence's cached
  // K/V (mean context prompt + output/2); per token at batch B. The read bandwidth is measured
  // before every run and each run is set against its own measurement: on a shared machine the
  // bandwidth drifts by a third within minutes (docs/benchmarks.md).
  const double mean_context = plen + olen / 2.0;
  const double bytes_per_token =
      (static_cast<double>(e.decode_weight_bytes()) + batch * mean_context * e.kv_layout().bytes_per_token) / batch;
  std::vector<double> prefill, decode, bandwidth, fraction;
  int admitted = 0;
  for (int i = 0; i < repeat; ++i) {
    bandwidth.push_back(e.backend()->MeasureReadBandwidth(size_t{1} << 28));
    auto res = e.Generate(reqs);
    if (!res.ok()) return Fail("bench", std::string(res.status().message()));
    const EngineStats& s = e.stats();
    admitted = std::max(admitted, s.peak_running);
    prefill.push_back(s.prefill_tokens / s.prefill_seconds);
    decode.push_back(s.decode_seconds > 0 ? s.decode_tokens / s.decode_seconds : 0);
    fraction.push_back(decode.back() * bytes_per_token / bandwidth.back());
  }
  // Per-rank figures (every rank reports through the step protocol).
  auto ranks = e.CollectRankStats();
  if (!ranks.ok()) return Fail("bench", std::string(ranks.status().message()));
  nlohmann::json per_rank = nlohmann::json::array();
  for (const RankStats& r : *ranks)
    per_rank.push_back({{"rank", r.rank}, {"stage", r.stage}, {"slice", r.slice}, {"steps", r.steps},
                        {"step_ms", r.steps ? 1e3 * r.busy_seconds / static_cast<double>(r.steps) : 0.0},
                        {"weight_bytes", r.weight_bytes}, {"kv_bytes", r.kv_bytes}});
  const double read_bandwidth = Median(bandwidth);
  const double gemm = e.backend()->MeasureGemmFlops(256, spec.intermediate_size, spec.hidden_size);
  const bool one_rank = comms.world->size() == 1;
  const double floor = read_bandwidth / bytes_per_token, floor_fraction = Median(fraction);
  // Prefill FLOPs per token and rank: 2 x the matrix elements a token multiplies (the layers'
  // and the LM head's), an even share of them per rank.
  double matmul_params = static_cast<double>(spec.hidden_size) * spec.vocab_size;
  for (int l = 0; l < spec.num_layers; ++l) matmul_params += LayerMatmulParams(spec, l);
  const double prefill_flops = 2.0 * matmul_params / comms.world->size();
  const double prefill_tps = Median(prefill), decode_tps = Median(decode);
  nlohmann::json j = {
      {"prefill_tokens_per_s", prefill_tps},
      {"decode_tokens_per_s", decode_tps},
      {"kv_bytes_per_token", e.kv_layout().bytes_per_token},
      {"admitted_batch", admitted},
      {"kv_capacity_tokens", e.kv_capacity().tokens},
      {"kv_budget", e.kv_budget()},
      {"weight_bytes", e.weight_bytes()},
      {"decode_tokens_per_s_runs", decode},
      {"read_bandwidth_bytes_per_s", read_bandwidth},
      {"read_bandwidth_bytes_per_s_runs", bandwidth},
      {"decode_bytes_per_token", bytes_per_token},
      {"bandwidth_floor_tokens_per_s", one_rank ? nlohmann::json(floor) : nlohmann::json(nullptr)},
      {"decode_fraction_of_floor", one_rank ? nlohmann::json(floor_fraction) : nlohmann::json(nullptr)},
      {"decode_fraction_of_floor_runs", one_rank ? nlohmann::json(fraction) : nlohmann::json(nullptr)},
      {"gemm_flops_per_s", gemm},
      {"prefill_fraction_of_gemm", one_rank ? nlohmann::json(prefill_tps * prefill_flops / gemm) : nlohmann::json(nullptr)},
      {"ranks", per_rank},
      {"grammar_compile_ms", compile_ms},
      {"config",
       {{"model", absl::GetFlag(FLAGS_model)}, {"model_type", spec.model_type}, {"layer_types", LayerTypesString(spec)},
        {"batch", batch}, {"prompt_len", plen}, {"json_schema", absl::GetFlag(FLAGS_json_schema)}, {"output_len", olen}, {"repeat", repeat},
        {"threads", e.backend()->threads()}, {"device", opts.backend.device}, {"tp", opts.tp}, {"pp", opts.pp},
        {"kv_dtype", std::string(TorchDTypeName(e.kv_layout().dtype))}, {"seed", absl::GetFlag(FLAGS_seed)},
        {"weight_dtype", std::string(TorchDTypeName(spec.torch_dtype))},
        {"cpu", CpuModelName()}, {"cpu_isa", e.backend()->name() == "cpu" ? CpuIsaName(DetectCpuIsa()) : ""}}}};
  if (absl::GetFlag(FLAGS_json)) {
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("config   %s\n", j["config"].dump().c_str());
    std::printf("prefill  %10.1f tokens/s\n", j["prefill_tokens_per_s"].get<double>());
    std::printf("decode   %10.1f tokens/s (batch %d, at most %d admitted at once; median of %d)\n",
                j["decode_tokens_per_s"].get<double>(), batch, admitted, repeat);
    std::printf("%s\n", e.kv_budget().c_str());
    std::printf("KV       %lld bytes/token, weights %lld bytes\n",
                static_cast<long long>(e.kv_layout().bytes_per_token),
                static_cast<long long>(e.weight_bytes()));
    std::printf("memory   %.1f GB/s read (median of %d, one before each run); decode reads %.0f bytes/token",
                read_bandwidth / 1e9, repeat, bytes_per_token);
    if (one_rank)
      std::printf(": floor %.1f tokens/s, decode at %.0f%% of it (median over runs, each against its own bandwidth)",
                  floor, 100 * floor_fraction);
    std::printf("\ngemm     %.1f GFLOP/s", gemm / 1e9);
    if (one_rank) std::printf("; prefill at %.0f%% of it", 100 * prefill_tps * prefill_flops / gemm);
    std::printf("\n");
    for (const auto& r : per_rank)
      std::printf("rank %d   stage %d slice %d: %.2f ms/step, weights %lld B, KV %lld B\n", r["rank"].get<int>(),
                  r["stage"].get<int>(), r["slice"].get<int>(), r["step_ms"].get<double>(),
                  static_cast<long long>(r["weight_bytes"].get<int64_t>()), static_cast<long long>(r["kv_bytes"].get<int64_t>()));
  }
  return 0;
}

}  // namespace strata
