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
#include "runtime/base/status.h"
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

// --json-schema / --grammar: every sequence's output is held to it (the grammar ends a sequence
// when its sentence is whole, so decode tokens/s is the figure to compare). Null without one.
struct BenchConstraint {
  std::shared_ptr<const grammar::CompiledGrammar> grammar;
  double compile_ms = 0;
};
absl::StatusOr<BenchConstraint> ConstraintFromFlags(const Engine& e) {
  BenchConstraint c;
  if (absl::GetFlag(FLAGS_json_schema).empty() && absl::GetFlag(FLAGS_grammar).empty()) return c;
  ASSIGN_OR_RETURN(grammar::Grammar g, GrammarFromFlags(/*use_default=*/false));
  auto tok = Tokenizer::Load(absl::GetFlag(FLAGS_model));
  if (!tok.ok()) return absl::InvalidArgumentError("--json-schema needs the model's tokenizer: " + std::string(tok.status().message()));
  const auto t0 = std::chrono::steady_clock::now();
  ASSIGN_OR_RETURN(c.grammar, grammar::CompileGrammar(g, grammar::TokenVocabulary::FromTokenizer(
                                                              **tok, e.spec().vocab_size, e.spec().eos_token_ids)));
  c.compile_ms = 1e3 * std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return c;
}

// `batch` seeded random prompts of `plen` tokens, each generating exactly `olen` (EOS ignored).
std::vector<GenerationRequest> RandomRequests(const Engine& e, int batch, int plen, int olen,
                                              const std::shared_ptr<const grammar::CompiledGrammar>& constraint) {
  std::mt19937_64 rng(absl::GetFlag(FLAGS_seed));
  std::vector<GenerationRequest> reqs(batch);
  for (auto& r : reqs) {
    for (int i = 0; i < plen; ++i) r.prompt.push_back(static_cast<int>(rng() % e.spec().vocab_size));
    r.max_tokens = olen;
    r.ignore_eos = true;
    r.grammar = constraint;
  }
  return reqs;
}

// Per measured run: throughput, and the read bandwidth measured just before it.
struct BenchRuns {
  std::vector<double> prefill, decode, bandwidth, fraction;
  int admitted = 0;  // the most sequences admitted at once
};

// A warm-up (page faults, thread start), then `repeat` measured runs. The memory-bandwidth
// floor: a decode step reads the weights once and each sequence's cached K/V (mean context
// prompt + output/2), per token at batch B; each run is set against its own bandwidth, since
// on a shared machine it drifts by a third within minutes (docs/benchmarks.md).
absl::StatusOr<BenchRuns> MeasureRuns(Engine& e, const std::vector<GenerationRequest>& reqs, int repeat,
                                      double bytes_per_token) {
  std::vector<GenerationRequest> warm = reqs;
  for (auto& r : warm) r.max_tokens = 2;
  RETURN_IF_ERROR(e.Generate(warm).status());
  BenchRuns runs;
  for (int i = 0; i < repeat; ++i) {
    runs.bandwidth.push_back(e.backend()->MeasureReadBandwidth(size_t{1} << 28));
    RETURN_IF_ERROR(e.Generate(reqs).status());
    const EngineStats& s = e.stats();
    runs.admitted = std::max(runs.admitted, s.peak_running);
    runs.prefill.push_back(s.prefill_tokens / s.prefill_seconds);
    runs.decode.push_back(s.decode_seconds > 0 ? s.decode_tokens / s.decode_seconds : 0);
    runs.fraction.push_back(runs.decode.back() * bytes_per_token / runs.bandwidth.back());
  }
  return runs;
}

