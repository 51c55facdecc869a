#include "runtime/engine.h"

#include <chrono>
#include <deque>
#include <limits>

#include "absl/strings/str_cat.h"
#include "runtime/base/status.h"
#include "runtime/model/config.h"
#include "runtime/model/safetensors.h"

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
  const TensorSlice slice{rank % o.tp, o.tp};
  const int stage = rank / o.tp;
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
  po.weight_dtype = e->spec_.torch_dtype;
  po.block_size = o.block_size;
  po.max_seqs = o.max_seqs;
  ASSIGN_OR_RETURN(e->plan_, PlanPipeline(e->spec_, Topology{o.tp, o.pp}, po));
  const StagePlan& mine = e->plan_.stages[stage];
  ASSIGN_OR_RETURN(Checkpoint ckpt, Checkpoint::Open(model_dir));
  ASSIGN_OR_RETURN(e->backend_, CreateBackend(o.backend));
  ASSIGN_OR_RETURN(e->weights_, LoadWeights(ckpt, e->spec_, e->backend_.get(), slice,
                                            LayerRange{mine.first_layer, mine.last_layer}));
  e->layout_ = MakeKvLayout(e->spec_, kv_dtype, o.block_size, mine.first_layer, mine.last_layer, o.tp);
  // One block id covers a sequence on every stage, so every rank allocates the blocks of the
  // fullest stage: the plan's smallest capacity (unbounded when no stage has paged banks).
  e->paged_ = e->plan_.kv_capacity_tokens != std::numeric_limits<int64_t>::max();
  e->capacity_.max_seqs = o.max_seqs;
  e->capacity_.tokens = e->plan_.kv_capacity_tokens;
  e->capacity_.num_blocks = e->paged_ ? e->plan_.kv_capacity_tokens / o.block_size : 0;
  if (e->capacity_.tokens <= 0)
    return absl::ResourceExhaustedError(absl::StrCat(
        "--kv-memory ", o.kv_memory_bytes, " bytes holds no KV block (", e->layout_.bytes_per_block(),
        " bytes per block plus ", e->layout_.bytes_per_sequence, " bytes of window banks per sequence)"));
  ASSIGN_OR_RETURN(KvStorage storage, KvStorage::Create(e->backend_.get(), e->layout_, e->capacity_));
  e->storage_ = std::make_unique<KvStorage>(std::move(storage));
  e->blocks_ = std::make_unique<BlockPool>(e->paged_ ? e->capacity_.num_blocks : 0);
  e->slots_ = std::make_unique<SlotPool>(o.max_seqs);
  StageContext sc{stage, mine.first_layer, mine.last_layer, o.tp, o.pp > 1 ? &e->plan_ : nullptr, comms.world_data};
  e->runner_ = std::make_unique<ModelRunner>(e->spec_, e->weights_, e->backend_.get(), e->storage_.get(), slice,
                                             comms.tp, sc);
  return e;
}

bool Engine::SequentialPrefill(size_t prompt_len) const {
  if (spec_.use_sequential) return true;
  return spec_.HasUpwardEdges() &&
         prompt_len <= static_cast<size_t>(spec_.forward_passes + spec_.backward_passes);
}

absl::Status Engine::Validate(const GenerationRequest& r) const {
  if (r.prompt.empty()) return absl::InvalidArgumentError("the prompt is empty");
  for (int id : r.prompt)
    if (id < 0 || id >= spec_.vocab_size)
      return absl::InvalidArgumentError(absl::StrCat("prompt token id ", id, " outside the vocabulary (0..",
                                                     spec_.vocab_size - 1, ")"));
  if (r.max_tokens < 1) return absl::InvalidArgumentError("max_tokens must be at least 1");
  const int64_t total = static_cast<int64_t>(r.prompt.size()) + r.max_tokens;
  if (total > spec_.max_position_embeddings)
    return absl::InvalidArgumentError(absl::StrCat("prompt (", r.prompt.size(), " tokens) plus max_tokens (",
                                                   r.max_tokens, ") exceeds the context length ",
                                                   spec_.max_position_embeddings));
  if (paged_ && BlocksFor(total, layout_.block_size) > blocks_->num_blocks())
    return absl::ResourceExhaustedError(absl::StrCat("the request needs ", BlocksFor(total, layout_.block_size),
                                                     " KV blocks; the cache has ", blocks_->num_blocks()));
  if (!(r.sampling.temperature >= 0) || !(r.sampling.top_p > 0 && r.sampling.top_p <= 1) || r.sampling.top_k < 0)
    return absl::InvalidArgumentError("sampling: temperature >= 0, 0 < top_p <= 1, top_k >= 0");
  return absl::OkStatus();
}

