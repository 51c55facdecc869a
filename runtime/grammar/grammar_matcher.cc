#include "runtime/grammar/grammar_matcher.h"

#include <algorithm>
#include <atomic>
#include <set>
#include <thread>

#include "runtime/grammar/grammar_automaton.h"
#include "runtime/grammar/stack_set.h"

namespace strata::grammar {

// What one DFA state allows, computed once over the whole vocabulary: tokens accepted whatever
// lies below on the stack (as a bitmask when many, else a list) and tokens that run past the end
// of the state's rule, to check against the real stack.
struct MaskEntry {
  TokenMask accepted_bits;
  std::vector<int32_t> accepted_ids;
  std::vector<int32_t> uncertain;
};

struct CompiledGrammarData {
  GrammarAutomaton automaton;
  std::shared_ptr<const TokenVocabulary> vocab;
  // A state of a called rule is computed once per place it returns to (the caller's rule and
  // return state, with an unknown stack below that): a token that ends the rule goes on in a
  // known caller, so only tokens that end two rules need the real stack. entry: keyed by
  // EntryKey(rule, state, caller rule, return state); root_entry[state]: the root's states with
  // nothing below (the output ends where the root does), -1 where a state consumes no byte.
  absl::flat_hash_map<uint64_t, int32_t> entry;
  std::vector<bool> per_site;  // per rule: entries per call site (else one, on an unknown stack)
  std::vector<int32_t> root_entry;
  std::vector<MaskEntry> entries;
  TokenMask first_mask;  // the first step's, when first tokens decode differently
  int words = 0;
};

namespace {

int Words(int vocab) { return (vocab + 31) / 32; }
constexpr size_t kMaxCallSites = 8;
uint64_t EntryKey(int32_t rule, int32_t state, int32_t caller, int32_t ret) {
  return (uint64_t(uint16_t(rule)) << 48) | (uint64_t(uint16_t(state)) << 32) | (uint64_t(uint16_t(caller)) << 16) |
         uint64_t(uint16_t(ret));
}
void SetBit(TokenMask* m, int id) { (*m)[id >> 5] |= 1u << (id & 31); }

// Walks the vocabulary's byte trie from the stack `node` (its bottom kUnknown or kBottom) and
// sorts every token into accepted, uncertain (it needs the stack below) or rejected.
MaskEntry ComputeEntry(StackStore* store, const TokenVocabulary& v, int32_t node) {
  struct Level {
    const StackSet* set = nullptr;
    StackSet scratch;
    bool inherited = false;  // a path escaped at a shallower depth: longer tokens are uncertain
  };
  std::vector<Level> levels(v.max_token_bytes() + 1);
  store->Start(node, &levels[0].scratch);
  levels[0].set = &levels[0].scratch;
  std::vector<int32_t> accepted, uncertain;
  const std::vector<int>& sorted = v.sorted();
  for (int k = 0; k < v.trie_size();) {
    const int d = v.trie_depth(k);
    const Level& parent = levels[d - 1];
    Level& cur = levels[d];
    cur.inherited = parent.inherited || parent.set->escapes;
    cur.set = &store->AdvanceShared(*parent.set, v.trie_byte(k), &cur.scratch);
    const StackSet& set = *cur.set;
    if (set.tops.empty() && !set.ends && !set.escapes) {
      // No token with this prefix passes here; those past an escape need the real stack.
      if (cur.inherited)
        for (int i = v.trie_first(k); i < v.trie_last(k); ++i) uncertain.push_back(sorted[i]);
      k = v.trie_skip(k);
      continue;
    }
    for (int i = v.trie_first(k), end = i + v.trie_ends(k); i < end; ++i) accepted.push_back(sorted[i]);
    if (set.tops.empty() && !set.escapes && !cur.inherited) {  // only the end: nothing longer passes
      k = v.trie_skip(k);
      continue;
    }
    ++k;
  }
  MaskEntry e;
  if (static_cast<int>(accepted.size()) > Words(v.size())) {
    e.accepted_bits.assign(Words(v.size()), 0);
    for (int id : accepted) SetBit(&e.accepted_bits, id);
  } else {
    e.accepted_ids = std::move(accepted);
  }
  std::sort(uncertain.begin(), uncertain.end());
  e.uncertain = std::move(uncertain);
  return e;
}

// Every (rule, state, below) the matcher can stand on, computed on all cores.
void ComputeEntries(CompiledGrammarData* d) {
  struct Job {
    int32_t rule, state, caller, ret;  // caller -1: the root on the bottom
    int32_t* slot;
  };
  std::vector<Job> jobs;
  // Where each rule returns to: (caller rule, return state) of every call edge.
  const auto& rules = d->automaton.rules;
  std::vector<std::set<std::pair<int32_t, int32_t>>> sites(rules.size());
  for (size_t c = 0; c < rules.size(); ++c)
    for (const DfaState& st : rules[c].states)
      for (const CallEdge& e : st.calls) sites[e.rule].insert({static_cast<int32_t>(c), e.return_state});
  std::vector<std::pair<uint64_t, size_t>> keys;  // entry key -> job
  d->per_site.assign(rules.size(), false);
  for (size_t r = 0; r < rules.size(); ++r) {
    // A rule called from many places (an array item repeated up to maxItems times) is computed
    // once on an unknown stack instead: its uncertain tokens are few, its states many.
    d->per_site[r] = sites[r].size() <= kMaxCallSites;
    for (size_t s = 0; s < rules[r].states.size(); ++s) {
      if (rules[r].states[s].bytes.empty() || sites[r].empty()) continue;
      if (!d->per_site[r]) {
        keys.push_back({EntryKey(int32_t(r), int32_t(s), -1, -1), jobs.size()});
        jobs.push_back({int32_t(r), int32_t(s), -2, -2, nullptr});
        continue;
      }
      for (auto [caller, ret] : sites[r]) {
        keys.push_back({EntryKey(int32_t(r), int32_t(s), caller, ret), jobs.size()});
        jobs.push_back({int32_t(r), int32_t(s), caller, ret, nullptr});
      }
    }
  }
  const auto& root = rules[0].states;
  d->root_entry.assign(root.size(), -1);
  for (size_t s = 0; s < root.size(); ++s)
    if (!root[s].bytes.empty()) jobs.push_back({0, int32_t(s), -1, -1, &d->root_entry[s]});
  d->entries.resize(jobs.size());
  for (size_t j = 0; j < jobs.size(); ++j)
    if (jobs[j].slot) *jobs[j].slot = static_cast<int32_t>(j);
  for (auto [key, j] : keys) d->entry[key] = static_cast<int32_t>(j);
  std::atomic<size_t> next{0};
  auto work = [&] {
    StackStore store(&d->automaton, /*memoize=*/true);
    for (size_t j; (j = next++) < jobs.size();) {
      const Job& job = jobs[j];
      // The root, when nothing calls it, always stands on the bottom.
      const int32_t below = job.caller == -2                      ? kUnknown
                            : job.caller < 0                       ? kBottom
                            : job.caller == 0 && sites[0].empty() ? store.Intern(0, job.ret, kBottom)
                                                                  : store.Intern(job.caller, job.ret, kUnknown);
      d->entries[j] = ComputeEntry(&store, *d->vocab, store.Intern(job.rule, job.state, below));
    }
  };
  const int threads = std::clamp(static_cast<int>(std::thread::hardware_concurrency()), 1, 8);
  std::vector<std::thread> pool;
  for (int k = 1; k < threads && k < static_cast<int>(jobs.size()); ++k) pool.emplace_back(work);
  work();
  for (std::thread& t : pool) t.join();
}

// The first step's mask, token by token, where first tokens decode differently (SentencePiece's
// dummy-prefix space): it is always taken from the same start.
void ComputeFirstMask(CompiledGrammarData* d) {
  const TokenVocabulary& v = *d->vocab;
  if (!v.has_first_bytes()) return;
  StackStore store(&d->automaton);
  const int32_t start = store.Intern(0, 0, kBottom);
  d->first_mask.assign(d->words, 0);
  for (int id = 0; id < v.size(); ++id) {
    const std::string& b = v.first_bytes(id);
    if (!b.empty() && store.Accepts(start, b.data(), b.size())) SetBit(&d->first_mask, id);
  }
}

}  // namespace

CompiledGrammar::CompiledGrammar() : data_(std::make_unique<CompiledGrammarData>()) {}
CompiledGrammar::~CompiledGrammar() = default;
const TokenVocabulary& CompiledGrammar::vocabulary() const { return *data_->vocab; }
int CompiledGrammar::num_states() const { return data_->automaton.num_states(); }

size_t CompiledGrammar::memory_bytes() const {
  size_t b = 0;
  for (const MaskEntry& e : data_->entries)
    b += sizeof(MaskEntry) + 4 * (e.accepted_bits.size() + e.accepted_ids.size() + e.uncertain.size());
  for (const RuleAutomaton& r : data_->automaton.rules)
    for (const DfaState& s : r.states) b += sizeof(DfaState) + s.bytes.size() * sizeof(ByteRange) + s.calls.size() * 8;
  return b + 4 * data_->first_mask.size();
}

absl::StatusOr<std::shared_ptr<const CompiledGrammar>> CompileGrammar(const Grammar& g,
                                                                     std::shared_ptr<const TokenVocabulary> vocab) {
  auto automaton = BuildAutomaton(g);
  if (!automaton.ok()) return automaton.status();
  std::shared_ptr<CompiledGrammar> c(new CompiledGrammar());
  CompiledGrammarData* d = c->data_.get();
  d->automaton = std::move(*automaton);
  d->vocab = std::move(vocab);
  d->words = Words(d->vocab->size());
  ComputeEntries(d);
  ComputeFirstMask(d);
  return std::shared_ptr<const CompiledGrammar>(std::move(c));
}

struct GrammarMatcher::State {
  explicit State(std::shared_ptr<const CompiledGrammar> g) : grammar(std::move(g)), store(&grammar->data().automaton) {
    store.Start(store.Intern(0, 0, kBottom), &current);
  }
  const CompiledGrammarData& data() const { return grammar->data(); }

