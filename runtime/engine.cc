#include "runtime/engine.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "runtime/base/status.h"
#include "runtime/step_outputs.h"

namespace strata {

absl::StatusOr<std::unique_ptr<Engine>> Engine::Create(const std::string& model_dir, const EngineOptions& o,
                                                       EngineComms comms) {
  std::unique_ptr<Engine> e(new Engine());
  ASSIGN_OR_RETURN(e->model_, RankModel::Build(model_dir, o, comms));
  // As many micro-batches as stages keep every stage busy (one stage: one batch).
  e->driver_ = std::make_unique<PipelineDriver>(e->model_.get(), comms, o.pp);
  if (e->model_->rank == 0) e->CreateScheduler(o);
  return e;
}

void Engine::CreateScheduler(const EngineOptions& o) {
  SchedulerOptions so;
  so.block_size = o.block_size;
  so.num_blocks = model_->kv_capacity.num_blocks;
  so.max_seqs = o.max_seqs;
  so.max_batched_tokens = o.max_batched_tokens;
  so.micro_batches = o.pp;
  if (o.enable_prefix_caching) {
    const std::string refusal = PrefixCachingRefusal(model_->spec);
    if (refusal.empty()) {
      so.prefix_caching = prefix_caching_ = so.num_blocks > 0;
    } else {
      prefix_caching_refusal_ = refusal;
    }
  }
  scheduler_ = std::make_unique<Scheduler>(model_->spec, so);
}

std::string PrefixCachingRefusal(const ModelSpec& spec) {
  if (spec.HasUpwardEdges() || spec.use_sequential)
    return "LCKV's iterative prefill makes a prefix's cached rows depend on how its prompt was split";
  for (int p : spec.Producers())
    if (spec.layers[p].window > 0)
      return "sliding-window layers keep only their last window of rows, per sequence (ring banks)";
  return "";
}

absl::Status Engine::AddRequest(RequestId id, GenerationRequest r) {
  if (!scheduler_) return absl::FailedPreconditionError("requests go to rank 0");
  return scheduler_->Add(id, std::move(r));
}

void Engine::AbortRequest(RequestId id) {
  if (scheduler_) scheduler_->Abort(id);
}

bool Engine::HasWork() const {
  if (!scheduler_) return false;
  return !scheduler_->Idle() || driver_->any_in_flight();
}

absl::StatusOr<std::vector<RequestOutput>> Engine::Step() {
  using Clock = PipelineDriver::Clock;
  if (!scheduler_) return absl::FailedPreconditionError("steps are scheduled on rank 0");
  const auto t0 = Clock::now();
  std::vector<RequestOutput> outputs = scheduler_->TakeAborted();
  const int mb = driver_->NextMicroBatch();
  // This micro-batch's previous step: its logits decide its next tokens.
  ASSIGN_OR_RETURN(std::optional<PipelineDriver::Landed> landed, driver_->Await(mb));
  if (landed) {
    std::vector<RequestOutput> done =
        FinishStep(*scheduler_, *landed->step, landed->logits);
    outputs.insert(outputs.end(), done.begin(), done.end());
    driver_->Retire(mb, std::chrono::duration<double>(Clock::now() - t0).count());
  }
  const auto t_launch = Clock::now();
  ASSIGN_OR_RETURN(ScheduledStep step, scheduler_->Schedule(mb));
  if (step.empty()) return outputs;
  RETURN_IF_ERROR(driver_->Launch(mb, std::move(step), scheduler_->num_running(), t0, t_launch));
  return outputs;
}

absl::StatusOr<std::vector<GenerationResult>> Engine::Generate(const std::vector<GenerationRequest>& requests) {
  if (!scheduler_) return absl::FailedPreconditionError("requests go to rank 0");
  for (size_t i = 0; i < requests.size(); ++i) {
    absl::Status st = scheduler_->Validate(requests[i]);
    if (!st.ok()) return absl::Status(st.code(), absl::StrCat("request ", i, ": ", st.message()));
  }
  if (HasWork()) return absl::FailedPreconditionError("Generate needs an idle engine");
  driver_->ResetStats();
  std::vector<GenerationResult> results(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) RETURN_IF_ERROR(AddRequest(static_cast<RequestId>(i), requests[i]));
  while (HasWork()) {
    ASSIGN_OR_RETURN(std::vector<RequestOutput> outs, Step());
    for (const RequestOutput& o : outs) {
      GenerationResult& r = results[static_cast<size_t>(o.id)];
      if (o.token >= 0) {
        r.tokens.push_back(o.token);
        r.logprobs.push_back(o.logprob);
      }
      if (o.finished) r.finish_reason = o.finish_reason;
    }
  }
  return results;
}

absl::StatusOr<std::vector<RankStats>> Engine::CollectRankStats() {
  if (!scheduler_) return absl::FailedPreconditionError("statistics are collected on rank 0");
  return driver_->CollectRankStats();
}

absl::Status Engine::RunWorker() { return driver_->RunWorker(); }

absl::Status Engine::Shutdown() { return driver_->Shutdown(); }

}  // namespace strata
