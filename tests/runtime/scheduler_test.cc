// The scheduler alone, on a one-layer spec and hand-made logits (greedy picks the token with the
// peak): admission order and limits, prompt chunking under the token budget with decodes first,
// preemption of the youngest with recompute (no token lost or repeated), and aborts.
#include "runtime/scheduler.h"
#include "runtime/step_outputs.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>

namespace strata {
namespace {

constexpr int kVocab = 16;

ModelSpec OneLayerSpec() {
  ModelSpec s;
  s.num_layers = 1;
  s.vocab_size = kVocab;
  s.max_position_embeddings = 256;
  LayerSpec l;
  l.kv_source = 0;
  l.is_producer = true;
  l.num_kv_heads = 1;
  s.layers = {l};
  return s;
}

GenerationRequest Request(int prompt_len, int max_tokens) {
  GenerationRequest r;
  for (int i = 0; i < prompt_len; ++i) r.prompt.push_back(1 + i % (kVocab - 1));
  r.max_tokens = max_tokens;
  r.ignore_eos = true;
  return r;
}

// Logits for `step`: sequence i's row peaks at token (id * 3 + number of tokens it has) % vocab,
// so every request's expected output is known in advance.
std::vector<float> Logits(const ScheduledStep& step, const std::map<RequestId, int>& produced) {
  std::vector<float> l(step.seqs.size() * kVocab, 0.f);
  for (size_t i = 0; i < step.seqs.size(); ++i) {
    const RequestId id = step.ids[i];
    const int n = produced.count(id) ? produced.at(id) : 0;
    l[i * kVocab + (id * 3 + n) % kVocab] = 10.f;
  }
  return l;
}

struct Outcome {
  std::map<RequestId, std::vector<int>> tokens;
  std::map<RequestId, std::string> finish;
  std::vector<ScheduledStep> steps;
};

// Drives micro-batch 0 until idle (at most `limit` steps).
Outcome Drive(Scheduler& s, int limit = 500) {
  Outcome run;
  std::map<RequestId, int> produced;
  for (int i = 0; i < limit && !s.Idle(); ++i) {
    auto step = s.Schedule(0);
    EXPECT_TRUE(step.ok()) << step.status();
    if (!step.ok() || step->empty()) break;
    const std::vector<float> logits = Logits(*step, produced);
    for (const RequestOutput& o : FinishStep(s, *step, logits.data())) {
      if (o.token >= 0) {
        run.tokens[o.id].push_back(o.token);
        ++produced[o.id];
      }
      if (o.finished) run.finish[o.id] = o.finish_reason;
    }
    run.steps.push_back(std::move(*step));
  }
  return run;
}

std::vector<int> Expected(RequestId id, int n) {
  std::vector<int> out;
  for (int i = 0; i < n; ++i) out.push_back(static_cast<int>((id * 3 + i) % kVocab));
  return out;
}

TEST(Scheduler, AdmitsInArrivalOrderUpToMaxSeqs) {
  const ModelSpec spec = OneLayerSpec();
  SchedulerOptions o;
  o.block_size = 4;
  o.num_blocks = 64;
  o.max_seqs = 2;
  Scheduler s(spec, o);
  for (RequestId id = 0; id < 4; ++id) ASSERT_TRUE(s.Add(id, Request(3, 2 + static_cast<int>(id))).ok());
  EXPECT_FALSE(s.Add(1, Request(3, 2)).ok());  // the id is taken
  auto first = s.Schedule(0);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->ids, (std::vector<RequestId>{0, 1}));
  EXPECT_EQ(s.num_running(), 2);
  EXPECT_EQ(s.num_waiting(), 2);
  std::map<RequestId, int> none;
  const std::vector<float> l = Logits(*first, none);
  FinishStep(s, *first, l.data());
  const Outcome run = Drive(s);
  for (RequestId id = 0; id < 4; ++id) EXPECT_EQ(run.finish.at(id), "length");
  // Request 2 is admitted only once one of the first two left, and before request 3.
  int first_step_of_2 = -1, first_step_of_3 = -1;
  for (size_t i = 0; i < run.steps.size(); ++i)
    for (RequestId id : run.steps[i].ids) {
      EXPECT_LE(static_cast<int>(run.steps[i].ids.size()), 2);
      if (id == 2 && first_step_of_2 < 0) first_step_of_2 = static_cast<int>(i);
      if (id == 3 && first_step_of_3 < 0) first_step_of_3 = static_cast<int>(i);
    }
  EXPECT_LE(first_step_of_2, first_step_of_3);
}

TEST(Scheduler, ChunksPromptsUnderTheBudgetWithDecodesFirst) {
  const ModelSpec spec = OneLayerSpec();
  SchedulerOptions o;
  o.block_size = 4;
  o.num_blocks = 64;
  o.max_batched_tokens = 4;
  Scheduler s(spec, o);
  ASSERT_TRUE(s.Add(0, Request(2, 6)).ok());
  auto step = s.Schedule(0);  // request 0's whole prompt
  ASSERT_TRUE(step.ok());
  ASSERT_EQ(step->seqs.size(), 1u);
  EXPECT_EQ(step->seqs[0].tokens.size(), 2u);
  std::map<RequestId, int> produced;
  std::vector<float> l = Logits(*step, produced);
  FinishStep(s, *step, l.data());
  produced[0] = 1;
  ASSERT_TRUE(s.Add(1, Request(10, 1)).ok());
  // Request 0 decodes one token; request 1's prompt fills the rest of the budget, chunk by chunk.
  std::vector<int> chunks, contexts;
  for (int i = 0; i < 4; ++i) {
    step = s.Schedule(0);
    ASSERT_TRUE(step.ok());
    int budget = 0;
    for (size_t k = 0; k < step->seqs.size(); ++k) {
      budget += static_cast<int>(step->seqs[k].tokens.size());
      if (step->ids[k] == 0) {
        EXPECT_EQ(k, 0u) << "the decode goes first";
        EXPECT_EQ(step->seqs[k].tokens.size(), 1u);
      } else {
        chunks.push_back(static_cast<int>(step->seqs[k].tokens.size()));
        contexts.push_back(step->seqs[k].context_len);
      }
      // Each sequence's block table covers its context and its new tokens.
      EXPECT_GE(static_cast<int>(step->seqs[k].blocks.size()) * o.block_size,
                step->seqs[k].context_len + static_cast<int>(step->seqs[k].tokens.size()));
    }
    EXPECT_LE(budget, o.max_batched_tokens);
    l = Logits(*step, produced);
    for (const RequestOutput& out : FinishStep(s, *step, l.data()))
      if (out.token >= 0) ++produced[out.id];
  }
  EXPECT_EQ(chunks, (std::vector<int>{3, 3, 3, 1}));
  EXPECT_EQ(contexts, (std::vector<int>{0, 3, 6, 9}));
}

TEST(Scheduler, PreemptsTheYoungestAndRecomputesWithoutLosingTokens) {
  const ModelSpec spec = OneLayerSpec();
  SchedulerOptions o;
  o.block_size = 2;
  o.num_blocks = 8;  // 16 tokens of cache for three requests of up to 10
  o.max_seqs = 3;
  Scheduler s(spec, o);
  for (RequestId id = 0; id < 3; ++id) ASSERT_TRUE(s.Add(id, Request(4, 6)).ok());
  const Outcome run = Drive(s);
  EXPECT_GT(s.num_preemptions(), 0);
  for (RequestId id = 0; id < 3; ++id) {
    EXPECT_EQ(run.finish.at(id), "length");
    EXPECT_EQ(run.tokens.at(id), Expected(id, 6)) << "request " << id;  // none lost, none repeated
  }
  // The oldest request is never the one that gives way: once admitted it only moves forward.
  int context = -1;
  for (const ScheduledStep& st : run.steps)
    for (size_t k = 0; k < st.ids.size(); ++k)
      if (st.ids[k] == 0) {
        EXPECT_GT(st.seqs[k].context_len, context);
        context = st.seqs[k].context_len;
      }
  EXPECT_EQ(s.blocks_used(), 0);
}

TEST(Scheduler, AbortReportsOnceAndFreesTheBlocks) {
  const ModelSpec spec = OneLayerSpec();
  SchedulerOptions o;
  o.block_size = 4;
  o.num_blocks = 16;
  Scheduler s(spec, o);
  ASSERT_TRUE(s.Add(7, Request(5, 50)).ok());
  ASSERT_TRUE(s.Add(8, Request(5, 3)).ok());
  auto step = s.Schedule(0);
  ASSERT_TRUE(step.ok());
  s.Abort(7);
  EXPECT_TRUE(s.TakeAborted().empty());  // its step is still in flight
  std::map<RequestId, int> none;
  const std::vector<float> l = Logits(*step, none);
  int aborts = 0;
  for (const RequestOutput& out : FinishStep(s, *step, l.data()))
    if (out.id == 7) {
      EXPECT_TRUE(out.finished);
      EXPECT_EQ(out.finish_reason, "abort");
      ++aborts;
    }
  for (const RequestOutput& out : s.TakeAborted()) aborts += out.id == 7;
  EXPECT_EQ(aborts, 1);
  const Outcome run = Drive(s);
  EXPECT_EQ(run.finish.count(7), 0u);
  EXPECT_EQ(run.finish.at(8), "length");
  EXPECT_EQ(s.blocks_used(), 0);
}

TEST(Scheduler, RefusesRequestsThatCanNeverRun) {
  const ModelSpec spec = OneLayerSpec();
  SchedulerOptions o;
  o.block_size = 4;
  o.num_blocks = 2;
  Scheduler s(spec, o);
  EXPECT_EQ(s.Add(1, Request(0, 1)).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.Add(2, Request(4, 8)).code(), absl::StatusCode::kResourceExhausted);  // 12 tokens > 8
  GenerationRequest bad = Request(2, 1);
  bad.prompt[0] = kVocab;
  EXPECT_EQ(s.Add(3, bad).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.Add(4, Request(200, 100)).code(), absl::StatusCode::kInvalidArgument);  // past the context
}

// Prefix caching's block accounting over seeded random schedules (adds from a few shared
// prompts, aborts, two micro-batches, a cache small enough to evict and preempt): after every
// step each block is free, cached, or held by exactly the sequences that reference it, and
// nothing leaks once every request is over; a model of the cache's rows (copies run before each
// step, as on every rank) shows every row a sequence reads holding its own token; every request
// that was not aborted produced exactly
// its expected tokens (the hand-made logits depend only on what it has produced), with caching
// on and off.
TEST(SchedulerPrefixCache, BlockAccountingHoldsOverRandomSchedules) {
  for (uint32_t seed = 1; seed <= 20; ++seed) {
    for (int caching = 0; caching < 2; ++caching) {
      std::map<RequestId, std::vector<int>> outputs;
      std::map<RequestId, int> wanted;
      std::map<RequestId, std::vector<int>> prompts_of;
      std::set<RequestId> aborted;
      std::mt19937 rng(seed);
      SchedulerOptions o;
      o.block_size = 4;
      o.num_blocks = 24;
      o.max_seqs = 6;
      o.max_batched_tokens = seed % 2 ? 16 : 3;  // a small budget leaves admitted sequences out of a step
      o.micro_batches = 2;
      o.prefix_caching = caching == 1;
      const ModelSpec spec = OneLayerSpec();
      Scheduler sched(spec, o);
      std::vector<std::vector<int>> rows(o.num_blocks, std::vector<int>(o.block_size, -1));
      std::vector<std::vector<int>> prompts;
      for (int p = 0; p < 3; ++p) {
        std::vector<int> t;
        for (int i = 0; i < 9 + p * 5; ++i) t.push_back(1 + static_cast<int>(rng() % (kVocab - 1)));
        prompts.push_back(t);
      }
      std::map<RequestId, int> produced;
      RequestId next = 0;
      for (int step = 0; step < 400 && (next < 30 || !sched.Idle()); ++step) {
        if (next < 30 && rng() % 3 == 0) {
          GenerationRequest r;
          r.prompt = prompts[rng() % prompts.size()];
          if (rng() % 2) r.prompt.push_back(1 + static_cast<int>(rng() % (kVocab - 1)));  // a partial hit
          r.max_tokens = 1 + static_cast<int>(rng() % 6);
          r.ignore_eos = true;
          wanted[next] = r.max_tokens;
          prompts_of[next] = r.prompt;
          ASSERT_TRUE(sched.Add(next++, r).ok());
        }
        if (next > 0 && rng() % 23 == 0) {
          const RequestId victim = static_cast<RequestId>(rng() % next);
          aborted.insert(victim);
          sched.Abort(victim);
        }
        sched.TakeAborted();
        auto st = sched.Schedule(step % 2);
        ASSERT_TRUE(st.ok()) << st.status();
        // A model of the KV cache's rows (which token each row holds), run as every rank runs a
        // step: block copies first, then each sequence reads its context and writes its tokens.
        // Every row a sequence reads must hold that sequence's own token at that position.
        for (const SequenceStep& q : st->seqs)
          if (q.copy_src >= 0) rows[q.copy_dst] = rows[q.copy_src];
        for (size_t i = 0; i < st->seqs.size(); ++i) {
          const SequenceStep& q = st->seqs[i];
          const RequestId id = st->ids[i];
          std::vector<int> known = prompts_of[id];
          known.insert(known.end(), outputs[id].begin(), outputs[id].end());
          for (int pos = 0; pos < q.context_len; ++pos) {
            const int b = q.blocks[pos / o.block_size];
            ASSERT_EQ(rows[b][pos % o.block_size], known[pos])
                << "request " << id << " reads a wrong row at " << pos << " (block " << b << "), seed " << seed;
          }
          for (size_t t = 0; t < q.tokens.size(); ++t) {
            const int pos = q.context_len + static_cast<int>(t);
            rows[q.blocks[pos / o.block_size]][pos % o.block_size] = q.tokens[t];
          }
        }
        if (!st->empty()) {
          const std::vector<float> logits = Logits(*st, produced);
          for (const RequestOutput& out : FinishStep(sched, *st, logits.data()))
            if (out.token >= 0) {
              outputs[out.id].push_back(out.token);
              ++produced[out.id];
            }
        }
        // Accounting: references equal holders; free + held-or-cached covers every block once.
        const BlockPool& pool = sched.block_pool();
        std::map<int, int> holders;
        for (const auto& blocks : sched.BlocksHeld()) {
          std::set<int> once(blocks.begin(), blocks.end());
          ASSERT_EQ(once.size(), blocks.size()) << "a sequence holds a block twice";
          for (int b : blocks) ++holders[b];
        }
        std::map<int, int> copy_refs;  // a sequence about to copy another's partly filled block
        for (int b : sched.CopySources()) ++copy_refs[b];
        int64_t unheld_cached = 0;
        for (int b = 0; b < o.num_blocks; ++b) {
          const int held = holders.count(b) ? holders[b] : 0, copies = copy_refs.count(b) ? copy_refs[b] : 0;
          ASSERT_EQ(pool.ref_count(b), held + copies) << "block " << b << " seed " << seed;
          if (held > 1) {
            ASSERT_TRUE(pool.published(b)) << "an unpublished block is in two block tables";
          }
          unheld_cached += pool.ref_count(b) == 0 && pool.published(b);
        }
        const int64_t never_or_plain_free = pool.num_free() - unheld_cached;
        int64_t referenced = 0;
        for (int b = 0; b < o.num_blocks; ++b) referenced += pool.ref_count(b) > 0;
        ASSERT_EQ(never_or_plain_free + unheld_cached + referenced, o.num_blocks);
      }
      ASSERT_TRUE(sched.Idle()) << "seed " << seed;
      EXPECT_EQ(sched.block_pool().num_free(), o.num_blocks) << "blocks leaked, seed " << seed;
      for (const auto& [id, n] : wanted) {
        if (!aborted.count(id)) {
          EXPECT_EQ(outputs[id], Expected(id, n)) << "request " << id << " seed " << seed;
        }
      }
      if (caching) {
        EXPECT_GT(sched.prefix_cache().hits, 0) << "seed " << seed;
      } else {
        EXPECT_EQ(sched.prefix_cache().hits, 0);
      }
    }
  }
}

}  // namespace
}  // namespace strata