absl::StatusOr<std::vector<GenerationResult>> Engine::Generate(const std::vector<GenerationRequest>& requests) {
  for (size_t i = 0; i < requests.size(); ++i) {
    absl::Status st = Validate(requests[i]);
    if (!st.ok()) return absl::Status(st.code(), absl::StrCat("request ", i, ": ", st.message()));
  }
  struct Running {
    size_t index;
    std::vector<int> blocks;
    int slot;
    int context_len = 0;  // tokens in the cache
    size_t prompt_pos = 0;
    SamplerRng rng;
  };
  std::vector<GenerationResult> results(requests.size());
  std::deque<size_t> waiting;
  for (size_t i = 0; i < requests.size(); ++i) waiting.push_back(i);
  std::vector<Running> running;
  stats_ = {};
  using Clock = std::chrono::steady_clock;

  while (!waiting.empty() || !running.empty()) {
    // Admit in order while a slot and the request's whole KV reservation are free.
    while (!waiting.empty() && slots_->num_free() > 0) {
      const GenerationRequest& r = requests[waiting.front()];
      const int64_t need = paged_
                               ? BlocksFor(static_cast<int64_t>(r.prompt.size()) + r.max_tokens, layout_.block_size)
                               : 0;
      if (need > blocks_->num_free()) break;
      Running s{waiting.front(), {}, 0, 0, 0, SamplerRng(r.sampling.seed)};
      ASSIGN_OR_RETURN(s.blocks, blocks_->Allocate(need));
      ASSIGN_OR_RETURN(s.slot, slots_->Allocate());
      running.push_back(std::move(s));
      waiting.pop_front();
    }
    if (running.empty()) return absl::InternalError("no request fits the KV cache");

    std::vector<SequenceStep> steps;
    bool prefill = false;
    int64_t step_tokens = 0;
    for (const Running& s : running) {
      const GenerationRequest& r = requests[s.index];
      SequenceStep st;
      if (s.prompt_pos < r.prompt.size()) {
        const size_t n = SequentialPrefill(r.prompt.size()) ? 1 : r.prompt.size() - s.prompt_pos;
        st.tokens.assign(r.prompt.begin() + s.prompt_pos, r.prompt.begin() + s.prompt_pos + n);
        prefill = true;
      } else {
        st.tokens = {results[s.index].tokens.back()};
      }
      st.context_len = s.context_len;
      st.blocks = &s.blocks;
      st.slot = s.slot;
      step_tokens += static_cast<int64_t>(st.tokens.size());
      steps.push_back(std::move(st));
    }
    const auto t0 = Clock::now();
    if (distributed()) {
      bool stop = false;
      RETURN_IF_ERROR(BroadcastSteps(&steps, nullptr, &stop));
    }
    auto step_logits = runner_->Step(steps);
    // The other ranks are inside the same step's collectives: a failure here cannot be unwound.
    if (!step_logits.ok() && distributed()) comms_.world->Abort(std::string(step_logits.status().message()));
    ASSIGN_OR_RETURN(std::vector<float> logits, std::move(step_logits));
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    ++stats_.steps;
    (prefill ? stats_.prefill_seconds : stats_.decode_seconds) += secs;
    (prefill ? stats_.prefill_tokens : stats_.decode_tokens) += step_tokens;

    std::vector<Running> still;
    for (size_t i = 0; i < running.size(); ++i) {
      Running& s = running[i];
      const GenerationRequest& r = requests[s.index];
      GenerationResult& out = results[s.index];
      s.context_len += static_cast<int>(steps[i].tokens.size());
      bool done = false;
      if (s.prompt_pos < r.prompt.size()) s.prompt_pos += steps[i].tokens.size();
      if (s.prompt_pos >= r.prompt.size()) {  // the prompt is in: this step's logits give a token
        const SampledToken t = SampleToken(logits.data() + i * spec_.vocab_size, spec_.vocab_size, r.sampling, &s.rng);
        out.tokens.push_back(t.token);
        out.logprobs.push_back(t.logprob);
        const bool eos = !r.ignore_eos &&
                         std::find(spec_.eos_token_ids.begin(), spec_.eos_token_ids.end(), t.token) !=
                             spec_.eos_token_ids.end();
        if (eos) {
          out.finish_reason = "stop";
          done = true;
        } else if (static_cast<int>(out.tokens.size()) >= r.max_tokens) {
          out.finish_reason = "length";
          done = true;
        }
      }
      if (done) {
        blocks_->Free(s.blocks);
        slots_->Free(s.slot);
      } else {
        still.push_back(std::move(s));
      }
    }
    running = std::move(still);
  }
  return results;
}

