#include "runtime/engine.h"

#include <algorithm>
#include <chrono>
#include <deque>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "runtime/base/status.h"
#include "runtime/model/config.h"
#include "runtime/model/checkpoint.h"
#include "parallel/staged_device_comm.h"

namespace strata {

absl::StatusOr<std::unique_ptr<Engine>> Engine::Create(const std::string& model_dir, const EngineOptions& o,
                                                       EngineComms comms) {
  std::unique_ptr<Engine> e(new Engine());
  e->comms_ = comms;
  const int world = comms.world ? comms.world->size() : 1;
  if (o.tp < 1 || o.pp < 1 || o.tp * o.pp != world)
    return absl::InvalidArgumentError(absl::StrCat("--tp ", o.tp, " x --pp ", o.pp, " must equal the ", world,
                                                   " ranks of the job"));
  const int rank = comms.world ? comms.world->rank() : 0;
  ASSIGN_OR_RETURN(e->spec_, LoadModelConfig(model_dir));
  if (o.block_size < 1) return absl::InvalidArgumentError("--block-size must be positive");
  if (o.max_seqs < 1) return absl::InvalidArgumentError("--max-seqs must be positive");
  DType kv_dtype = e->spec_.torch_dtype;
  if (o.kv_dtype != "auto") {
    ASSIGN_OR_RETURN(kv_dtype, ParseDTypeName(o.kv_dtype));
  }
  // Only the planner maps layers to stages; every rank derives the same plan.
  PlannerOptions po;
  po.kv_memory_bytes = o.kv_memory_bytes;
  po.kv_dtype = kv_dtype;
  po.block_size = o.block_size;
  po.max_seqs = o.max_seqs;
  po.max_batched_tokens = o.max_batched_tokens;
  if (!o.partition.empty()) {
    ASSIGN_OR_RETURN(po.forced_partition, ParsePartition(o.partition));
  }
  ASSIGN_OR_RETURN(e->backend_, CreateBackend(o.backend));
  if (e->spec_.head_dim > e->backend_->max_head_dim())
    return absl::UnimplementedError(absl::StrCat("head_dim ", e->spec_.head_dim, " is larger than the ",
                                                 e->backend_->name(), " backend's attention supports (",
                                                 e->backend_->max_head_dim(), ")"));
  ASSIGN_OR_RETURN(e->checkpoint_, Checkpoint::Open(model_dir));
  // What the loader will hold.
  ASSIGN_OR_RETURN(e->weight_formats_,
                   LoadedWeightFormats(e->checkpoint_, *e->backend_, !o.dequantize_weights, o.quantization));
  po.weight_formats = e->weight_formats_;
  std::string budget_source = "--kv-memory";
  if (o.gpu_memory_fraction > 0) {
    ASSIGN_OR_RETURN(po.kv_memory_bytes, KvBudgetFromDevice(e->spec_, o, po, comms.world, e->backend_.get()));
    budget_source = absl::StrCat("--gpu-memory-fraction ", o.gpu_memory_fraction);
  } else if (o.kv_memory_bytes == 0) {
    ASSIGN_OR_RETURN(po.kv_memory_bytes,
                     DefaultKvBudget(e->spec_, o, po, comms.world, e->backend_.get(), &budget_source));
  } else if (o.kv_memory_bytes < 0) {
    return absl::InvalidArgumentError(absl::StrCat("--kv-memory ", o.kv_memory_bytes, " must not be negative"));
  }
  ASSIGN_OR_RETURN(e->plan_, PlanPipeline(e->spec_, Topology{o.tp, o.pp}, po));
  const ParallelLayout& parallel = e->plan_.layout;
  e->rank_ = rank;
  e->stage_ = parallel.stage_of(rank);
  e->slice_ = parallel.slice_of(rank);
  const LayerSpan mine = parallel.stage_layers(e->stage_);
  ASSIGN_OR_RETURN(e->weights_,
                   LoadWeights(e->checkpoint_, e->spec_, e->backend_.get(), parallel, rank, e->weight_formats_));
  e->layout_ = MakeKvLayout(e->spec_, kv_dtype, o.block_size, parallel, mine.first, mine.last);
  // One block id covers a sequence on every stage, so every rank allocates the blocks of the
  // fullest stage: the plan's smallest capacity (unbounded when no stage has paged banks).
  const bool paged = e->plan_.kv_capacity_tokens != std::numeric_limits<int64_t>::max();
  e->capacity_.max_seqs = o.max_seqs;
  e->capacity_.tokens = e->plan_.kv_capacity_tokens;
  e->capacity_.num_blocks = paged ? e->plan_.kv_capacity_tokens / o.block_size : 0;
  if (e->capacity_.tokens <= 0)
    return absl::ResourceExhaustedError(absl::StrCat(
        "the KV budget (--kv-memory or --gpu-memory-fraction) of ", po.kv_memory_bytes, " bytes holds no KV block (", e->layout_.bytes_per_block(),
        " bytes per block plus ", e->layout_.bytes_per_sequence, " bytes of window banks per sequence)"));
  e->kv_budget_ = absl::StrFormat("KV cache %.1f MiB per rank (%s): %lld tokens, %d sequences at once",
                                   po.kv_memory_bytes / 1048576.0, budget_source,
                                   static_cast<long long>(e->capacity_.tokens), o.max_seqs);
  ASSIGN_OR_RETURN(KvStorage storage, KvStorage::Create(e->backend_.get(), e->layout_, e->capacity_));
  e->storage_ = std::make_unique<KvStorage>(std::move(storage));
  // A host data plane (MPI) with device memory (CUDA) goes through host staging.
  DeviceComm* tp_data = DataPlaneFor(comms.tp, e->backend_.get(), &e->staged_tp_);
  DeviceComm* world_data = DataPlaneFor(comms.world_data, e->backend_.get(), &e->staged_world_);
  for (DeviceComm* plane : {tp_data, world_data})
    if (plane != nullptr) RETURN_IF_ERROR(plane->BindComputeStream(e->backend_->native_stream()));
  ASSIGN_OR_RETURN(e->runner_, ModelRunner::Create(e->spec_, e->weights_, e->backend_.get(), e->storage_.get(),
                                                   {.plan = &e->plan_, .rank = rank, .tp = tp_data, .world = world_data}));
  // As many micro-batches as stages keep every stage busy (one stage: one batch).
  e->in_flight_.resize(o.pp);
  if (rank == 0) {
    SchedulerOptions so;
    so.block_size = o.block_size;
    so.num_blocks = e->capacity_.num_blocks;
    so.max_seqs = o.max_seqs;
    so.max_batched_tokens = o.max_batched_tokens;
    so.micro_batches = o.pp;
    if (o.enable_prefix_caching) {
      const std::string refusal = PrefixCachingRefusal(e->spec_);
      if (refusal.empty()) {
        so.prefix_caching = e->prefix_caching_ = so.num_blocks > 0;
      } else {
        e->prefix_caching_refusal_ = refusal;
      }
    }
    e->scheduler_ = std::make_unique<Scheduler>(e->spec_, so);
  }
  e->started_ = e->last_report_ = std::chrono::steady_clock::now();
  return e;
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
  if (!scheduler_->Idle()) return true;
  for (const InFlight& f : in_flight_)
    if (f.active) return true;
  return false;
}

absl::Status Engine::FailStep(const absl::Status& st) {
  if (distributed()) comms_.world->Abort(std::string(st.message()));
  return st;
}

absl::Status Engine::SendToChildren(const StepMessage& m) {
  const std::vector<int32_t> words = EncodeStepMessage(m);
  for (int child : plan_.layout.control_children(rank_))
    RETURN_IF_ERROR(comms_.world->Send(words.data(), words.size() * 4, child, kTagStep));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<RequestOutput>> Engine::Step() {
  using Clock = std::chrono::steady_clock;
  if (!scheduler_) return absl::FailedPreconditionError("steps are scheduled on rank 0");
  const auto t0 = Clock::now();
  std::vector<RequestOutput> outputs = scheduler_->TakeAborted();
  const int mb = next_micro_batch_;
  next_micro_batch_ = (next_micro_batch_ + 1) % static_cast<int>(in_flight_.size());
  InFlight& f = in_flight_[mb];
  if (f.active) {  // this micro-batch's previous step: its logits decide its next tokens
    if (f.pending) {
      if (absl::Status st = f.pending->Wait(); !st.ok()) return FailStep(st);
      f.pending.reset();
    }
    std::vector<RequestOutput> done = scheduler_->Complete(f.step, f.logits.data());
    outputs.insert(outputs.end(), done.begin(), done.end());
    f.active = false;
    // Waiting for a step's logits is part of that step's time (with pipeline stages, of its
    // later stages).
    (f.step.prefill_tokens > 0 ? stats_.prefill_seconds : stats_.decode_seconds) +=
        std::chrono::duration<double>(Clock::now() - t0).count();
  }
  const auto t_launch = Clock::now();
  ASSIGN_OR_RETURN(f.step, scheduler_->Schedule(mb));
  if (f.step.empty()) return outputs;

  StepMessage m;
  m.step_id = next_step_id_++;
  // About once a second every rank reports its statistics (rank 0 its own, here).
  m.report = t0 - last_report_ > std::chrono::seconds(1);
  if (m.report) {
    last_report_ = t0;
    rank_stats_[0] = OwnStats(m.step_id);
  }
  if (distributed()) {
    RETURN_IF_ERROR(DrainRankStats());
    if (!last_stage()) {  // receive before anything can block: the last stage may send early
      f.logits.resize(f.step.seqs.size() * static_cast<size_t>(spec_.vocab_size));
      auto pending = comms_.world->RecvAsync(f.logits.data(), f.logits.size() * 4, plan_.layout.logits_rank(),
                                             kTagLogits);
      if (!pending.ok()) return FailStep(pending.status());
      f.pending = std::move(*pending);
    }
    m.seqs = f.step.seqs;  // the plan the other ranks run
    if (absl::Status st = SendToChildren(m); !st.ok()) return FailStep(st);
  }
  const auto t1 = Clock::now();
  auto logits = runner_->Step(f.step.seqs);
  if (!logits.ok()) return FailStep(logits.status());
  busy_seconds_ += std::chrono::duration<double>(Clock::now() - t1).count();
  ++rank_steps_;
  if (last_stage()) f.logits = std::move(*logits);
  f.active = true;
  int active = 0;
  for (const InFlight& g : in_flight_) active += g.active;
  stats_.max_in_flight = std::max(stats_.max_in_flight, active);
  stats_.peak_running = std::max(stats_.peak_running, scheduler_->num_running());

  const double secs = std::chrono::duration<double>(Clock::now() - t_launch).count();
  ++stats_.steps;
  (f.step.prefill_tokens > 0 ? stats_.prefill_seconds : stats_.decode_seconds) += secs;
  stats_.prefill_tokens += f.step.prefill_tokens;
  stats_.decode_tokens += f.step.decode_tokens;
  return outputs;
}

absl::StatusOr<std::vector<GenerationResult>> Engine::Generate(const std::vector<GenerationRequest>& requests) {
  if (!scheduler_) return absl::FailedPreconditionError("requests go to rank 0");
  for (size_t i = 0; i < requests.size(); ++i) {
    absl::Status st = scheduler_->Validate(requests[i]);
    if (!st.ok()) return absl::Status(st.code(), absl::StrCat("request ", i, ": ", st.message()));
  }
  if (HasWork()) return absl::FailedPreconditionError("Generate needs an idle engine");
  stats_ = {};
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

RankStats Engine::OwnStats(int64_t step_id) const {
  RankStats s;
  s.step_id = step_id;
  s.rank = rank_;
  s.stage = stage_;
  s.slice = slice_;
  s.steps = rank_steps_;
  s.busy_seconds = busy_seconds_ - runner_->input_wait_seconds();
  s.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  s.edge_bytes = runner_->edge_bytes_sent();
  s.weight_bytes = weights_.bytes;
  s.kv_bytes = storage_->allocated_bytes();
  return s;
}

absl::Status Engine::DrainRankStats() {
  std::vector<char> msg;
  int source = 0;
  for (;;) {
    ASSIGN_OR_RETURN(bool got, comms_.world->TryRecv(kTagStats, &msg, &source));
    if (!got) return absl::OkStatus();
    ASSIGN_OR_RETURN(RankStats s, DecodeRankStats(msg));
    rank_stats_[source] = std::move(s);
  }
}

absl::StatusOr<std::vector<RankStats>> Engine::CollectRankStats() {
  if (!scheduler_) return absl::FailedPreconditionError("statistics are collected on rank 0");
  if (distributed()) {
    for (const InFlight& f : in_flight_)
      if (f.active) return absl::FailedPreconditionError("statistics are collected between steps");
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

absl::Status Engine::RunWorker() {
  if (!distributed()) return absl::OkStatus();
  const bool sends_logits = rank_ == plan_.layout.logits_rank();
  for (;;) {
    auto bytes = comms_.world->Recv(plan_.layout.control_parent(rank_), kTagStep);
    if (!bytes.ok()) comms_.world->Abort(std::string(bytes.status().message()));
    for (int child : plan_.layout.control_children(rank_)) {
      absl::Status st = comms_.world->Send(bytes->data(), bytes->size(), child, kTagStep);
      if (!st.ok()) comms_.world->Abort(std::string(st.message()));
    }
    auto m = DecodeStepMessage(*bytes);
    if (!m.ok()) comms_.world->Abort(std::string(m.status().message()));
    if (m->stop) return absl::OkStatus();
    if (!m->seqs.empty()) {
      const auto t0 = std::chrono::steady_clock::now();
      auto logits = runner_->Step(m->seqs);
      if (!logits.ok()) comms_.world->Abort(std::string(logits.status().message()));
      busy_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      ++rank_steps_;
      if (sends_logits) {
        absl::Status st = comms_.world->Send(logits->data(), logits->size() * 4, 0, kTagLogits);
        if (!st.ok()) comms_.world->Abort(std::string(st.message()));
      }
    }
    if (m->report) {
      const std::string s = EncodeRankStats(OwnStats(m->step_id));
      absl::Status st = comms_.world->Send(s.data(), s.size(), 0, kTagStats);
      if (!st.ok()) comms_.world->Abort(std::string(st.message()));
    }
  }
}

absl::Status Engine::Shutdown() {
  if (!distributed() || shut_down_ || comms_.world->rank() != 0) return absl::OkStatus();
  shut_down_ = true;
  for (InFlight& f : in_flight_)  // let the last stage's sends complete before the workers leave
    if (f.pending) RETURN_IF_ERROR(f.pending->Wait());
  StepMessage m;
  m.stop = true;
  return SendToChildren(m);
}

}  // namespace strata
