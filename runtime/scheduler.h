// File: runtime/scheduler.h
// Rank 0's iteration-level scheduler (continuous batching). Requests join and leave the running
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
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "cache/block_pool.h"
#include "runtime/grammar/grammar_matcher.h"
#include "runtime/model/model_spec.h"
#include "runtime/sequence_step.h"
#include "runtime/sampler.h"

namespace strata {

using RequestId = int64_t;

struct GenerationRequest {
  std::vector<int> prompt;
  int max_tokens = 16;
  SamplingParams sampling;
  bool ignore_eos = false;
  int min_tokens = 0;               // EOS and stop_token_ids cannot be chosen before this many tokens
  std::vector<int> stop_token_ids;  // generating one of these finishes the request ("stop")
  int top_logprobs = 0;             // report this many most likely tokens with each token
  // Report each sampled token's logprob (RequestOutput::logprob). It costs a pass of exp over the
  // vocabulary per token (0.5 ms at 50k on the CPU), so the server asks for it only when the client
  // wants logprobs or best_of ranks by them.
  bool logprob = true;
  // Structured output: only tokens the grammar allows are sampled, and the end-of-sequence ids
  // only where it accepts (runtime/grammar/grammar_matcher.h). Null: unconstrained.
  std::shared_ptr<const grammar::CompiledGrammar> grammar;
  // Teacher forcing: the i-th generated token is forced_tokens[i] (while there are any), whatever
  // the logits favour, reported with its logprob under the full softmax: a known continuation
  // scored (perplexity), one decode step a token.
  std::vector<int> forced_tokens;
};

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

// What one step produced for one request.
struct RequestOutput {
  RequestId id = 0;
  int token = -1;        // -1: no new token (a request aborted before it produced one)
  float logprob = 0.f;  // when GenerationRequest::logprob
  bool finished = false;
  std::string finish_reason;  // "stop", "length" or "abort" when finished
  // Finished because `token` is an EOS id (ignore_eos off) or one of stop_token_ids: its text is
  // no part of the answer (vLLM's rule, unless include_stop_str_in_output).
  bool stopped_by_token = false;
  std::vector<std::pair<int, float>> top_logprobs;  // when the request asked for them
};

// The steps of one micro-batch (each SequenceStep carries its own block table).
struct ScheduledStep {
  int micro_batch = 0;
  std::vector<SequenceStep> seqs;
  std::vector<RequestId> ids;  // per sequence
  int64_t prefill_tokens = 0, decode_tokens = 0;
  bool empty() const { return seqs.empty(); }
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
  // Consumes the logits ([num_seqs * vocab]) of micro-batch `step.micro_batch`'s step.
  std::vector<RequestOutput> Complete(const ScheduledStep& step, const float* logits);

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

 private:
  struct Seq {
    RequestId id;
    int64_t order;  // arrival order: older sequences win when blocks run out
    GenerationRequest req;
    std::vector<int> generated;
    std::vector<int> blocks;
    int slot = -1;
    int computed = 0;      // tokens in the KV cache
    int micro_batch = -1;  // -1: waiting
    int in_flight = 0;     // tokens of a step not completed yet
    bool aborted = false;
    SamplerRng rng;
    std::vector<uint64_t> hashes;  // of its full blocks so far (the prefix-cache key chain)
    int published = 0;             // leading blocks published to the prefix cache
    // A running sequence's partly filled block this one copies at its first step (held by one
    // reference of ours until that step completes), and whether that step is in flight.
    int copy_src = -1;
    bool copy_in_flight = false;
    bool counted = false;  // in the prefix-cache counters (once per request, not per readmission)
    std::unique_ptr<grammar::GrammarMatcher> matcher;  // where its output stands in req.grammar
    int total() const { return static_cast<int>(req.prompt.size() + generated.size()); }
    int token_at(int i) const {
      return i < static_cast<int>(req.prompt.size()) ? req.prompt[i] : generated[i - req.prompt.size()];
    }
  };
  // Tokens that may not be sampled for `s` now (EOS and stop ids before min_tokens).
  std::vector<int> BannedNow(const Seq& s) const;
  // The next token of `s` from its logits row (under its grammar, if any; token -1: the grammar
  // allows no token at all).
  SampledToken Sample(Seq* s, const float* row);
  // Tokens to feed `s` next, before the token budget.
  int WantTokens(const Seq& s) const;
  bool Paged() const { return o_.num_blocks > 0; }
  void Release(Seq* s);  // blocks and slot back to their pools
  void Preempt(Seq* s);
  bool Admit(int mb);    // moves the oldest waiting sequence into `mb`; false if it does not fit
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
  grammar::TokenMask mask_;  // scratch: the grammar mask of the sequence being sampled
  int64_t next_order_ = 0;
  int64_t preemptions_ = 0;
  PrefixCacheStats prefix_stats_;
};

}  // namespace strata
