// File: runtime/scheduler.h
// Rank 0's iteration-level scheduler (continuous batching): it decides each step's batch, the KV
// blocks of its sequences and preemption, and nothing else (token selection: token_selector.h;
// stopping: stop_rule.h; the two applied to a step's logits: step_outputs.h). Requests join and leave the running
// batch at every step; the running sequences are split into micro-batches, one per pipeline
// stage, so that while one micro-batch is in stage 1 the next can run in stage 0.
//
// A sequence's tokens are prompt + generated; `computed` of them are in the KV cache. Each step
// feeds the next tokens not yet computed: the last generated token when decoding, a prompt chunk
// when prefilling, and after a preemption the whole prefix again (recompute), so no output is
// lost or repeated. When the last fed token is the last known token, the step's logits give the
// next one.
//
// Blocks are allocated as sequences grow; when none is free, the newest sequence of the same
// micro-batch gives its blocks back and waits again (micro-batches in flight are never touched).
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "cache/block_pool.h"
#include "runtime/model/model_spec.h"
#include "runtime/request.h"
#include "runtime/sequence_step.h"
#include "runtime/token_selector.h"

namespace strata {

struct SchedulerOptions {
  int block_size = 16;
  int64_t num_blocks = 0;        // 0: no paged bank anywhere, blocks are not needed
  int max_seqs = 256;            // running sequences (ring-bank slots)
  int max_batched_tokens = 2048; // tokens per step, decodes first, then prefill chunks
  int micro_batches = 1;         // >= the number of pipeline stages
  // Reuse the KV blocks of earlier requests' identical prefixes (cache/block_pool.h). Only for
  // models whose cached rows equal what a fresh prefill writes (Engine decides, and says why not).
  bool prefix_caching = false;
};

// Prefix-cache counters, in tokens, once per request (a readmission after preemption is not
// counted again): tokens looked up at admission, and those not recomputed (found cached, or
// copied from a running sequence's partly filled block).
struct PrefixCacheStats {
  int64_t queries = 0, hits = 0;
};

// The steps of one micro-batch (each SequenceStep carries its own block table).
struct ScheduledStep {
  int micro_batch = 0;
  std::vector<SequenceStep> seqs;
  std::vector<RequestId> ids;  // per sequence
  int64_t prefill_tokens = 0, decode_tokens = 0;
  bool empty() const { return seqs.empty(); }
};

// A sequence of a completed step that has something to report: its next token is due (every
// known token is now in the cache; row `row` of the step's logits gives it), or it was aborted.
struct CompletedSequence {
  RequestId id = 0;
  int row = 0;
  bool aborted = false;
  // Set when a token is due: the request's token selection and what it has generated so far.
  TokenSelector* selector = nullptr;
  const GenerationRequest* request = nullptr;
  const std::vector<int>* generated = nullptr;
};

class Scheduler {
 public:
  Scheduler(const ModelSpec& spec, const SchedulerOptions& options);

  // Checks the request against the model and the cache (a request that can never fit is an error).
  absl::Status Validate(const GenerationRequest& r) const;
  absl::Status Add(RequestId id, GenerationRequest r);
  // Marks the request aborted: it is scheduled no more, and TakeAborted reports it (finish_reason
  // "abort") and frees its blocks once no step of it is in flight.
  void Abort(RequestId id);
  std::vector<RequestOutput> TakeAborted();

  // The next step of micro-batch `mb` (empty when it has nothing to run).
  absl::StatusOr<ScheduledStep> Schedule(int mb);
  // A step's end goes through FinishStep (runtime/step_outputs.h), the one caller of Complete and
  // Record: every sequence Complete returns must be answered with Record, or it would never be
  // scheduled again.
  friend std::vector<RequestOutput> FinishStep(Scheduler& scheduler, const ScheduledStep& step, const float* logits);

  bool Idle() const { return waiting_.empty() && seqs_.empty(); }
  int num_running() const;
  int num_waiting() const { return static_cast<int>(waiting_.size()); }
  int64_t num_preemptions() const { return preemptions_; }
  int64_t blocks_used() const { return blocks_.num_blocks() - blocks_.num_free(); }
  int64_t num_blocks() const { return blocks_.num_blocks(); }
  int64_t blocks_free() const { return blocks_.num_free(); }
  int64_t blocks_cached() const { return blocks_.num_cached(); }
  const PrefixCacheStats& prefix_cache() const { return prefix_stats_; }
  const BlockPool& block_pool() const { return blocks_; }
  // Every sequence's blocks (waiting ones hold none), for accounting checks.
  std::vector<std::vector<int>> BlocksHeld() const;
  // Blocks held for a copy (one reference each, by the sequence that will copy them).
  std::vector<int> CopySources() const;
  const SchedulerOptions& options() const { return o_; }
  const ModelSpec& spec() const { return spec_; }