// Step message: [stop, num_seqs, then per sequence: context_len, slot, n_tokens, n_blocks,
// tokens..., blocks...], preceded by its length.
absl::Status Engine::BroadcastSteps(std::vector<SequenceStep>* steps, std::vector<std::vector<int>>* blocks,
                                    bool* stop) {
  const bool root = comms_.world->rank() == 0;
  std::vector<int32_t> msg;
  if (root) {
    msg = {*stop ? 1 : 0, static_cast<int32_t>(steps->size())};
    for (const SequenceStep& s : *steps) {
      const int nb = s.blocks ? static_cast<int>(s.blocks->size()) : 0;
      msg.insert(msg.end(), {s.context_len, s.slot, static_cast<int32_t>(s.tokens.size()), nb});
      msg.insert(msg.end(), s.tokens.begin(), s.tokens.end());
      if (nb) msg.insert(msg.end(), s.blocks->begin(), s.blocks->end());
    }
  }
  int64_t n = static_cast<int64_t>(msg.size());
  RETURN_IF_ERROR(comms_.world->Broadcast(&n, sizeof(n), 0));
  msg.resize(static_cast<size_t>(n));
  RETURN_IF_ERROR(comms_.world->Broadcast(msg.data(), msg.size() * sizeof(int32_t), 0));
  if (root) return absl::OkStatus();
  *stop = msg[0] != 0;
  const int num = msg[1];
  steps->assign(num, SequenceStep{});
  blocks->assign(num, {});
  size_t at = 2;
  for (int i = 0; i < num; ++i) {
    SequenceStep& s = (*steps)[i];
    s.context_len = msg[at];
    s.slot = msg[at + 1];
    const int nt = msg[at + 2], nb = msg[at + 3];
    at += 4;
    s.tokens.assign(msg.begin() + at, msg.begin() + at + nt);
    at += nt;
    (*blocks)[i].assign(msg.begin() + at, msg.begin() + at + nb);
    at += nb;
    s.blocks = &(*blocks)[i];
  }
  return absl::OkStatus();
}

absl::Status Engine::RunWorker() {
  if (!distributed()) return absl::OkStatus();
  std::vector<SequenceStep> steps;
  std::vector<std::vector<int>> blocks;
  for (;;) {
    bool stop = false;
    RETURN_IF_ERROR(BroadcastSteps(&steps, &blocks, &stop));
    if (stop) return absl::OkStatus();
    auto logits = runner_->Step(steps);
    if (!logits.ok()) comms_.world->Abort(std::string(logits.status().message()));
  }
}

absl::Status Engine::Shutdown() {
  if (!distributed() || shut_down_ || comms_.world->rank() != 0) return absl::OkStatus();
  shut_down_ = true;
  std::vector<SequenceStep> none;
  bool stop = true;
  return BroadcastSteps(&none, nullptr, &stop);
}

}  // namespace strata
