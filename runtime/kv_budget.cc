#include "runtime/kv_budget.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "runtime/base/status.h"

namespace strata {

namespace {

// Bytes per rank left for KV in `fraction` of rank 0's free device memory, divided among the
// ranks that share that memory (every rank on the host for the CPU, those on one GPU for CUDA),
// once the largest stage's weights and the activation reserve are taken; may be zero or
// negative. Rank 0's device decides, so that every rank plans alike.
absl::StatusOr<int64_t> KvRoom(const ModelSpec& spec, const EngineOptions& o, double fraction,
                               const PlannerOptions& po, HostComm* world, Backend* backend, std::string* facts) {
  size_t free_bytes = 0, total = 0;
  backend->MemoryInfo(&free_bytes, &total);
  if (world && world->size() > 1) RETURN_IF_ERROR(world->Broadcast(&free_bytes, sizeof(free_bytes), 0));
  const int ranks_sharing = std::max(1, backend->RanksSharingMemory(o.backend.ranks_on_host));
  ASSIGN_OR_RETURN(PipelinePlan sizing, PlanPipeline(spec, Topology{o.tp, o.pp}, po));
  int64_t weights = 0;
  for (const StagePlan& st : sizing.stages) weights = std::max(weights, st.weight_bytes_per_rank);
  const int64_t usable = static_cast<int64_t>(fraction * static_cast<double>(free_bytes)) / ranks_sharing;
  const int64_t reserve = sizing.activation_bytes_per_rank;
  *facts = absl::StrCat(usable, " bytes per rank of ", free_bytes, " free (", ranks_sharing, " ranks sharing it); ", weights, " bytes of weights per rank and ", reserve,
                        " bytes of activations");
  return usable - weights - reserve;
}

}  // namespace

absl::StatusOr<int64_t> KvBudgetFromDevice(const ModelSpec& spec, const EngineOptions& o, PlannerOptions po,
                                           HostComm* world, Backend* backend) {
  if (o.gpu_memory_fraction > 1)
    return absl::InvalidArgumentError(absl::StrCat("--gpu-memory-fraction ", o.gpu_memory_fraction,
                                                   " must be in (0, 1]"));
  std::string facts;
  ASSIGN_OR_RETURN(const int64_t kv, KvRoom(spec, o, o.gpu_memory_fraction, po, world, backend, &facts));
  if (kv <= 0)
    return absl::ResourceExhaustedError(absl::StrCat("--gpu-memory-fraction ", o.gpu_memory_fraction,
                                                     " leaves no KV cache (", facts,
                                                     "); raise the fraction or add ranks"));
  return kv;
}

absl::StatusOr<int64_t> ContextKvBudget(const ModelSpec& spec, const EngineOptions& o, const PlannerOptions& po) {
  ASSIGN_OR_RETURN(PipelinePlan sizing, PlanPipeline(spec, Topology{o.tp, o.pp}, po));
  int64_t want = 0;
  for (const StagePlan& st : sizing.stages)
    want = std::max(want, (st.kv_bytes_per_token_per_rank * spec.max_position_embeddings +
                           st.kv_bytes_per_sequence_per_rank) * o.max_seqs);
  return want;
}

absl::StatusOr<int64_t> DefaultKvBudget(const ModelSpec& spec, const EngineOptions& o, const PlannerOptions& po,
                                        HostComm* world, Backend* backend, std::string* source) {
  ASSIGN_OR_RETURN(const int64_t want, ContextKvBudget(spec, o, po));
  *source = absl::StrCat("default: ", o.max_seqs, " sequences x ", spec.max_position_embeddings, " tokens");
  if (!backend->host_addressable()) {
    // Device memory is taken up front: the earlier fixed default, unless the device is sized
    // with --gpu-memory-fraction.
    constexpr int64_t kDeviceDefault = int64_t{1} << 30;
    if (want > kDeviceDefault) absl::StrAppend(source, ", capped at 1 GiB (--gpu-memory-fraction sizes it to the device)");
    return std::min(want, kDeviceDefault);
  }
  // Host memory is resident only as sequences fill it; still, never plan for more than half of
  // it, shared among the ranks on this host.
  std::string facts;
  ASSIGN_OR_RETURN(const int64_t room, KvRoom(spec, o, 0.5, po, world, backend, &facts));
  if (room <= 0)
    return absl::ResourceExhaustedError(absl::StrCat("the default KV budget (half of memory) leaves no KV cache (",
                                                     facts, "); give --kv-memory BYTES or add ranks"));
  if (want > room) absl::StrAppend(source, ", capped at half of memory");
  return std::min(want, room);
}

absl::StatusOr<KvBudget> ResolveKvBudget(const ModelSpec& spec, const EngineOptions& o, const PlannerOptions& po,
                                         HostComm* world, Backend* backend) {
  KvBudget b{o.kv_memory_bytes, "--kv-memory"};
  if (o.gpu_memory_fraction > 0) {
    ASSIGN_OR_RETURN(b.bytes, KvBudgetFromDevice(spec, o, po, world, backend));
    b.source = absl::StrCat("--gpu-memory-fraction ", o.gpu_memory_fraction);
  } else if (o.kv_memory_bytes == 0) {
    ASSIGN_OR_RETURN(b.bytes, DefaultKvBudget(spec, o, po, world, backend, &b.source));
  } else if (o.kv_memory_bytes < 0) {
    return absl::InvalidArgumentError(absl::StrCat("--kv-memory ", o.kv_memory_bytes, " must not be negative"));
  }
  return b;
}

}  // namespace strata
