// File: runtime/kv_budget.h
// The KV budget policy: how many bytes of KV cache each rank plans for, from --kv-memory,
// --gpu-memory-fraction or the default (max_seqs full contexts, capped by memory). Every rank
// computes the same number: rank 0's free memory decides, broadcast to the others.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "kernels/backend.h"
#include "parallel/comm.h"
#include "parallel/planner.h"
#include "runtime/engine_options.h"
#include "runtime/model/model_spec.h"

namespace strata {

// The per-rank KV budget --gpu-memory-fraction gives (see EngineOptions).
absl::StatusOr<int64_t> KvBudgetFromDevice(const ModelSpec& spec, const EngineOptions& o, PlannerOptions po,
                                           HostComm* world, Backend* backend);
// Bytes per rank that hold o.max_seqs sequences of the model's full context on the fullest stage
// (the default budget before any cap; plan and inspect show it).
absl::StatusOr<int64_t> ContextKvBudget(const ModelSpec& spec, const EngineOptions& o, const PlannerOptions& po);
// The default budget (--kv-memory 0): ContextKvBudget, capped on the CPU at half of rank 0's
// memory shared among the ranks on the host (less weights and activations), on a device backend
// at 1 GiB (its memory is taken up front); `source` says which, for the startup line.
absl::StatusOr<int64_t> DefaultKvBudget(const ModelSpec& spec, const EngineOptions& o, const PlannerOptions& po,
                                        HostComm* world, Backend* backend, std::string* source);

// The budget this rank plans with, and where it came from in words ("--kv-memory",
// "--gpu-memory-fraction 0.9", or the default's source): the one entry point of the policy.
struct KvBudget {
  int64_t bytes = 0;
  std::string source;
};
absl::StatusOr<KvBudget> ResolveKvBudget(const ModelSpec& spec, const EngineOptions& o, const PlannerOptions& po,
                                         HostComm* world, Backend* backend);

}  // namespace strata
