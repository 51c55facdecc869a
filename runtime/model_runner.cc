#include "runtime/model_runner.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <set>

#include "absl/strings/str_cat.h"
#include "runtime/base/status.h"

namespace strata {
namespace {

// The one mapping from the model spec's norms and activations to the kernels'.
NormType KernelNorm(NormKind k) { return k == NormKind::kLayerNorm ? NormType::kLayerNorm : NormType::kRmsNorm; }
ActivationType KernelActivation(Activation a) {
  switch (a) {
    case Activation::kGeluErf: return ActivationType::kGeluErf;
    case Activation::kGeluTanh: return ActivationType::kGeluTanh;
    case Activation::kSwiGlu: return ActivationType::kSwiGlu;
  }
  return ActivationType::kSwiGlu;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ModelRunner>> ModelRunner::Create(const ModelSpec& spec, const ModelWeights& weights,
                                                                  Backend* backend, KvStorage* kv,
                                                                  RunnerPlacement placement) {
  if (placement.plan == nullptr || !placement.plan->layout.has_stages())
    return absl::InvalidArgumentError("the model runner needs a pipeline plan");
  std::unique_ptr<ModelRunner> r(new ModelRunner(spec, weights, backend, kv, placement));
  // cos/sin(pos * inv_freq[i]) x attention factor, computed in double once; the frequencies
  // carry config.json's rope_scaling.
  const int half = spec.rotary_dims / 2;
  const int max_pos = spec.max_position_embeddings;
  const std::vector<double> inv_freq = RopeInverseFrequencies(spec);
  const double scale = RopeAttentionFactor(spec);
  std::vector<float> c(static_cast<size_t>(max_pos) * std::max(half, 1)), s(c.size());
  for (int p = 0; p < max_pos; ++p)
    for (int i = 0; i < half; ++i) {
      c[static_cast<size_t>(p) * half + i] = static_cast<float>(scale * std::cos(p * inv_freq[i]));
      s[static_cast<size_t>(p) * half + i] = static_cast<float>(scale * std::sin(p * inv_freq[i]));
    }
  ASSIGN_OR_RETURN(r->rope_cos_, backend->Allocate(c.size() * 4));
  ASSIGN_OR_RETURN(r->rope_sin_, backend->Allocate(s.size() * 4));
  backend->CopyToDevice(r->rope_cos_.get(), c.data(), c.size() * 4);
  backend->CopyToDevice(r->rope_sin_.get(), s.data(), s.size() * 4);
  r->rope_ = {.cos = r->rope_cos_.f32(), .sin = r->rope_sin_.f32(), .rotary_dims = spec.rotary_dims,
              .max_positions = max_pos};
  return r;
}

ModelRunner::ModelRunner(const ModelSpec& spec, const ModelWeights& weights, Backend* backend, KvStorage* kv,
                         RunnerPlacement placement)
    : spec_(spec),
      w_(weights),
      placement_(placement),
      stage_(placement.plan->layout.stage_of(placement.rank)),
      slice_(placement.plan->layout.slice_of(placement.rank)),
      first_layer_(placement.plan->layout.stage_layers(stage_).first),
      last_layer_(placement.plan->layout.stage_layers(stage_).last),
      tp_comm_(placement.tp),
      local_heads_(static_cast<int>(placement.plan->layout.query_heads(slice_).count)),
      local_intermediate_(static_cast<int>(placement.plan->layout.mlp_columns(slice_).count)),
      backend_(backend),
      kv_(kv),
      kv_layout_(kv->layout()),
      plan_(IterationPlan(spec)) {}


absl::Status ModelRunner::EnsureWorkspace(int tokens, int seqs, int max_blocks) {
  auto alloc = [&](DeviceBuffer* b, size_t bytes) -> absl::Status {
    ASSIGN_OR_RETURN(*b, backend_->Allocate(bytes));
    return absl::OkStatus();
  };
  if (tokens > capacity_tokens_) {
    const size_t t = static_cast<size_t>(tokens), h = spec_.hidden_size;
    const size_t qd = static_cast<size_t>(local_heads_) * spec_.head_dim, I = local_intermediate_;
    RETURN_IF_ERROR(alloc(&x_, t * h * 4));
    RETURN_IF_ERROR(alloc(&x_block_in_, t * h * 4));
    RETURN_IF_ERROR(alloc(&a_, t * h * 4));
    RETURN_IF_ERROR(alloc(&a2_, t * h * 4));
    RETURN_IF_ERROR(alloc(&q_, t * qd * 4));
    RETURN_IF_ERROR(alloc(&attn_, t * qd * 4));
    RETURN_IF_ERROR(alloc(&mlp_, t * I * 4));
    RETURN_IF_ERROR(alloc(&mlp2_, t * 2 * I * 4));
    RETURN_IF_ERROR(alloc(&out_, t * h * 4));
    RETURN_IF_ERROR(alloc(&positions_, t * 4));
    RETURN_IF_ERROR(alloc(&ids_, t * 4));
    step_k_.clear();
    step_v_.clear();
    size_t widest = 0;
    for (const KvBank& b : kv_layout_.banks) widest = std::max(widest, static_cast<size_t>(b.num_kv_heads) * b.head_dim);
    RETURN_IF_ERROR(alloc(&wire_, std::max<size_t>(1, t * widest * DTypeSize(kv_layout_.dtype))));
    for (const KvBank& b : kv_layout_.banks) {
      const size_t row = static_cast<size_t>(b.num_kv_heads) * b.head_dim * 4;
      step_k_.emplace_back();
      step_v_.emplace_back();
      RETURN_IF_ERROR(alloc(&step_k_.back(), t * row));
      RETURN_IF_ERROR(alloc(&step_v_.back(), t * row));
    }
    capacity_tokens_ = tokens;
  }
  if (seqs > capacity_seqs_) {
    const size_t s = static_cast<size_t>(seqs);
    RETURN_IF_ERROR(alloc(&token_start_, (s + 1) * 4));
    RETURN_IF_ERROR(alloc(&context_len_, s * 4));
    RETURN_IF_ERROR(alloc(&seq_slot_, s * 4));
    RETURN_IF_ERROR(alloc(&last_rows_, s * 4));
    RETURN_IF_ERROR(alloc(&last_, s * spec_.hidden_size * 4));
    RETURN_IF_ERROR(alloc(&logits_, s * w_.vocab_rows_padded * 4));
    RETURN_IF_ERROR(alloc(&logits_all_, s * w_.vocab_rows_padded * parallel_layout().tp() * 4));
    capacity_seqs_ = seqs;
  }
  const size_t table = static_cast<size_t>(seqs) * max_blocks;
  if (table > block_table_capacity_) {
    RETURN_IF_ERROR(alloc(&block_table_, table * 4));
    block_table_capacity_ = table;
  }
  return absl::OkStatus();
}

absl::Status ModelRunner::Prepare(const std::vector<SequenceStep>& seqs) {
  if (seqs.empty()) return absl::InvalidArgumentError("empty step");
  std::vector<int> token_start = {0}, ctx, slot, positions, ids, last_rows;
  int max_blocks = 1;
  multi_token_ = false;
  for (size_t s = 0; s < seqs.size(); ++s) {
    const SequenceStep& q = seqs[s];
    if (q.tokens.empty()) return absl::InvalidArgumentError(absl::StrCat("sequence ", s, " has no tokens"));
    const int end = q.context_len + static_cast<int>(q.tokens.size());
    if (end > spec_.max_position_embeddings)
      return absl::OutOfRangeError(absl::StrCat("sequence ", s, " reaches position ", end,
                                                " beyond max_position_embeddings ",
                                                spec_.max_position_embeddings));
    if (kv_layout_.has_paged_banks() &&
        static_cast<int64_t>(q.blocks.size()) * kv_layout_.block_size < end)
      return absl::InternalError(absl::StrCat("sequence ", s, ": block table too short for ", end, " tokens"));
    for (int b : q.blocks)
      if (b < 0 || b >= kv_->capacity().num_blocks)
        return absl::InternalError(absl::StrCat("sequence ", s, ": block ", b, " outside the cache's ",
                                                kv_->capacity().num_blocks, " blocks"));
    if (q.slot < 0 || q.slot >= kv_->capacity().max_seqs)
      return absl::InternalError(absl::StrCat("sequence ", s, ": slot ", q.slot, " outside the cache's ",
                                              kv_->capacity().max_seqs, " slots"));
    for (size_t i = 0; i < q.tokens.size(); ++i) {
      const int id = q.tokens[i];
      if (id < 0 || id >= spec_.vocab_size)
        return absl::InvalidArgumentError(absl::StrCat("token id ", id, " outside the vocabulary (0..",
                                                       spec_.vocab_size - 1, ")"));
      ids.push_back(id);
      positions.push_back(q.context_len + static_cast<int>(i));
    }
    multi_token_ |= q.tokens.size() > 1;
    token_start.push_back(static_cast<int>(ids.size()));
    last_rows.push_back(static_cast<int>(ids.size()) - 1);
    ctx.push_back(q.context_len);
    slot.push_back(q.slot);
    max_blocks = std::max(max_blocks, static_cast<int>(q.blocks.size()));
  }
  const int tokens = static_cast<int>(ids.size());
  num_tokens_ = tokens;
  num_seqs_ = static_cast<int>(seqs.size());
  RETURN_IF_ERROR(EnsureWorkspace(tokens, num_seqs_, max_blocks));
  std::vector<int> table(static_cast<size_t>(num_seqs_) * max_blocks, 0);
  for (int s = 0; s < num_seqs_; ++s)
    std::copy(seqs[s].blocks.begin(), seqs[s].blocks.end(), table.begin() + s * max_blocks);
  backend_->CopyToDevice(token_start_.get(), token_start.data(), token_start.size() * 4);
  backend_->CopyToDevice(context_len_.get(), ctx.data(), ctx.size() * 4);
  backend_->CopyToDevice(seq_slot_.get(), slot.data(), slot.size() * 4);
  backend_->CopyToDevice(last_rows_.get(), last_rows.data(), last_rows.size() * 4);
  backend_->CopyToDevice(positions_.get(), positions.data(), positions.size() * 4);
  backend_->CopyToDevice(ids_.get(), ids.data(), ids.size() * 4);
  backend_->CopyToDevice(block_table_.get(), table.data(), table.size() * 4);
  int max_seq_len = 0;
  for (const SequenceStep& q : seqs) max_seq_len = std::max(max_seq_len, q.context_len + static_cast<int>(q.tokens.size()));
  batch_ = {.num_seqs = num_seqs_, .token_start = token_start_.i32(), .context_len = context_len_.i32(),
            .block_table = block_table_.i32(), .max_blocks = max_blocks, .seq_slot = seq_slot_.i32(),
            .num_tokens = tokens, .max_seq_len = max_seq_len};
  return absl::OkStatus();
}

void ModelRunner::AllReduce(float* data, size_t count) {
  if (tp_comm_ == nullptr) return;
  absl::Status st = tp_comm_->AllReduceSum(data, count);
  STRATA_CHECK(st.ok());  // a failed collective cannot be recovered from; the launcher aborts the job
}

void ModelRunner::RunLayer(int l, int T) {
  const LayerSpec& ls = spec_.layers[l];
  const LayerWeights& w = w_.layers[l];
  const int h = spec_.hidden_size, qd = local_heads_ * spec_.head_dim, I = local_intermediate_;
  const NormType nt = KernelNorm(spec_.norm);
  const int bank = kv_layout_.bank_of_layer[l];
  const KvBank& kb = kv_layout_.banks[bank];
  const int kvd = kb.num_kv_heads * kb.head_dim;
  // Row-parallel biases are added by slice 0 only, so the all-reduce adds them once.
  const bool bias_here = slice_ == 0;

  // y = x W^T + b over this layer's T token rows, with weights in the loaded matrix type.
  auto linear = [&](const float* x, const Weight& weight, const float* bias, float* y, int n, int k,
                    bool accumulate = false, bool same_x = false) {
    backend_->Linear(
        {.x = x, .w = weight.get(), .bias = bias, .y = y, .m = T, .n = n, .k = k, .accumulate = accumulate,
         .w_format = weight.format, .same_x_as_previous = same_x});
  };
  auto norm = [&](const Weight& weight, const Weight& bias, float* y) {
    backend_->Norm({.type = nt, .x = x_.f32(), .weight = weight.f32(), .bias = bias.f32(), .y = y, .rows = T,
                    .cols = h, .eps = spec_.norm_eps});
  };
  norm(w.norm1_w, w.norm1_b, a_.f32());
  if (spec_.parallel_residual) norm(w.norm2_w, w.norm2_b, a2_.f32());  // both norms read the layer input (§1.5)

  linear(a_.f32(), w.q_w, w.q_b.f32(), q_.f32(), qd, h);
  if (ls.is_producer) {  // only producers compute K/V, into their bank's step rows
    // Q, K and V read the same normed rows: the 8-bit activations are made once.
    linear(a_.f32(), w.k_w, w.k_b.f32(), step_k_[bank].f32(), kvd, h, false, true);
    linear(a_.f32(), w.v_w, w.v_b.f32(), step_v_[bank].f32(), kvd, h, false, true);
  }
  if (spec_.rotary_dims > 0) {
    backend_->Rotary({.x = q_.f32(), .positions = positions_.i32(), .tokens = T, .heads = local_heads_,
                      .head_dim = spec_.head_dim, .rope = rope_});
    if (ls.is_producer && ls.rope_mode == KvRopeMode::kPost)
      backend_->Rotary({.x = step_k_[bank].f32(), .positions = positions_.i32(), .tokens = T,
                        .heads = kb.num_kv_heads, .head_dim = kb.head_dim, .rope = rope_});
  }
  AttentionArgs at;
  at.q = q_.f32();
  at.out = attn_.f32();
  at.num_heads = local_heads_;
  at.step_k = step_k_[bank].f32();
  at.step_v = step_v_[bank].f32();
  at.bank = kv_->View(bank);
  at.batch = batch_;
  at.window = ls.window;
  at.mask_diag = ls.mask_diag;
  at.scale = 1.f / std::sqrt(static_cast<float>(spec_.head_dim));
  // Raw-K banks (MLKV): the producer sees its keys rotated, readers see them raw (§1.4).
  if (spec_.layers[ls.kv_source].rope_mode == KvRopeMode::kRaw && ls.kv_source == l) at.rope_on_read = rope_;
  backend_->Attention(at);

  // Attention output projection (row-parallel): a partial sum on each slice.
  const size_t n = static_cast<size_t>(T) * h;
  linear(attn_.f32(), w.o_w, bias_here ? w.o_b.f32() : nullptr, out_.f32(), h, qd);
  if (!spec_.parallel_residual) {
    AllReduce(out_.f32(), n);
    backend_->Add(x_.f32(), out_.f32(), n);
    norm(w.norm2_w, w.norm2_b, a2_.f32());
  }
  if (spec_.activation == Activation::kSwiGlu) {
    linear(a2_.f32(), w.up_w, w.up_b.f32(), mlp2_.f32(), 2 * I, h);
    backend_->Activation(
        {.type = KernelActivation(spec_.activation), .x = mlp2_.f32(), .y = mlp_.f32(), .rows = T, .cols = I});
  } else {
    linear(a2_.f32(), w.up_w, w.up_b.f32(), mlp_.f32(), I, h);
    backend_->Activation(
        {.type = KernelActivation(spec_.activation), .x = mlp_.f32(), .y = mlp_.f32(), .rows = T, .cols = I});
  }
  // MLP down projection (row-parallel). With a parallel residual it joins the attention partial
  // sum, so one all-reduce serves the whole layer.
  linear(mlp_.f32(), w.down_w, bias_here ? w.down_b.f32() : nullptr, out_.f32(), h, I, spec_.parallel_residual);
  AllReduce(out_.f32(), n);
  backend_->Add(x_.f32(), out_.f32(), n);
}

absl::Status ModelRunner::RunSegment(const PlanSegment& seg, int passes, int T) {
  const int first = first_layer_, last = last_layer_, me = stage_;
  const int lo = std::max(seg.first_layer, first), hi = std::min(seg.last_layer, last);
  // A cyclic block may span stages: then every pass flows through all of them, and between
  // passes the upward targets' rows travel back to the stages that read them (§7.2).
  const bool spans_before = seg.first_layer < first, spans_after = seg.last_layer > last;
  const size_t xbytes = static_cast<size_t>(T) * spec_.hidden_size * 4;
  auto in_block_upward_edge = [&](const TransferEdge& e) {
    return e.upward && e.producer_layer >= seg.first_layer && e.producer_layer <= seg.last_layer &&
           parallel_layout().stage_of_layer(seg.first_layer) <= e.to_stage;
  };
  if (passes > 1) {
    if (!spans_before) backend_->CopyDeviceToDevice(x_block_in_.get(), x_.get(), xbytes);
    // Upward targets start from zero K/V for this step's tokens (§2.4 step 1), at home and on
    // every mirror; each target once, however many layers read it.
    std::set<int> targets;
    for (int l = seg.first_layer; l <= seg.last_layer; ++l) {
      const int p = spec_.layers[l].kv_source;
      if (p > l && kv_layout_.bank_of_layer[p] >= 0) targets.insert(kv_layout_.bank_of_layer[p]);
    }
    for (int b : targets) {
      const size_t row = static_cast<size_t>(kv_layout_.banks[b].num_kv_heads) * kv_layout_.banks[b].head_dim * 4;
      backend_->Zero(step_k_[b].get(), T * row);
      backend_->Zero(step_v_[b].get(), T * row);
    }
  }
  for (int pass = 0; pass < passes; ++pass) {
    if (pass > 0) {
      if (parallel_layout().pp() > 1) {
        for (const TransferEdge& e : placement_.plan->edges)
          if (in_block_upward_edge(e) && e.to_stage == me)
            RETURN_IF_ERROR(RecvRows(kv_layout_.bank_of_layer[e.producer_layer], WorldRank(e.from_stage), T));
      }
      // Each pass restarts from the block's input hidden state (§2.4 step 3).
      if (spans_before) {
        RETURN_IF_ERROR(RecvFromStage(x_.get(), xbytes, WorldRank(me - 1)));
      } else {
        backend_->CopyDeviceToDevice(x_.get(), x_block_in_.get(), xbytes);
      }
    }
    for (int l = lo; l <= hi; ++l) RunLayer(l, T);
    if (pass + 1 < passes) {  // the final pass leaves through the stage's ordinary exit
      if (spans_after) RETURN_IF_ERROR(SendToStage(x_.get(), xbytes, WorldRank(me + 1)));
      if (parallel_layout().pp() > 1) {
        for (const TransferEdge& e : placement_.plan->edges)
          if (in_block_upward_edge(e) && e.from_stage == me)
            RETURN_IF_ERROR(SendRows(kv_layout_.bank_of_layer[e.producer_layer], WorldRank(e.to_stage), T,
                                     &edge_bytes_[{e.producer_layer, e.to_stage}]));
      }
    }
  }
  return absl::OkStatus();
}

// The data plane orders itself against the backend's work (DeviceComm::BindComputeStream).
absl::Status ModelRunner::SendToStage(const void* data, size_t bytes, int peer) {
  return placement_.world->Send(data, bytes, peer);
}

absl::Status ModelRunner::RecvFromStage(void* data, size_t bytes, int peer) {
  return placement_.world->Recv(data, bytes, peer);
}

absl::Status ModelRunner::SendRows(int bank, int peer, int tokens, int64_t* bytes) {
  const KvBank& b = kv_layout_.banks[bank];
  const size_t n = static_cast<size_t>(tokens) * b.num_kv_heads * b.head_dim;
  const size_t wire = n * DTypeSize(kv_layout_.dtype);
  for (const DeviceBuffer* src : {&step_k_[bank], &step_v_[bank]}) {
    backend_->ConvertFromFloat(src->f32(), wire_.get(), kv_layout_.dtype, n);
    RETURN_IF_ERROR(SendToStage(wire_.get(), wire, peer));
    *bytes += static_cast<int64_t>(wire);
  }
  return absl::OkStatus();
}

absl::Status ModelRunner::RecvRows(int bank, int peer, int tokens) {
  const KvBank& b = kv_layout_.banks[bank];
  const size_t n = static_cast<size_t>(tokens) * b.num_kv_heads * b.head_dim;
  for (DeviceBuffer* dst : {&step_k_[bank], &step_v_[bank]}) {
    RETURN_IF_ERROR(RecvFromStage(wire_.get(), n * DTypeSize(kv_layout_.dtype), peer));
    backend_->ConvertToFloat(wire_.get(), kv_layout_.dtype, dst->f32(), n);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<float>> ModelRunner::Step(const std::vector<SequenceStep>& seqs) {
  RETURN_IF_ERROR(Prepare(seqs));
  // Block copies first: on every rank they precede this step and follow every earlier one, so
  // the source rows are final and the copy is in place before anything reads it.
  for (const SequenceStep& q : seqs) {
    if (q.copy_src < 0) continue;
    const int64_t blocks = kv_->capacity().num_blocks;
    if (q.copy_src >= blocks || q.copy_dst < 0 || q.copy_dst >= blocks)
      return absl::InvalidArgumentError(absl::StrCat("block copy ", q.copy_src, " -> ", q.copy_dst, " outside the ",
                                                     blocks, " blocks"));
    kv_->CopyBlock(backend_, q.copy_src, q.copy_dst);
  }
  const int T = num_tokens_;
  const int h = spec_.hidden_size;
  const int first = first_layer_, last = last_layer_;
  const bool first_stage = first == 0, last_stage = last == spec_.num_layers - 1;
  const int my_stage = stage_;
  // Producer p lives on the stage the plan gives it (this stage when there is only one).
  auto home = [&](int p) { return parallel_layout().stage_of_layer(p); };

  if (first_stage) {
    backend_->Embedding({.table = w_.embed.get(), .ids = ids_.i32(), .y = x_.f32(), .tokens = T, .hidden = h,
                         .vocab_begin = w_.vocab_begin, .vocab_rows = w_.vocab_rows, .table_format = w_.embed.format});
    AllReduce(x_.f32(), static_cast<size_t>(T) * h);  // vocabulary-parallel: one slice has each row
  } else {
    // Time blocked here is the previous stage still working: pipeline bubble, not this stage's work.
    const auto t0 = std::chrono::steady_clock::now();
    RETURN_IF_ERROR(RecvFromStage(x_.get(), static_cast<size_t>(T) * h * 4, WorldRank(my_stage - 1)));
    input_wait_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  // Mirrors of groups homed on earlier stages: this step's rows, before any reader runs.
  for (size_t b = 0; b < kv_layout_.banks.size(); ++b) {
    const int p = kv_layout_.banks[b].producer_layer;
    if (home(p) < my_stage) RETURN_IF_ERROR(RecvRows(static_cast<int>(b), WorldRank(home(p)), T));
  }

  const int cyclic_passes = multi_token_ ? spec_.forward_passes + spec_.backward_passes : 1;
  for (const PlanSegment& seg : plan_) {
    if (seg.last_layer < first || seg.first_layer > last) continue;
    RETURN_IF_ERROR(RunSegment(seg, seg.cyclic ? cyclic_passes : 1, T));
  }

  if (!last_stage)
    RETURN_IF_ERROR(SendToStage(x_.get(), static_cast<size_t>(T) * h * 4, WorldRank(my_stage + 1)));
  if (parallel_layout().pp() > 1) {
    for (const TransferEdge& e : placement_.plan->edges) {  // sorted by (producer, destination)
      if (e.from_stage != my_stage) continue;
      RETURN_IF_ERROR(SendRows(kv_layout_.bank_of_layer[e.producer_layer], WorldRank(e.to_stage), T,
                               &edge_bytes_[{e.producer_layer, e.to_stage}]));
    }
  }
  // Mirrors of groups homed on later stages (LCKV upward edges): rows arrive after this stage's
  // layers, in time for the next step, which is the first to read them (§7.2).
  for (size_t b = 0; b < kv_layout_.banks.size(); ++b) {
    const int p = kv_layout_.banks[b].producer_layer;
    if (home(p) > my_stage) RETURN_IF_ERROR(RecvRows(static_cast<int>(b), WorldRank(home(p)), T));
  }

  // Commit the final pass's K/V rows of every bank (producers here, or received from their home).
  for (size_t b = 0; b < kv_layout_.banks.size(); ++b)
    backend_->KvWrite({.step_k = step_k_[b].f32(), .step_v = step_v_[b].f32(), .bank = kv_->View(static_cast<int>(b)),
                       .batch = batch_});

  if (!last_stage) return std::vector<float>();
  return Logits();
}

absl::StatusOr<std::vector<float>> ModelRunner::Logits() {
  const int h = spec_.hidden_size;
  backend_->GatherRows({.src = x_.f32(), .rows = last_rows_.i32(), .dst = last_.f32(), .count = num_seqs_, .cols = h});
  const NormType nt = KernelNorm(spec_.norm);
  backend_->Norm({.type = nt, .x = last_.f32(), .weight = w_.final_norm_w.f32(), .bias = w_.final_norm_b.f32(),
                  .y = last_.f32(), .rows = num_seqs_, .cols = h, .eps = spec_.norm_eps});
  // Vocabulary-parallel LM head: each slice computes its rows, packed [S, vocab_rows] in a
  // [S * vp] buffer, then all slices gather them in device memory; one copy brings them home.
  const int vp = w_.vocab_rows_padded, S = num_seqs_, V = spec_.vocab_size;
  const size_t per_slice = static_cast<size_t>(S) * vp;
  if (w_.vocab_rows > 0)
    backend_->Linear({.x = last_.f32(), .w = w_.lm_head_weight().get(), .y = logits_.f32(), .m = S, .n = w_.vocab_rows,
                      .k = h, .w_format = w_.lm_head_weight().format});
  const DeviceBuffer* gathered = &logits_;
  if (tp_comm_ != nullptr) {
    RETURN_IF_ERROR(tp_comm_->AllGather(logits_.f32(), logits_all_.f32(), per_slice));
    gathered = &logits_all_;
  }
  std::vector<float> all(per_slice * parallel_layout().tp());
  backend_->CopyToHost(all.data(), gathered->get(), all.size() * 4);
  // A collective of this step may have been aborted after it was enqueued (a dead peer).
  for (const DeviceComm* plane : {tp_comm_, placement_.world})
    if (plane != nullptr) RETURN_IF_ERROR(plane->Health());
  std::vector<float> logits(static_cast<size_t>(S) * V);
  for (int r = 0; r < parallel_layout().tp(); ++r) {
    const IndexRange rows = parallel_layout().vocab_rows(r);
    for (int s = 0; s < S; ++s)
      std::copy_n(all.begin() + static_cast<size_t>(r) * per_slice + static_cast<size_t>(s * rows.count), rows.count,
                  logits.begin() + static_cast<size_t>(s) * V + static_cast<size_t>(rows.first));
  }
  return logits;
}

}  // namespace strata