// Per-rank figures (every rank reports through the step protocol).
absl::StatusOr<nlohmann::json> PerRankJson(Engine& e) {
  ASSIGN_OR_RETURN(std::vector<RankStats> ranks, e.CollectRankStats());
  nlohmann::json per_rank = nlohmann::json::array();
  for (const RankStats& r : ranks)
    per_rank.push_back({{"rank", r.rank}, {"stage", r.stage}, {"slice", r.slice}, {"steps", r.steps},
                        {"step_ms", r.steps ? 1e3 * r.busy_seconds / static_cast<double>(r.steps) : 0.0},
                        {"weight_bytes", r.weight_bytes}, {"kv_bytes", r.kv_bytes}});
  return per_rank;
}

// What was measured and with what: the configuration block of the report.
nlohmann::json ConfigJson(const Engine& e, const EngineOptions& opts, int batch, int plen, int olen, int repeat) {
  const ModelSpec& spec = e.spec();
  return {{"model", absl::GetFlag(FLAGS_model)}, {"model_type", spec.model_type}, {"layer_types", LayerTypesString(spec)},
          {"batch", batch}, {"prompt_len", plen}, {"json_schema", absl::GetFlag(FLAGS_json_schema)}, {"output_len", olen},
          {"repeat", repeat}, {"threads", e.backend()->threads()}, {"device", opts.backend.device}, {"tp", opts.tp},
          {"pp", opts.pp}, {"kv_dtype", std::string(TorchDTypeName(e.kv_layout().dtype))}, {"seed", absl::GetFlag(FLAGS_seed)},
          {"weight_dtype", std::string(TorchDTypeName(spec.torch_dtype))},
          {"cpu", CpuModelName()}, {"cpu_isa", e.backend()->name() == "cpu" ? CpuIsaName(DetectCpuIsa()) : ""}};
}

// The report: medians over the runs, the bandwidth floor and the GEMM rate they are set against
// (the fractions only on one rank, where this process saw all the work).
nlohmann::json BenchReport(Engine& e, const BenchRuns& runs, double bytes_per_token, bool one_rank, int world) {
  const ModelSpec& spec = e.spec();
  const double read_bandwidth = Median(runs.bandwidth);
  const double gemm = e.backend()->MeasureGemmFlops(256, spec.intermediate_size, spec.hidden_size);
  const double floor = read_bandwidth / bytes_per_token, floor_fraction = Median(runs.fraction);
  // Prefill FLOPs per token and rank: 2 x the matrix elements a token multiplies (the layers'
  // and the LM head's), an even share of them per rank.
  double matmul_params = static_cast<double>(spec.hidden_size) * spec.vocab_size;
  for (int l = 0; l < spec.num_layers; ++l) matmul_params += LayerMatmulParams(spec, l);
  const double prefill_flops = 2.0 * matmul_params / world;
  const double prefill_tps = Median(runs.prefill), decode_tps = Median(runs.decode);
  auto if_one = [&](nlohmann::json v) { return one_rank ? v : nlohmann::json(nullptr); };
  return {{"prefill_tokens_per_s", prefill_tps},
          {"decode_tokens_per_s", decode_tps},
          {"kv_bytes_per_token", e.kv_layout().bytes_per_token},
          {"admitted_batch", runs.admitted},
          {"kv_capacity_tokens", e.kv_capacity().tokens},
          {"kv_budget", e.kv_budget()},
          {"weight_bytes", e.weight_bytes()},
          {"decode_tokens_per_s_runs", runs.decode},
          {"read_bandwidth_bytes_per_s", read_bandwidth},
          {"read_bandwidth_bytes_per_s_runs", runs.bandwidth},
          {"decode_bytes_per_token", bytes_per_token},
          {"bandwidth_floor_tokens_per_s", if_one(floor)},
          {"decode_fraction_of_floor", if_one(floor_fraction)},
          {"decode_fraction_of_floor_runs", if_one(runs.fraction)},
          {"gemm_flops_per_s", gemm},
          {"prefill_fraction_of_gemm", if_one(prefill_tps * prefill_flops / gemm)}};
}

