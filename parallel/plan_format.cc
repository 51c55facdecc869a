// Readable and JSON forms of a PipelinePlan (`strata plan`).
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"
#include "parallel/planner.h"

namespace strata {
namespace {

std::string Tokens(int64_t t) {
  return t == std::numeric_limits<int64_t>::max() ? std::string("unbounded") : absl::StrCat(t);
}

std::vector<int> StageOfLayer(const ModelSpec& spec, const PipelinePlan& plan) {
  std::vector<int> out;
  for (int l = 0; l < spec.num_layers; ++l) out.push_back(plan.layout.stage_of_layer(l));
  return out;
}

std::string Mib(int64_t b) { return absl::StrFormat("%.1f MiB", b / 1048576.0); }

}  // namespace

std::string PlanToText(const ModelSpec& spec, const PipelinePlan& plan) {
  std::string out = absl::StrFormat("model %s: %d layers, layer map %s\n", spec.model_type, spec.num_layers,
                                    LayerTypesString(spec));
  absl::StrAppendFormat(&out, "topology: tp %d x pp %d = %d ranks\n", plan.layout.tp(), plan.layout.pp(),
                        plan.layout.world_size());
  absl::StrAppendFormat(&out, "partition: %s\n\n", plan.partition_reason);
  absl::StrAppendFormat(&out, "%-6s %-8s %-14s %-14s %-14s %-16s %-12s %s\n", "stage", "layers", "homes", "mirrors",
                        "weights/rank", "KV B/token/rank", "GFLOP/token", "KV capacity (tokens)");
  for (size_t s = 0; s < plan.stages.size(); ++s) {
    const StagePlan& st = plan.stages[s];
    absl::StrAppendFormat(&out, "%-6d %-8s %-14s %-14s %-14s %-16d %-12.3f %s\n", s,
                          absl::StrCat(plan.layout.stage_layers(s).first, "-", plan.layout.stage_layers(s).last),
                          st.homes.empty() ? "-" : absl::StrJoin(st.homes, ","),
                          st.mirrors.empty() ? "-" : absl::StrJoin(st.mirrors, ","), Mib(st.weight_bytes_per_rank),
                          st.kv_bytes_per_token_per_rank, st.gflops_per_token, Tokens(st.kv_capacity_tokens));
    if (st.kv_bytes_per_sequence_per_rank)
      absl::StrAppendFormat(&out, "       + %d bytes of sliding-window banks per sequence per rank\n",
                            st.kv_bytes_per_sequence_per_rank);
  }
  absl::StrAppend(&out, "\nKV groups (producer: readers):\n");
  for (int p : spec.Producers())
    absl::StrAppendFormat(&out, "  %d: %s\n", p, absl::StrJoin(spec.Readers(p), ","));
  absl::StrAppend(&out, "\ntransfer edges:\n");
  if (plan.edges.empty()) absl::StrAppend(&out, "  none (every group lies inside one stage)\n");
  for (const TransferEdge& e : plan.edges)
    absl::StrAppendFormat(&out, "  group %d: stage %d -> stage %d%s, %d bytes/token per rank, %d bytes/token in all\n",
                          e.producer_layer, e.from_stage, e.to_stage, e.upward ? " (upward)" : "",
                          e.bytes_per_token_per_rank, e.bytes_per_token);
  absl::StrAppendFormat(&out, "\npipeline KV capacity: %s tokens (the smallest stage)\n", Tokens(plan.kv_capacity_tokens));
  return out;
}

std::string PlanToJson(const ModelSpec& spec, const PipelinePlan& plan) {
  nlohmann::json stages = nlohmann::json::array(), edges = nlohmann::json::array();
  for (size_t s = 0; s < plan.stages.size(); ++s) {
    const StagePlan& st = plan.stages[s];
    stages.push_back({{"first_layer", plan.layout.stage_layers(static_cast<int>(s)).first},
                      {"last_layer", plan.layout.stage_layers(static_cast<int>(s)).last},
                      {"homes", st.homes},
                      {"mirrors", st.mirrors},
                      {"weight_bytes_per_rank", st.weight_bytes_per_rank},
                      {"kv_bytes_per_token_per_rank", st.kv_bytes_per_token_per_rank},
                      {"kv_bytes_per_sequence_per_rank", st.kv_bytes_per_sequence_per_rank},
                      {"kv_capacity_tokens", st.kv_capacity_tokens},
                      {"gflops_per_token", st.gflops_per_token}});
  }
  for (const TransferEdge& e : plan.edges)
    edges.push_back({{"producer_layer", e.producer_layer},
                     {"from_stage", e.from_stage},
                     {"to_stage", e.to_stage},
                     {"upward", e.upward},
                     {"bytes_per_token_per_rank", e.bytes_per_token_per_rank},
                     {"bytes_per_token", e.bytes_per_token}});
  nlohmann::json j = {{"tp", plan.layout.tp()},
                      {"pp", plan.layout.pp()},
                      {"layer_types", LayerTypesString(spec)},
                      {"stage_of_layer", StageOfLayer(spec, plan)},
                      {"stages", stages},
                      {"edges", edges},
                      {"kv_capacity_tokens", plan.kv_capacity_tokens},
                      {"partition_reason", plan.partition_reason}};
  return j.dump(2);
}

}  // namespace strata
