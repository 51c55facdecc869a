#include "runtime/pipeline_driver.h"

#include <algorithm>
#include <string>
#include <utility>

#include "runtime/base/status.h"

namespace strata {

PipelineDriver::PipelineDriver(RankModel* model, EngineComms comms, int micro_batches)
    : model_(model), comms_(comms), in_flight_(std::max(1, micro_batches)) {
  started_ = last_report_ = Clock::now();
}

int PipelineDriver::NextMicroBatch() {
  const int mb = next_micro_batch_;
  next_micro_batch_ = (next_micro_batch_ + 1) % micro_batches();
  return mb;
}

bool PipelineDriver::any_in_flight() const {
  for (const InFlight& f : in_flight_)
    if (f.active) return true;
  return false;
}

absl::Status PipelineDriver::FailStep(const absl::Status& st) {
  if (distributed()) comms_.world->Abort(std::string(st.message()));
  return st;
}

absl::Status PipelineDriver::SendToChildren(const StepMessage& m) {
  const std::vector<int32_t> words = EncodeStepMessage(m);
  for (int child : model_->plan.layout.control_children(model_->rank))
    RETURN_IF_ERROR(comms_.world->Send(words.data(), words.size() * 4, child, kTagStep));
  return absl::OkStatus();
}

absl::StatusOr<std::optional<PipelineDriver::Landed>> PipelineDriver::Await(int mb) {
  InFlight& f = in_flight_[mb];
  if (!f.active) return std::nullopt;
  if (f.pending) {
    if (absl::Status st = f.pending->Wait(); !st.ok()) return FailStep(st);
    f.pending.reset();
  }
  return Landed{&f.step, f.logits.data()};
}

void PipelineDriver::Retire(int mb, double seconds) {
  InFlight& f = in_flight_[mb];
  f.active = false;
  // Waiting for a step's logits is part of that step's time (with pipeline stages, of its later
  // stages).
  (f.step.prefill_tokens > 0 ? stats_.prefill_seconds : stats_.decode_seconds) += seconds;
}

absl::Status PipelineDriver::Distribute(InFlight& f, StepMessage& m) {
  RETURN_IF_ERROR(DrainRankStats());
  if (!last_stage()) {
    f.logits.resize(f.step.seqs.size() * static_cast<size_t>(model_->spec.vocab_size));
    auto pending = comms_.world->RecvAsync(f.logits.data(), f.logits.size() * 4,
                                           model_->plan.layout.logits_rank(), kTagLogits);
    if (!pending.ok()) return FailStep(pending.status());
    f.pending = std::move(*pending);
  }
  m.seqs = f.step.seqs;  // the plan the other ranks run
  if (absl::Status st = SendToChildren(m); !st.ok()) return FailStep(st);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<float>> PipelineDriver::RunOwnPart(const std::vector<SequenceStep>& seqs) {
  const auto t0 = Clock::now();
  absl::StatusOr<std::vector<float>> logits = model_->runner->Step(seqs);
  if (!logits.ok()) return logits;  // a failed step counts for nothing
  busy_seconds_ += std::chrono::duration<double>(Clock::now() - t0).count();
  ++rank_steps_;
  return logits;
}

absl::Status PipelineDriver::Launch(int mb, ScheduledStep step, int running, Clock::time_point turn_start,
                                    Clock::time_point t_launch) {
  InFlight& f = in_flight_[mb];
  f.step = std::move(step);
  StepMessage m;
  m.step_id = next_step_id_++;
  // About once a second every rank reports its statistics (rank 0 its own, here).
  m.report = turn_start - last_report_ > std::chrono::seconds(1);
  if (m.report) {
    last_report_ = turn_start;
    rank_stats_[0] = OwnStats(m.step_id);
  }
  if (distributed()) RETURN_IF_ERROR(Distribute(f, m));
  auto logits = RunOwnPart(f.step.seqs);
  if (!logits.ok()) return FailStep(logits.status());
  if (last_stage()) f.logits = std::move(*logits);
  f.active = true;
  int active = 0;
  for (const InFlight& g : in_flight_) active += g.active;
  stats_.max_in_flight = std::max(stats_.max_in_flight, active);
  stats_.peak_running = std::max(stats_.peak_running, running);
  ++stats_.steps;
  (f.step.prefill_tokens > 0 ? stats_.prefill_seconds : stats_.decode_seconds) +=
      std::chrono::duration<double>(Clock::now() - t_launch).count();
  stats_.prefill_tokens += f.step.prefill_tokens;
  stats_.decode_tokens += f.step.decode_tokens;
  return absl::OkStatus();
}

RankStats PipelineDriver::OwnStats(int64_t step_id) const {
  RankStats s;
  s.step_id = step_id;
  s.rank = model_->rank;
  s.stage = model_->stage;
  s.slice = model_->slice;
  s.steps = rank_steps_;
  s.busy_seconds = busy_seconds_ - model_->runner->input_wait_seconds();
  s.wall_seconds = std::chrono::duration<double>(Clock::now() - started_).count();
  s.edge_bytes = model_->runner->edge_bytes_sent();
  s.weight_bytes = model_->weights.bytes;
  s.kv_bytes = model_->storage->allocated_bytes();
  return s;
}

absl::Status PipelineDriver::DrainRankStats() {
  std::vector<char> msg;
  int source = 0;
  for (;;) {
    ASSIGN_OR_RETURN(bool got, comms_.world->TryRecv(kTagStats, &msg, &source));
    if (!got) return absl::OkStatus();
    ASSIGN_OR_RETURN(RankStats s, DecodeRankStats(msg));
    rank_stats_[source] = std::move(s);
  }
}

absl::StatusOr<std::vector<RankStats>> PipelineDriver::CollectRankStats() {
  if (distributed()) {
    if (any_in_flight()) return absl::FailedPreconditionError("statistics are collected between steps");
    StepMessage m;  // no sequences: the workers only report
    m.report = true;
    m.step_id = next_step_id_++;
    RETURN_IF_ERROR(SendToChildren(m));
    // Each rank's reports arrive in order; older periodic ones may still be queued before this one.
    for (int r = 1; r < comms_.world->size(); ++r) {
      do {
        ASSIGN_OR_RETURN(std::vector<char> msg, comms_.world->Recv(r, kTagStats));
        ASSIGN_OR_RETURN(rank_stats_[r], DecodeRankStats(msg));
      } while (rank_stats_[r].step_id != m.step_id);
    }
  }
  rank_stats_[0] = OwnStats(next_step_id_ - 1);
  std::vector<RankStats> out;
  for (const auto& [rank, s] : rank_stats_) out.push_back(s);
  return out;
}

absl::StatusOr<bool> PipelineDriver::WorkOn(const std::vector<char>& bytes) {
  for (int child : model_->plan.layout.control_children(model_->rank))
    RETURN_IF_ERROR(comms_.world->Send(bytes.data(), bytes.size(), child, kTagStep));
  ASSIGN_OR_RETURN(StepMessage m, DecodeStepMessage(bytes));
  if (m.stop) return false;
  if (!m.seqs.empty()) {
    ASSIGN_OR_RETURN(std::vector<float> logits, RunOwnPart(m.seqs));
    if (model_->rank == model_->plan.layout.logits_rank())
      RETURN_IF_ERROR(comms_.world->Send(logits.data(), logits.size() * 4, 0, kTagLogits));
  }
  if (m.report) {
    const std::string s = EncodeRankStats(OwnStats(m.step_id));
    RETURN_IF_ERROR(comms_.world->Send(s.data(), s.size(), 0, kTagStats));
  }
  return true;
}

absl::Status PipelineDriver::RunWorker() {
  if (!distributed()) return absl::OkStatus();
  for (;;) {
    auto bytes = comms_.world->Recv(model_->plan.layout.control_parent(model_->rank), kTagStep);
    if (!bytes.ok()) comms_.world->Abort(std::string(bytes.status().message()));
    // Any failure here leaves the other ranks inside a step's collectives: it ends the job.
    absl::StatusOr<bool> go_on = WorkOn(*bytes);
    if (!go_on.ok()) comms_.world->Abort(std::string(go_on.status().message()));
    if (!*go_on) return absl::OkStatus();
  }
}

absl::Status PipelineDriver::Shutdown() {
  if (!distributed() || shut_down_ || comms_.world->rank() != 0) return absl::OkStatus();
  shut_down_ = true;
  for (InFlight& f : in_flight_)  // let the last stage's sends complete before the workers leave
    if (f.pending) RETURN_IF_ERROR(f.pending->Wait());
  StepMessage m;
  m.stop = true;
  return SendToChildren(m);
}

}  // namespace strata