 private:
  // Micro-batch `step.micro_batch`'s step has run: its rows are in the cache. Returns the
  // sequences whose next token is due, or that were aborted (in step order).
  std::vector<CompletedSequence> Complete(const ScheduledStep& step);
  // The outcome for a sequence Complete returned: its new token (-1: none) and whether it is
  // finished (then its blocks and slot are released and it is forgotten).
  void Record(RequestId id, int token, bool finished);

  struct Seq {
    RequestId id = 0;
    int64_t order = 0;  // arrival order: older sequences win when blocks run out
    GenerationRequest req;
    std::vector<int> generated;
    std::vector<int> blocks;
    int slot = -1;
    int computed = 0;      // tokens in the KV cache
    int micro_batch = -1;  // -1: waiting
    int in_flight = 0;     // tokens of a step not completed yet
    bool aborted = false;
    std::vector<uint64_t> hashes;  // of its full blocks so far (the prefix-cache key chain)
    int published = 0;             // leading blocks published to the prefix cache
    // A running sequence's partly filled block this one copies at its first step (held by one
    // reference of ours until that step completes), and whether that step is in flight.
    int copy_src = -1;
    bool copy_in_flight = false;
    bool counted = false;  // in the prefix-cache counters (once per request, not per readmission)
    std::unique_ptr<TokenSelector> selector;  // its token selection (the scheduler only holds it)
    int total() const { return static_cast<int>(req.prompt.size() + generated.size()); }
    int token_at(int i) const {
      return i < static_cast<int>(req.prompt.size()) ? req.prompt[i] : generated[i - req.prompt.size()];
    }
  };
  // Tokens to feed `s` next, before the token budget.
  int WantTokens(const Seq& s) const;
  bool Paged() const { return o_.num_blocks > 0; }
  void Release(Seq* s);  // blocks and slot back to their pools
  void Preempt(Seq* s);
  bool Admit(int mb);    // moves the oldest waiting sequence into `mb`; false if it does not fit
  // With prefix caching: the cached blocks `s` starts from (and a running sequence's block to copy,
  // in s->copy_src); nullopt when `s` should wait for a running sequence computing its prefix.
  std::optional<std::vector<int>> MatchCachedPrefix(Seq* s);
  // Blocks for `n` more tokens of `s`, taken from younger sequences of its micro-batch (preempted)
  // when none is free; false when even that is not enough (then `s` itself is preempted).
  absl::StatusOr<bool> ReserveBlocks(Seq* s, int n, const std::vector<Seq*>& by_age);
  // The step entry feeding `s` its next `n` tokens (marked in flight).
  SequenceStep FeedTokens(Seq* s, int n);
  // The prefix-cache keys of `s`'s first `n` full blocks (extending s->hashes as needed).
  std::vector<BlockKey> KeyChain(Seq* s, int n);
  // Whether a running sequence has yet to publish the block `hash` (so a waiting one that needs it
  // waits rather than computing it again: n samples of one prompt prefill it once).
  bool ComputingElsewhere(uint64_t hash) const;
  // Running sequences whose first `n` tokens are `s`'s first `n` (full blocks checked by hash, the
  // rest token by token): one that has computed them and holds them in its own blocks (not in a
  // copy still to run), else whether one is still computing them.
  struct Donor {
    const Seq* ready = nullptr;
    bool computing = false;
  };
  Donor SharingPrefix(const Seq& s, int n, const std::vector<BlockKey>& chain) const;
  void DropCopySource(Seq* s);
  void PublishComputedBlocks(Seq* s);
  std::vector<Seq*> MicroBatch(int mb);

  const ModelSpec& spec_;
  SchedulerOptions o_;
  BlockPool blocks_;
  SlotPool slots_;
  std::map<RequestId, std::unique_ptr<Seq>> seqs_;  // waiting and running
  std::deque<RequestId> waiting_;                   // by arrival (preempted ones back in order)
  int64_t next_order_ = 0;
  int64_t preemptions_ = 0;
  PrefixCacheStats prefix_stats_;
};

}  // namespace strata
