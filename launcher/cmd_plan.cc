// strata plan --model DIR --tp T --pp P --kv-memory BYTES [--partition 0-5,6-11] [--json]:
// where each layer and KV group goes, what every rank holds, and what moves between stages.
#include <cstdio>

#include "absl/flags/flag.h"
#include "launcher/commands.h"
#include "launcher/flags.h"
#include "parallel/planner.h"
#include "runtime/model/config.h"

ABSL_FLAG(std::string, partition, "", "plan: forced layer ranges per stage, e.g. 0-5,6-11");

namespace strata {

int RunPlan(const std::vector<std::string>& args) {
  if (!args.empty()) return Fail("plan", "takes no positional arguments", 2);
  auto spec = LoadModelConfig(absl::GetFlag(FLAGS_model));
  if (!spec.ok()) return Fail("plan", std::string(spec.status().message()));
  PlannerOptions o;
  o.kv_memory_bytes = absl::GetFlag(FLAGS_kv_memory);
  o.block_size = absl::GetFlag(FLAGS_block_size);
  o.max_seqs = absl::GetFlag(FLAGS_max_seqs);
  o.weight_dtype = spec->torch_dtype;
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
  auto plan = PlanPipeline(*spec, Topology{absl::GetFlag(FLAGS_tp), absl::GetFlag(FLAGS_pp)}, o);
  if (!plan.ok()) return Fail("plan", std::string(plan.status().message()));
  const std::string text = absl::GetFlag(FLAGS_json) ? PlanToJson(*spec, *plan) : PlanToText(*spec, *plan);
  std::printf("%s\n", text.c_str());
  return 0;
}

}  // namespace strata