namespace strata {
namespace {

// Under a grammar the logits' favourites (outside it) are never sampled: the output is a sentence
// of the grammar, and the request ends ("stop") as soon as nothing may follow, even with
// ignore_eos and max_tokens left.
TEST(Scheduler, GrammarConstrainsSamplingAndEndsTheSentence) {
  std::vector<std::string> bytes(kVocab, "");
  for (int i = 1; i < kVocab; ++i) bytes[i] = std::string(1, static_cast<char>('a' + i - 1));  // "a".."o"
  bytes[5] = "{";
  bytes[6] = "}";
  auto vocab = std::make_shared<grammar::TokenVocabulary>(bytes, std::vector<int>{0});
  grammar::Grammar g;
  g.AddRule("root");
  g.rules[0].body = grammar::Sequence({grammar::Bytes("{"), grammar::Repeat(grammar::CharClass({{'a', 'c'}}), 1, 3),
                                       grammar::Bytes("}")});
  auto compiled = grammar::CompileGrammar(g, vocab);
  ASSERT_TRUE(compiled.ok()) << compiled.status();
  const ModelSpec spec = OneLayerSpec();
  SchedulerOptions o;
  o.block_size = 4;
  o.num_blocks = 64;
  Scheduler s(spec, o);
  for (RequestId id = 0; id < 3; ++id) {
    GenerationRequest r = Request(3, 20);
    r.grammar = *compiled;
    r.sampling.temperature = id == 0 ? 0.f : 1.f;
    r.sampling.seed = id;
    ASSERT_TRUE(s.Add(id, r).ok());
  }
  const Outcome run = Drive(s);
  for (RequestId id = 0; id < 3; ++id) {
    std::string text;
    for (int t : run.tokens.at(id)) text += bytes[t];
    EXPECT_EQ(run.finish.at(id), "stop") << text;
    ASSERT_GE(text.size(), 3u);
    EXPECT_EQ(text.front(), '{');
    EXPECT_EQ(text.back(), '}');
    EXPECT_LE(text.size(), 5u);
    for (size_t i = 1; i + 1 < text.size(); ++i) EXPECT_TRUE(text[i] >= 'a' && text[i] <= 'c') << text;
  }
  // A grammar compiled for another vocabulary size is refused.
  auto other = std::make_shared<grammar::TokenVocabulary>(std::vector<std::string>(kVocab + 1, "a"), std::vector<int>{});
  auto wrong = grammar::CompileGrammar(g, other);
  ASSERT_TRUE(wrong.ok());
  GenerationRequest r = Request(3, 4);
  r.grammar = *wrong;
  EXPECT_FALSE(s.Add(9, r).ok());
}

}  // namespace
}  // namespace strata
