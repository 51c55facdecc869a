#include "runtime/scheduler.h"

#include <algorithm>
#include <cmath>
#include <memory>

#include "absl/strings/str_cat.h"
#include "runtime/base/status.h"

namespace strata {

Scheduler::Scheduler(const ModelSpec& spec, const SchedulerOptions& options)
    : spec_(spec), o_(options), blocks_(options.num_blocks), slots_(options.max_seqs) {
  o_.micro_batches = std::max(1, o_.micro_batches);
  o_.max_batched_tokens = std::max(1, o_.max_batched_tokens);
}

absl::Status Scheduler::Validate(const GenerationRequest& r) const {
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
  if (Paged() && BlocksFor(total, o_.block_size) > blocks_.num_blocks())
    return absl::ResourceExhaustedError(absl::StrCat("the request needs ", BlocksFor(total, o_.block_size),
                                                     " KV blocks; the cache has ", blocks_.num_blocks()));
  if (!(r.sampling.temperature >= 0) || !(r.sampling.top_p > 0 && r.sampling.top_p <= 1) || r.sampling.top_k < 0)
    return absl::InvalidArgumentError("sampling: temperature >= 0, 0 < top_p <= 1, top_k >= 0");
  if (!(r.sampling.min_p >= 0 && r.sampling.min_p <= 1) || !(r.sampling.repetition_penalty > 0))
    return absl::InvalidArgumentError("sampling: 0 <= min_p <= 1, repetition_penalty > 0");
  if (r.min_tokens < 0 || r.min_tokens > r.max_tokens)
    return absl::InvalidArgumentError(absl::StrCat("min_tokens (", r.min_tokens, ") must be in [0, max_tokens (",
                                                   r.max_tokens, ")]"));
  if (r.grammar && r.grammar->vocabulary().size() != spec_.vocab_size)
    return absl::InvalidArgumentError(absl::StrCat("the grammar was compiled for a vocabulary of ",
                                                   r.grammar->vocabulary().size(), " tokens; the model has ",
                                                   spec_.vocab_size));
  for (int t : r.stop_token_ids)
    if (t < 0 || t >= spec_.vocab_size)
      return absl::InvalidArgumentError(absl::StrCat("stop token id ", t, " outside the vocabulary"));
  for (int t : r.forced_tokens)
    if (t < 0 || t >= spec_.vocab_size)
      return absl::InvalidArgumentError(absl::StrCat("forced token id ", t, " outside the vocabulary"));
  for (const auto& [t, bias] : r.sampling.logit_bias)
    if (t < 0 || t >= spec_.vocab_size || !std::isfinite(bias))
      return absl::InvalidArgumentError(absl::StrCat("logit_bias: token ", t, " outside the vocabulary or bias not finite"));
  if (r.top_logprobs < 0 || r.top_logprobs > 20) return absl::InvalidArgumentError("top_logprobs must be in [0, 20]");
  return absl::OkStatus();
}

absl::Status Scheduler::Add(RequestId id, GenerationRequest r) {
  RETURN_IF_ERROR(Validate(r));
  if (seqs_.count(id)) return absl::AlreadyExistsError(absl::StrCat("request ", id, " is already scheduled"));
  auto s = std::make_unique<Seq>();
  s->id = id;
  s->order = next_order_++;
  s->req = std::move(r);
  s->selector = std::make_unique<TokenSelector>(s->req, spec_.eos_token_ids, spec_.vocab_size);
  seqs_[id] = std::move(s);
  waiting_.push_back(id);
  return absl::OkStatus();
}

int Scheduler::num_running() const {
  int n = 0;
  for (const auto& [id, s] : seqs_) n += s->micro_batch >= 0;
  return n;
}

void Scheduler::DropCopySource(Seq* s) {
  if (s->copy_src >= 0) blocks_.Free({s->copy_src});
  s->copy_src = -1;
  s->copy_in_flight = false;
}

void Scheduler::Release(Seq* s) {
  DropCopySource(s);
  if (!s->blocks.empty()) blocks_.Free(s->blocks);
  s->blocks.clear();
  if (s->slot >= 0) slots_.Free(s->slot);
  s->slot = -1;
}

void Scheduler::Abort(RequestId id) {
  auto it = seqs_.find(id);
  if (it == seqs_.end()) return;
  it->second->aborted = true;
}

void Scheduler::Preempt(Seq* s) {
  Release(s);
  s->computed = 0;
  s->published = 0;
  s->micro_batch = -1;
  ++preemptions_;
  // Back among the waiting in arrival order, so that it is readmitted before younger requests.
  auto at = std::find_if(waiting_.begin(), waiting_.end(), [&](RequestId w) { return seqs_[w]->order > s->order; });
  waiting_.insert(at, s->id);
}

int Scheduler::WantTokens(const Seq& s) const {
  const int left = s.total() - s.computed;
  if (left <= 1) return left;
  if (spec_.use_sequential) return 1;
  if (spec_.HasUpwardEdges()) {
    // The prompt goes in one iterative-prefill step (or token by token when short, §2.4);
    // generated tokens recomputed after a preemption go one at a time, as they were decoded.
    const int prompt = static_cast<int>(s.req.prompt.size());
    if (s.computed == 0 && prompt > spec_.forward_passes + spec_.backward_passes) return prompt;
    return 1;
  }
  return left;  // chunkable: the token budget may cut it
}

std::vector<Scheduler::Seq*> Scheduler::MicroBatch(int mb) {
  std::vector<Seq*> out;
  for (auto& [id, s] : seqs_)
    if (s->micro_batch == mb) out.push_back(s.get());
  std::sort(out.begin(), out.end(), [](const Seq* a, const Seq* b) { return a->order < b->order; });
  return out;
}

std::vector<BlockKey> Scheduler::KeyChain(Seq* s, int n) {
  std::vector<BlockKey> chain;
  for (int b = 0; b < n; ++b) {
    BlockKey k;
    k.parent = b == 0 ? kRootBlockHash : s->hashes[b - 1];
    for (int i = 0; i < o_.block_size; ++i) k.tokens.push_back(s->token_at(b * o_.block_size + i));
    k.hash = BlockHash(k.parent, k.tokens);
    if (static_cast<int>(s->hashes.size()) == b) s->hashes.push_back(k.hash);
    chain.push_back(std::move(k));
  }
  return chain;
}

bool Scheduler::ComputingElsewhere(uint64_t hash) const {
  for (const auto& [id, s] : seqs_)
    if (s->micro_batch >= 0 && !s->aborted)
      for (size_t b = static_cast<size_t>(s->published); b < s->hashes.size(); ++b)
        if (s->hashes[b] == hash) return true;
  return false;
}

Scheduler::Donor Scheduler::SharingPrefix(const Seq& s, int n, const std::vector<BlockKey>& chain) const {
  const int full = std::min(static_cast<int>(chain.size()), n / o_.block_size);
  Donor d;
  for (const auto& [id, other] : seqs_) {
    const Seq& l = *other;
    if (&l == &s || l.micro_batch < 0 || l.aborted || l.total() < n) continue;
    if (full > 0 && (static_cast<int>(l.hashes.size()) < full || l.hashes[full - 1] != chain[full - 1].hash)) continue;
    bool same = true;
    for (int i = full * o_.block_size; i < n && same; ++i) same = l.token_at(i) == s.token_at(i);
    if (!same) continue;
    // Its rows count once its own copy (if it took one) has been issued: every rank runs steps in
    // issue order, so a copy issued later reads them after they are there.
    const bool rows_there = l.computed >= n && !(l.copy_src >= 0 && !l.copy_in_flight);
    if (rows_there && static_cast<int>(l.blocks.size()) > full) {
      d.ready = &l;
      return d;
    }
    d.computing = true;
  }
  return d;
}

std::optional<std::vector<int>> Scheduler::MatchCachedPrefix(Seq* s) {
  // Full blocks of the known prefix, less the last token, which must be computed for logits.
  std::vector<BlockKey> chain = KeyChain(s, (s->total() - 1) / o_.block_size);
  std::vector<int> hit = blocks_.Match(chain);
  if (hit.size() < chain.size() && ComputingElsewhere(chain[hit.size()].hash)) {
    blocks_.Free(hit);
    return std::nullopt;
  }
  // The rest of the prefix, up to the last token, in a running sequence's partly filled block
  // (n samples of one prompt): copy that block once it is computed, wait while it is not.
  const int want = s->total() - 1, have = static_cast<int>(hit.size()) * o_.block_size;
  if (want > have && hit.size() == chain.size()) {
    const Donor donor = SharingPrefix(*s, want, chain);
    if (donor.ready == nullptr && donor.computing) {
      blocks_.Free(hit);
      return std::nullopt;
    }
    if (donor.ready != nullptr) {
      s->copy_src = donor.ready->blocks[hit.size()];
      blocks_.Retain(s->copy_src);
    }
  }
  // The chain of a running sequence: its full blocks as they will be published.
  KeyChain(s, s->total() / o_.block_size);
  return hit;
}

bool Scheduler::Admit(int mb) {
  Seq* s = seqs_[waiting_.front()].get();
  if (slots_.num_free() == 0) return false;
  std::vector<int> hit;
  if (Paged() && o_.prefix_caching) {
    std::optional<std::vector<int>> cached = MatchCachedPrefix(s);
    if (!cached) return false;
    hit = std::move(*cached);
  }
  // The whole known prefix plus one token must fit, so it is not preempted on its first step.
  const int64_t need = Paged() ? BlocksFor(s->total() + 1, o_.block_size) - static_cast<int64_t>(hit.size()) : 0;
  if (need > blocks_.num_free()) {
    blocks_.Free(hit);
    DropCopySource(s);
    return false;
  }
  s->blocks = hit;
  if (need > 0) {
    std::vector<int> fresh = std::move(blocks_.Allocate(need)).value();
    s->blocks.insert(s->blocks.end(), fresh.begin(), fresh.end());
  }
  s->computed = static_cast<int>(hit.size()) * o_.block_size;
  if (s->copy_src >= 0) s->computed = s->total() - 1;  // all but the last token, copied
  if (o_.prefix_caching && Paged() && !s->counted) {  // a readmission after preemption is not a new query
    prefix_stats_.queries += s->total();
    prefix_stats_.hits += s->computed;
    s->counted = true;
  }
  s->published = static_cast<int>(hit.size());
  s->slot = std::move(slots_.Allocate()).value();
  s->micro_batch = mb;
  waiting_.pop_front();
  return true;
}

void Scheduler::PublishComputedBlocks(Seq* s) {
  const int full = s->computed / o_.block_size;
  if (full <= s->published) return;
  std::vector<BlockKey> chain = KeyChain(s, full);
  for (; s->published < full; ++s->published) blocks_.Publish(s->blocks[s->published], chain[s->published]);
}

std::vector<int> Scheduler::CopySources() const {
  std::vector<int> out;
  for (const auto& [id, s] : seqs_)
    if (s->copy_src >= 0) out.push_back(s->copy_src);
  return out;
}

std::vector<std::vector<int>> Scheduler::BlocksHeld() const {
  std::vector<std::vector<int>> out;
  for (const auto& [id, s] : seqs_) out.push_back(s->blocks);
  return out;
}

absl::StatusOr<ScheduledStep> Scheduler::Schedule(int mb) {
  ScheduledStep step;
  step.micro_batch = mb;
  // Admission: a fair share of running sequences per micro-batch.
  const int share =
      (num_running() + num_waiting() + o_.micro_batches - 1) / o_.micro_batches;
  int size = static_cast<int>(MicroBatch(mb).size());
  while (!waiting_.empty() && !seqs_[waiting_.front()]->aborted && size < std::max(share, 1) && Admit(mb)) ++size;

  const std::vector<Seq*> by_age = MicroBatch(mb);  // oldest first: victims are taken from the end
  std::vector<Seq*> members = by_age;
  // Decodes first (one token each), then prefill chunks within the token budget.
  std::stable_sort(members.begin(), members.end(),
                   [&](const Seq* a, const Seq* b) { return (WantTokens(*a) == 1) > (WantTokens(*b) == 1); });
  const bool chunkable = !spec_.use_sequential && !spec_.HasUpwardEdges();
  int budget = o_.max_batched_tokens;
  for (Seq* s : members) {
    if (s->aborted || s->micro_batch != mb) continue;  // preempted above as a victim
    int n = WantTokens(*s);
    if (n <= 0) continue;
    if (n > budget) {
      if (chunkable && budget > 0) {
        n = budget;
      } else if (!step.seqs.empty() || budget <= 0) {
        continue;  // an unsplittable prompt waits for a step of its own
      }
    }
    ASSIGN_OR_RETURN(const bool room, ReserveBlocks(s, n, by_age));
    if (!room) continue;
    (n == 1 && s->computed + 1 == s->total() && !s->generated.empty() ? step.decode_tokens : step.prefill_tokens) += n;
    budget -= n;
    step.seqs.push_back(FeedTokens(s, n));
    step.ids.push_back(s->id);
  }
  return step;
}

absl::StatusOr<bool> Scheduler::ReserveBlocks(Seq* s, int n, const std::vector<Seq*>& by_age) {
  if (!Paged()) return true;
  const int64_t need = BlocksFor(s->computed + n, o_.block_size) - static_cast<int64_t>(s->blocks.size());
  // Take them from the newest sequences of this micro-batch if needed.
  for (auto it = by_age.rbegin(); it != by_age.rend() && need > blocks_.num_free(); ++it) {
    Seq* victim = *it;
    if (victim->order <= s->order) break;  // only younger sequences give way
    if (victim->micro_batch == s->micro_batch && victim->in_flight == 0) Preempt(victim);
  }
  if (need > blocks_.num_free()) {
    Preempt(s);
    return false;
  }
  if (need > 0) {
    ASSIGN_OR_RETURN(std::vector<int> more, blocks_.Allocate(need));
    s->blocks.insert(s->blocks.end(), more.begin(), more.end());
  }
  return true;
}

SequenceStep Scheduler::FeedTokens(Seq* s, int n) {
  SequenceStep st;
  for (int i = 0; i < n; ++i) st.tokens.push_back(s->token_at(s->computed + i));
  st.context_len = s->computed;
  st.slot = s->slot;
  if (s->copy_src >= 0 && !s->copy_in_flight) {
    st.copy_src = s->copy_src;
    st.copy_dst = s->blocks[s->published];
    s->copy_in_flight = true;
  }
  s->in_flight = n;
  if (Paged()) st.blocks = s->blocks;
  return st;
}

std::vector<CompletedSequence> Scheduler::Complete(const ScheduledStep& step) {
  std::vector<CompletedSequence> out;
  for (size_t i = 0; i < step.ids.size(); ++i) {
    auto it = seqs_.find(step.ids[i]);
    if (it == seqs_.end()) continue;
    Seq* s = it->second.get();
    s->computed += s->in_flight;
    s->in_flight = 0;
    if (s->copy_in_flight) DropCopySource(s);  // the copy ran with the step
    if (o_.prefix_caching && Paged()) PublishComputedBlocks(s);
    CompletedSequence c;
    c.id = s->id;
    c.row = static_cast<int>(i);
    c.aborted = s->aborted;
    if (!s->aborted && s->computed == s->total()) {  // every known token is in: the next one is due
      c.selector = s->selector.get();
      c.request = &s->req;
      c.generated = &s->generated;
    }
    if (c.aborted || c.selector != nullptr) out.push_back(c);
  }
  return out;
}

void Scheduler::Record(RequestId id, int token, bool finished) {
  auto it = seqs_.find(id);
  if (it == seqs_.end()) return;
  Seq* s = it->second.get();
  if (token >= 0) s->generated.push_back(token);
  if (finished) {
    Release(s);
    seqs_.erase(it);
  }
}

std::vector<RequestOutput> Scheduler::TakeAborted() {
  std::vector<RequestOutput> out;
  for (auto it = seqs_.begin(); it != seqs_.end();) {
    Seq* s = it->second.get();
    if (s->aborted && s->in_flight == 0) {
      RequestOutput o;
      o.id = s->id;
      o.finished = true;
      o.finish_reason = "abort";
      out.push_back(o);
      Release(s);
      waiting_.erase(std::remove(waiting_.begin(), waiting_.end(), s->id), waiting_.end());
      it = seqs_.erase(it);
    } else {
      ++it;
    }
  }
  return out;
}

}  // namespace strata