  std::shared_ptr<const CompiledGrammar> grammar;
  StackStore store;
  StackSet current;
  bool first_step = true;
  bool ended = false;  // an end-of-sequence id was taken
};

GrammarMatcher::GrammarMatcher(std::shared_ptr<const CompiledGrammar> g) : s_(std::make_unique<State>(std::move(g))) {}
GrammarMatcher::~GrammarMatcher() = default;
GrammarMatcher::GrammarMatcher(GrammarMatcher&&) noexcept = default;
GrammarMatcher& GrammarMatcher::operator=(GrammarMatcher&&) noexcept = default;

void GrammarMatcher::FillNextTokenMask(TokenMask* mask) {
  const CompiledGrammarData& d = s_->data();
  const TokenVocabulary& v = *d.vocab;
  mask->assign(d.words, 0);
  if (s_->ended) return;
  if (s_->first_step && !d.first_mask.empty()) {
    *mask = d.first_mask;
  } else {
    for (int32_t top : s_->current.tops) {
      const StackNode n = s_->store.node(top);
      int32_t k;
      if (n.parent == kBottom) {
        k = d.root_entry[n.state];
      } else {
        const StackNode p = s_->store.node(n.parent);
        k = d.per_site[n.rule] ? d.entry.at(EntryKey(n.rule, n.state, p.rule, p.state))
                               : d.entry.at(EntryKey(n.rule, n.state, -1, -1));
      }
      const MaskEntry& e = d.entries[k];
      if (!e.accepted_bits.empty())
        for (int w = 0; w < d.words; ++w) (*mask)[w] |= e.accepted_bits[w];
      for (int32_t id : e.accepted_ids) SetBit(mask, id);
      for (int32_t id : e.uncertain) {
        if (MaskHas(*mask, id)) continue;
        const std::string& b = v.bytes(id);
        if (s_->store.Accepts(top, b.data(), b.size())) SetBit(mask, id);
      }
    }
  }
  if (s_->current.ends)
    for (int id : v.eos_ids())
      if (id >= 0 && id < v.size()) SetBit(mask, id);
}

bool GrammarMatcher::AcceptToken(int id) {
  const TokenVocabulary& v = *s_->data().vocab;
  if (s_->ended || id < 0 || id >= v.size()) return false;
  if (std::find(v.eos_ids().begin(), v.eos_ids().end(), id) != v.eos_ids().end()) {
    if (!s_->current.ends) return false;
    s_->ended = true;
    return true;
  }
  const std::string& b = s_->first_step ? v.first_bytes(id) : v.bytes(id);
  if (b.empty()) return false;
  StackSet cur = s_->current, next;
  for (size_t i = 0; i < b.size(); ++i) {
    s_->store.Advance(cur, static_cast<uint8_t>(b[i]), &next);
    std::swap(cur, next);
    if (cur.tops.empty() && !(cur.ends && i + 1 == b.size())) return false;
  }
  s_->current = std::move(cur);
  s_->first_step = false;
  return true;
}

bool GrammarMatcher::CanTerminate() const { return s_->ended || s_->current.ends; }
bool GrammarMatcher::IsComplete() const { return s_->ended || (s_->current.tops.empty() && s_->current.ends); }

bool GrammarMatcher::AcceptsBytes(const std::string& bytes) const {
  StackStore& store = s_->store;
  StackSet cur = s_->current, next;
  for (size_t i = 0; i < bytes.size(); ++i) {
    store.Advance(cur, static_cast<uint8_t>(bytes[i]), &next);
    std::swap(cur, next);
    if (cur.tops.empty() && !(cur.ends && i + 1 == bytes.size())) return false;
  }
  return true;
}

}  // namespace strata::grammar
