// File: runtime/rank_model.h
// This rank's share of a model, built in one place (RankModel::Build): the model spec, the
// backend, the pipeline plan (the planner's, the same on every rank), the weights this rank's
// stage and slice load from the checkpoint, its KV layout, capacity and storage, the data planes
// and the runner that steps them. It holds them; it runs nothing (PipelineDriver does).
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "cache/kv_layout.h"
#include "cache/kv_storage.h"
#include "kernels/backend.h"
#include "parallel/job_comms.h"
#include "parallel/planner.h"
#include "runtime/engine_options.h"
#include "runtime/model/checkpoint.h"
#include "runtime/model/model_spec.h"
#include "runtime/model_runner.h"
#include "runtime/weights.h"

namespace strata {

struct RankModel {
  static absl::StatusOr<std::unique_ptr<RankModel>> Build(const std::string& model_dir, const EngineOptions& options,
                                                          EngineComms comms);

  ModelSpec spec;
  std::unique_ptr<Backend> backend;
  WeightFormats weight_formats;  // the format each matrix is held in (LoadedWeightFormats)
  Checkpoint checkpoint;         // kept mapped: weights may point into it (declared before weights)
  ModelWeights weights;
  PipelinePlan plan;
  int rank = 0, stage = 0, slice = 0;  // stage and slice as plan.layout places rank
  KvLayout kv_layout;                  // this stage's KV banks (plan.layout is the parallel layout)
  KvCapacity kv_capacity;
  std::string kv_budget;  // the budget in words: its size, where it came from, what it holds
  // Host data planes wrapped for a device backend (StagedDeviceComm); outlive the runner.
  std::unique_ptr<DeviceComm> staged_tp, staged_world;
  std::unique_ptr<KvStorage> storage;
  std::unique_ptr<ModelRunner> runner;

 private:
  RankModel() = default;
  absl::Status LoadWeightsAndPlan(const std::string& model_dir, const EngineOptions& o, PlannerOptions po,
                                  EngineComms comms);
  absl::Status AllocateKv(const EngineOptions& o, int64_t budget_bytes, const std::string& budget_source);
  absl::Status CreateRunner(EngineComms comms);
};

}  // namespace strata