void PrintBenchText(const nlohmann::json& j, const Engine& e) {
  const bool one_rank = !j["bandwidth_floor_tokens_per_s"].is_null();
  std::printf("config   %s\n", j["config"].dump().c_str());
  std::printf("prefill  %10.1f tokens/s\n", j["prefill_tokens_per_s"].get<double>());
  std::printf("decode   %10.1f tokens/s (batch %d, at most %d admitted at once; median of %d)\n",
              j["decode_tokens_per_s"].get<double>(), j["config"]["batch"].get<int>(), j["admitted_batch"].get<int>(),
              j["config"]["repeat"].get<int>());
  std::printf("%s\n", e.kv_budget().c_str());
  std::printf("KV       %lld bytes/token, weights %lld bytes\n", static_cast<long long>(e.kv_layout().bytes_per_token),
              static_cast<long long>(e.weight_bytes()));
  std::printf("memory   %.1f GB/s read (median of %d, one before each run); decode reads %.0f bytes/token",
              j["read_bandwidth_bytes_per_s"].get<double>() / 1e9, j["config"]["repeat"].get<int>(),
              j["decode_bytes_per_token"].get<double>());
  if (one_rank)
    std::printf(": floor %.1f tokens/s, decode at %.0f%% of it (median over runs, each against its own bandwidth)",
                j["bandwidth_floor_tokens_per_s"].get<double>(), 100 * j["decode_fraction_of_floor"].get<double>());
  std::printf("\ngemm     %.1f GFLOP/s", j["gemm_flops_per_s"].get<double>() / 1e9);
  if (one_rank) std::printf("; prefill at %.0f%% of it", 100 * j["prefill_fraction_of_gemm"].get<double>());
  std::printf("\n");
  for (const auto& r : j["ranks"])
    std::printf("rank %d   stage %d slice %d: %.2f ms/step, weights %lld B, KV %lld B\n", r["rank"].get<int>(),
                r["stage"].get<int>(), r["slice"].get<int>(), r["step_ms"].get<double>(),
                static_cast<long long>(r["weight_bytes"].get<int64_t>()), static_cast<long long>(r["kv_bytes"].get<int64_t>()));
}

// Rank 0 of `bench offline`: the requests, the runs, the report.
int BenchOnRankZero(Engine& e, const EngineOptions& opts, int world) {
  const int batch = absl::GetFlag(FLAGS_batch), plen = absl::GetFlag(FLAGS_prompt_len),
            olen = absl::GetFlag(FLAGS_output_len), repeat = std::max(1, absl::GetFlag(FLAGS_repeat));
  absl::StatusOr<BenchConstraint> constraint = ConstraintFromFlags(e);
  if (!constraint.ok()) return Fail("bench", std::string(constraint.status().message()));
  const std::vector<GenerationRequest> reqs = RandomRequests(e, batch, plen, olen, constraint->grammar);
  const double mean_context = plen + olen / 2.0;
  const double bytes_per_token =
      (static_cast<double>(e.decode_weight_bytes()) + batch * mean_context * e.kv_layout().bytes_per_token) / batch;
  absl::StatusOr<BenchRuns> runs = MeasureRuns(e, reqs, repeat, bytes_per_token);
  if (!runs.ok()) return Fail("bench", std::string(runs.status().message()));
  absl::StatusOr<nlohmann::json> per_rank = PerRankJson(e);
  if (!per_rank.ok()) return Fail("bench", std::string(per_rank.status().message()));
  nlohmann::json j = BenchReport(e, *runs, bytes_per_token, world == 1, world);
  j["ranks"] = *per_rank;
  j["grammar_compile_ms"] = constraint->compile_ms;
  j["config"] = ConfigJson(e, opts, batch, plen, olen, repeat);
  if (absl::GetFlag(FLAGS_json)) {
    std::printf("%s\n", j.dump().c_str());
  } else {
    PrintBenchText(j, e);
  }
  return 0;
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
  return BenchOnRankZero(**engine, opts, comms.world->size());
}

}  // namespace strata
