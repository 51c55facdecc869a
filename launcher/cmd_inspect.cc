// strata inspect --model DIR [--kv-dtype D] [--kv-memory BYTES] [--json]: the normalized model,
// its KV groups, and what the KV cache costs.
#include <cstdio>

#include "absl/flags/flag.h"
#include "absl/strings/str_join.h"
#include "cache/kv_layout.h"
#include "launcher/commands.h"
#include "launcher/flags.h"
#include "nlohmann/json.hpp"
#include "runtime/model/config.h"

namespace strata {

int RunInspect(const std::vector<std::string>& args) {
  if (!args.empty()) return Fail("inspect", "takes no positional arguments", 2);
  auto spec = LoadModelConfig(absl::GetFlag(FLAGS_model));
  if (!spec.ok()) return Fail("inspect", std::string(spec.status().message()));
  DType dtype = spec->torch_dtype;
  if (absl::GetFlag(FLAGS_kv_dtype) != "auto") {
    auto d = ParseDTypeName(absl::GetFlag(FLAGS_kv_dtype));
    if (!d.ok()) return Fail("inspect", std::string(d.status().message()), 2);
    dtype = *d;
  }
  const KvLayout layout = MakeKvLayout(*spec, dtype, absl::GetFlag(FLAGS_block_size));
  PlannerOptions po;
  po.kv_dtype = dtype;
  po.weight_formats.matrices = WeightFormat::Plain(spec->torch_dtype);
  po.block_size = absl::GetFlag(FLAGS_block_size);
  po.max_seqs = absl::GetFlag(FLAGS_max_seqs);
  auto kv_memory_or = KvMemoryFromFlags(*spec, po);
  if (!kv_memory_or.ok()) return Fail("inspect", std::string(kv_memory_or.status().message()), 2);
  const int64_t kv_memory = *kv_memory_or;
  const KvCapacity cap = ComputeKvCapacity(layout, kv_memory, absl::GetFlag(FLAGS_max_seqs));
  nlohmann::json groups = nlohmann::json::array();
  for (const KvBank& b : layout.banks)
    groups.push_back({{"producer", b.producer_layer},
                      {"readers", spec->Readers(b.producer_layer)},
                      {"kv_heads", b.num_kv_heads},
                      {"window", b.window},
                      {"rope", spec->layers[b.producer_layer].rope_mode == KvRopeMode::kRaw ? "raw" : "post"}});
  nlohmann::json j = {{"model_type", spec->model_type},
                      {"layers", spec->num_layers},
                      {"layer_types", LayerTypesString(*spec)},
                      {"kv_dtype", std::string(TorchDTypeName(dtype))},
                      {"kv_groups", groups},
                      {"kv_bytes_per_token", layout.bytes_per_token},
                      {"kv_bytes_per_sequence_windows", layout.bytes_per_sequence},
                      {"kv_memory", kv_memory},
                      {"kv_capacity_tokens", cap.tokens},
                      {"kv_blocks", cap.num_blocks}};
  if (absl::GetFlag(FLAGS_json)) {
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  std::printf("model        %s, %d layers, hidden %d, %d heads x %d\n", spec->model_type.c_str(),
              spec->num_layers, spec->hidden_size, spec->num_heads, spec->head_dim);
  std::printf("layer map    %s\n", LayerTypesString(*spec).c_str());
  std::printf("KV groups    %zu (KV dtype %s)\n", layout.banks.size(), std::string(TorchDTypeName(dtype)).c_str());
  for (const KvBank& b : layout.banks)
    std::printf("  producer %2d  kv_heads %d  %s  readers %s\n", b.producer_layer, b.num_kv_heads,
                b.window ? ("window " + std::to_string(b.window)).c_str() : "full",
                absl::StrJoin(spec->Readers(b.producer_layer), ",").c_str());
  std::printf("KV bytes/token %lld   window banks/sequence %lld bytes\n",
              static_cast<long long>(layout.bytes_per_token), static_cast<long long>(layout.bytes_per_sequence));
  std::printf("capacity     %lld tokens in %lld bytes\n", static_cast<long long>(cap.tokens),
              static_cast<long long>(kv_memory));
  return 0;
}

}  // namespace strata
