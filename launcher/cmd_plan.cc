// strata plan --model DIR --tp T --pp P --kv-memory BYTES [--partition 0-5,6-11] [--json]
// [--memory-per-rank BYTES]: where each layer and KV group goes, what every rank holds, and what
// moves between stages. With --memory-per-rank it also says, before any launch, whether every
// rank fits (weights in the checkpoint's dtype + the KV budget + the activation reserve the
// engine keeps) and exits 1 when one does not.
#include <cstdio>

#include "absl/flags/flag.h"
#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"
#include "launcher/commands.h"
#include "launcher/flags.h"
#include "parallel/planner.h"
#include "runtime/base/status.h"
#include "runtime/model/checkpoint.h"
#include "runtime/model/config.h"
#include "runtime/weights.h"

ABSL_FLAG(int64_t, memory_per_rank, 0, "plan: device memory of one rank in bytes; says whether the plan fits");

namespace strata {
namespace {

// The formats the engine would hold the weights in on --device with --dequantize and
// --quantization as given, so that the plan counts quantized bytes as loaded. Without that
// device here (planning a GPU cluster from a CPU machine) the backend's choice is unknown:
// packed formats are then counted as the file stores them, floats as the checkpoint's dtype.
absl::StatusOr<WeightFormats> WeightFormatsFromFlags(const ModelSpec& spec) {
  const EngineOptions eo = EngineOptionsFromFlags();
  ASSIGN_OR_RETURN(const Checkpoint ckpt, Checkpoint::Open(absl::GetFlag(FLAGS_model)));
  auto backend = CreateBackend(eo.backend);
  if (backend.ok()) return LoadedWeightFormats(ckpt, **backend, !eo.dequantize_weights, eo.quantization);
  std::fprintf(stderr, "strata plan: no %s device here (%s): weights counted as the checkpoint stores them\n",
               eo.backend.device.c_str(), std::string(backend.status().message()).c_str());
  WeightFormats f;
  f.matrices = WeightFormat::Plain(spec.torch_dtype);
  return f;
}

}  // namespace

int RunPlan(const std::vector<std::string>& args) {
  if (!args.empty()) return Fail("plan", "takes no positional arguments", 2);
  auto spec = LoadModelConfig(absl::GetFlag(FLAGS_model));
  if (!spec.ok()) return Fail("plan", std::string(spec.status().message()));
  PlannerOptions o;
  o.block_size = absl::GetFlag(FLAGS_block_size);
  o.max_seqs = absl::GetFlag(FLAGS_max_seqs);
  o.max_batched_tokens = absl::GetFlag(FLAGS_max_batched_tokens);
  auto formats = WeightFormatsFromFlags(*spec);
  if (!formats.ok()) return Fail("plan", std::string(formats.status().message()));
  o.weight_formats = *formats;
  o.kv_dtype = spec->torch_dtype;
  if (absl::GetFlag(FLAGS_kv_dtype) != "auto") {
    auto d = ParseDTypeName(absl::GetFlag(FLAGS_kv_dtype));
    if (!d.ok()) return Fail("plan", std::string(d.status().message()), 2);
    o.kv_dtype = *d;
  }
  if (!absl::GetFlag(FLAGS_partition).empty()) {
    auto p = ParsePartition(absl::GetFlag(FLAGS_partition));
    if (!p.ok()) return Fail("plan", std::string(p.status().message()), 2);
    o.forced_partition = *p;
  }
  auto kv_memory = KvMemoryFromFlags(*spec, o);
  if (!kv_memory.ok()) return Fail("plan", std::string(kv_memory.status().message()), 2);
  o.kv_memory_bytes = *kv_memory;
  auto plan = PlanPipeline(*spec, Topology{absl::GetFlag(FLAGS_tp), absl::GetFlag(FLAGS_pp)}, o);
  if (!plan.ok()) return Fail("plan", std::string(plan.status().message()));
  const int64_t memory = absl::GetFlag(FLAGS_memory_per_rank);
  if (memory <= 0) {
    const std::string text = absl::GetFlag(FLAGS_json) ? PlanToJson(*spec, *plan) : PlanToText(*spec, *plan);
    std::printf("%s\n", text.c_str());
    return 0;
  }
  // Every rank of a stage holds the same bytes: the stage's weights per rank, the KV budget and
  // the activation reserve (the same sum the engine takes out of --gpu-memory-fraction).
  bool fits = true;
  nlohmann::json verdicts = nlohmann::json::array();
  std::string lines;
  const int64_t act = plan->activation_bytes_per_rank;
  for (size_t st = 0; st < plan->stages.size(); ++st) {
    const int64_t need = plan->stages[st].weight_bytes_per_rank + o.kv_memory_bytes + act;
    fits &= need <= memory;
    verdicts.push_back({{"stage", st}, {"weight_bytes_per_rank", plan->stages[st].weight_bytes_per_rank},
                        {"kv_memory_bytes", o.kv_memory_bytes}, {"activation_bytes_per_rank", act},
                        {"needed_bytes", need}, {"fits", need <= memory}});
    lines += absl::StrFormat(
        "stage %d: weights %.1f MiB + KV %.1f MiB + activations %.1f MiB = %.1f MiB of %.1f MiB per rank: %s\n",
        static_cast<int>(st), plan->stages[st].weight_bytes_per_rank / 1048576.0, o.kv_memory_bytes / 1048576.0,
        act / 1048576.0, need / 1048576.0, memory / 1048576.0,
                             need <= memory ? "fits" : absl::StrFormat("does not fit (short by %.1f MiB)",
                                                                      (need - memory) / 1048576.0));
  }
  if (absl::GetFlag(FLAGS_json)) {
    nlohmann::json j = nlohmann::json::parse(PlanToJson(*spec, *plan));
    j["memory_per_rank"] = memory;
    j["fits"] = fits;
    j["stage_memory"] = verdicts;
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("%s\n%s%s\n", PlanToText(*spec, *plan).c_str(), lines.c_str(),
                fits ? "the plan fits" : "the plan does not fit: lower --kv-memory, or add ranks (--tp/--pp)");
  }
  return fits ? 0 : 1;
}

}  // namespace strata
