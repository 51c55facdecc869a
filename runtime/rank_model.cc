#include "runtime/rank_model.h"

#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "parallel/staged_device_comm.h"
#include "runtime/base/status.h"
#include "runtime/kv_budget.h"
#include "runtime/model/config.h"

namespace strata {
namespace {

absl::Status CheckTopology(const EngineOptions& o, int world) {
  if (o.tp < 1 || o.pp < 1 || o.tp * o.pp != world)
    return absl::InvalidArgumentError(absl::StrCat("--tp ", o.tp, " x --pp ", o.pp, " must equal the ", world,
                                                   " ranks of the job"));
  return absl::OkStatus();
}

absl::Status CheckSizes(const EngineOptions& o) {
  if (o.block_size < 1) return absl::InvalidArgumentError("--block-size must be positive");
  if (o.max_seqs < 1) return absl::InvalidArgumentError("--max-seqs must be positive");
  return absl::OkStatus();
}

// What the planner is asked, less the KV budget and the weight formats (known later).
absl::StatusOr<PlannerOptions> PlannerOptionsFor(const EngineOptions& o, const ModelSpec& spec) {
  PlannerOptions po;
  po.kv_memory_bytes = o.kv_memory_bytes;
  po.kv_dtype = spec.torch_dtype;
  if (o.kv_dtype != "auto") {
    ASSIGN_OR_RETURN(po.kv_dtype, ParseDTypeName(o.kv_dtype));
  }
  po.block_size = o.block_size;
  po.max_seqs = o.max_seqs;
  po.max_batched_tokens = o.max_batched_tokens;
  if (!o.partition.empty()) {
    ASSIGN_OR_RETURN(po.forced_partition, ParsePartition(o.partition));
  }
  return po;
}

}  // namespace

absl::StatusOr<std::unique_ptr<RankModel>> RankModel::Build(const std::string& model_dir, const EngineOptions& o,
                                                            EngineComms comms) {
  std::unique_ptr<RankModel> m(new RankModel());
  RETURN_IF_ERROR(CheckTopology(o, comms.world ? comms.world->size() : 1));
  m->rank = comms.world ? comms.world->rank() : 0;
  ASSIGN_OR_RETURN(m->spec, LoadModelConfig(model_dir));
  RETURN_IF_ERROR(CheckSizes(o));
  ASSIGN_OR_RETURN(PlannerOptions po, PlannerOptionsFor(o, m->spec));  // flags' errors before the device's
  ASSIGN_OR_RETURN(m->backend, CreateBackend(o.backend));
  if (m->spec.head_dim > m->backend->max_head_dim())
    return absl::UnimplementedError(absl::StrCat("head_dim ", m->spec.head_dim, " is larger than the ",
                                                 m->backend->name(), " backend's attention supports (",
                                                 m->backend->max_head_dim(), ")"));
  RETURN_IF_ERROR(m->LoadWeightsAndPlan(model_dir, o, std::move(po), comms));
  RETURN_IF_ERROR(m->CreateRunner(comms));
  return m;
}

// The checkpoint's formats decide the weight bytes the plan and the KV budget count; only the
// planner maps layers to stages, and every rank derives the same plan.
absl::Status RankModel::LoadWeightsAndPlan(const std::string& model_dir, const EngineOptions& o, PlannerOptions po,
                                           EngineComms comms) {
  ASSIGN_OR_RETURN(checkpoint, Checkpoint::Open(model_dir));
  ASSIGN_OR_RETURN(weight_formats, LoadedWeightFormats(checkpoint, *backend, !o.dequantize_weights, o.quantization));
  po.weight_formats = weight_formats;
  ASSIGN_OR_RETURN(const KvBudget budget, ResolveKvBudget(spec, o, po, comms.world, backend.get()));
  po.kv_memory_bytes = budget.bytes;
  ASSIGN_OR_RETURN(plan, PlanPipeline(spec, Topology{o.tp, o.pp}, po));
  stage = plan.layout.stage_of(rank);
  slice = plan.layout.slice_of(rank);
  ASSIGN_OR_RETURN(weights, LoadWeights(checkpoint, spec, backend.get(), plan.layout, rank, weight_formats));
  const LayerSpan mine = plan.layout.stage_layers(stage);
  kv_layout = MakeKvLayout(spec, po.kv_dtype, o.block_size, plan.layout, mine.first, mine.last);
  return AllocateKv(o, budget.bytes, budget.source);
}

// One block id covers a sequence on every stage, so every rank allocates the blocks of the
// fullest stage: the plan's smallest capacity (unbounded when no stage has paged banks).
absl::Status RankModel::AllocateKv(const EngineOptions& o, int64_t budget_bytes, const std::string& budget_source) {
  const bool paged = plan.kv_capacity_tokens != std::numeric_limits<int64_t>::max();
  kv_capacity.max_seqs = o.max_seqs;
  kv_capacity.tokens = plan.kv_capacity_tokens;
  kv_capacity.num_blocks = paged ? plan.kv_capacity_tokens / o.block_size : 0;
  if (kv_capacity.tokens <= 0)
    return absl::ResourceExhaustedError(absl::StrCat(
        "the KV budget (--kv-memory or --gpu-memory-fraction) of ", budget_bytes, " bytes holds no KV block (",
        kv_layout.bytes_per_block(), " bytes per block plus ", kv_layout.bytes_per_sequence,
        " bytes of window banks per sequence)"));
  kv_budget = absl::StrFormat("KV cache %.1f MiB per rank (%s): %lld tokens, %d sequences at once",
                              budget_bytes / 1048576.0, budget_source, static_cast<long long>(kv_capacity.tokens),
                              o.max_seqs);
  ASSIGN_OR_RETURN(KvStorage s, KvStorage::Create(backend.get(), kv_layout, kv_capacity));
  storage = std::make_unique<KvStorage>(std::move(s));
  return absl::OkStatus();
}

absl::Status RankModel::CreateRunner(EngineComms comms) {
  // A host data plane (MPI) with device memory (CUDA) goes through host staging.
  DeviceComm* tp_data = DataPlaneFor(comms.tp, backend.get(), &staged_tp);
  DeviceComm* world_data = DataPlaneFor(comms.world_data, backend.get(), &staged_world);
  for (DeviceComm* plane : {tp_data, world_data})
    if (plane != nullptr) RETURN_IF_ERROR(plane->BindComputeStream(backend->native_stream()));
  ASSIGN_OR_RETURN(runner, ModelRunner::Create(spec, weights, backend.get(), storage.get(),
                                               {.plan = &plan, .rank = rank, .tp = tp_data, .world = world_data}));
  return absl::OkStatus();
}

}  // namespace strata
