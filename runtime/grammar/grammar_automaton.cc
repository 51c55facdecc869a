#include "runtime/grammar/grammar_automaton.h"

#include <algorithm>
#include <functional>
#include <map>
#include <set>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "utf8proc.h"

namespace strata::grammar {

int GrammarAutomaton::num_states() const {
  int n = 0;
  for (const RuleAutomaton& r : rules) n += static_cast<int>(r.states.size());
  return n;
}

namespace {
// Splits [lo, hi] until both ends encode to byte sequences that differ only in ranges per
// position (the construction of RE2 and Rust's regex-syntax).
void SplitUtf8(uint32_t lo, uint32_t hi, std::vector<std::vector<std::pair<uint8_t, uint8_t>>>* out) {
  if (lo >= 0xD800 && lo <= 0xDFFF) lo = 0xE000;
  if (hi >= 0xD800 && hi <= 0xDFFF) hi = 0xD7FF;
  if (hi > 0x10FFFF) hi = 0x10FFFF;
  if (lo > hi) return;
  if (lo < 0xD800 && hi > 0xDFFF) {
    SplitUtf8(lo, 0xD7FF, out);
    SplitUtf8(0xE000, hi, out);
    return;
  }
  for (uint32_t max : {0x7Fu, 0x7FFu, 0xFFFFu}) {
    if (lo <= max && max < hi) {
      SplitUtf8(lo, max, out);
      SplitUtf8(max + 1, hi, out);
      return;
    }
  }
  if (hi <= 0x7F) {
    out->push_back({{static_cast<uint8_t>(lo), static_cast<uint8_t>(hi)}});
    return;
  }
  for (int i = 1; i < 4; ++i) {
    const uint32_t m = (1u << (6 * i)) - 1;
    if ((lo & ~m) != (hi & ~m)) {
      if ((lo & m) != 0) {
        SplitUtf8(lo, lo | m, out);
        SplitUtf8((lo | m) + 1, hi, out);
        return;
      }
      if ((hi & m) != m) {
        SplitUtf8(lo, (hi & ~m) - 1, out);
        SplitUtf8(hi & ~m, hi, out);
        return;
      }
    }
  }
  uint8_t a[4], b[4];
  const int na = static_cast<int>(utf8proc_encode_char(static_cast<utf8proc_int32_t>(lo), a));
  utf8proc_encode_char(static_cast<utf8proc_int32_t>(hi), b);
  std::vector<std::pair<uint8_t, uint8_t>> seq;
  for (int k = 0; k < na; ++k) seq.push_back({a[k], b[k]});
  out->push_back(std::move(seq));
}

// The code points a class matches: sorted, disjoint, negation applied.
std::vector<std::pair<uint32_t, uint32_t>> NormalizeClass(const Expr& e) {
  std::vector<std::pair<uint32_t, uint32_t>> r;
  for (auto [lo, hi] : e.ranges)
    if (lo <= hi && lo <= 0x10FFFF) r.push_back({lo, std::min<uint32_t>(hi, 0x10FFFF)});
  std::sort(r.begin(), r.end());
  std::vector<std::pair<uint32_t, uint32_t>> merged;
  for (auto [lo, hi] : r) {
    if (!merged.empty() && lo <= merged.back().second + 1)
      merged.back().second = std::max(merged.back().second, hi);
    else
      merged.push_back({lo, hi});
  }
  if (!e.negated) return merged;
  std::vector<std::pair<uint32_t, uint32_t>> inv;
  uint32_t next = 0;
  for (auto [lo, hi] : merged) {
    if (lo > next) inv.push_back({next, lo - 1});
    next = hi + 1;
  }
  if (next <= 0x10FFFF) inv.push_back({next, 0x10FFFF});
  return inv;
}

struct NfaState {
  std::vector<ByteRange> bytes;
  std::vector<int> eps;
  std::vector<CallEdge> calls;  // rule = automaton rule index
};

struct Nfa {
  std::vector<NfaState> states;
  int start = 0, accept = 0;
};

// Which rules lie on a reference cycle (they stay rules; the others are inlined).
std::vector<bool> CyclicRules(const Grammar& g) {
  const int n = static_cast<int>(g.rules.size());
  std::vector<std::set<int>> refs(n);
  std::function<void(const Expr&, std::set<int>*)> collect = [&](const Expr& e, std::set<int>* out) {
    if (e.kind == Expr::Kind::kRuleRef) out->insert(e.rule);
    for (const Expr& i : e.items) collect(i, out);
  };
  for (int r = 0; r < n; ++r) collect(g.rules[r].body, &refs[r]);
  // A rule is cyclic when it can reach itself.
  std::vector<bool> cyclic(n, false);
  for (int r = 0; r < n; ++r) {
    std::vector<bool> seen(n, false);
    std::vector<int> todo(refs[r].begin(), refs[r].end());
    while (!todo.empty() && !cyclic[r]) {
      const int x = todo.back();
      todo.pop_back();
      if (x == r) cyclic[r] = true;
      if (x < 0 || x >= n || seen[x]) continue;
      seen[x] = true;
      for (int y : refs[x]) todo.push_back(y);
    }
  }
  return cyclic;
}

class NfaBuilder {
 public:
  // An automaton rule still to build: its body and name.
  struct Pending {
    const Expr* body;
    std::string name;
  };

  NfaBuilder(const Grammar& g, const std::vector<bool>& cyclic, const AutomatonLimits& limits,
             std::vector<int>* rule_index, std::vector<Pending>* pending, int* total_states)
      : g_(g), cyclic_(cyclic), limits_(limits), rule_index_(rule_index), pending_(pending), total_(total_states) {}

  absl::StatusOr<Nfa> Build(const Expr& body) {
    nfa_ = Nfa();
    nfa_.start = NewState();
    const int end = Fragment(body, nfa_.start, 0);
    if (!error_.ok()) return error_;
    nfa_.accept = end;
    return std::move(nfa_);
  }

 private:
  int NewState() {
    if (++*total_ > limits_.max_nfa_states && error_.ok())
      error_ = absl::InvalidArgumentError(absl::StrCat("the grammar is too large: over ", limits_.max_nfa_states,
                                                       " automaton states after expanding repetitions"));
    nfa_.states.emplace_back();
    return static_cast<int>(nfa_.states.size()) - 1;
  }
  void AddBytes(int from, uint8_t lo, uint8_t hi, int to) { nfa_.states[from].bytes.push_back({lo, hi, to}); }
  void AddEps(int from, int to) { nfa_.states[from].eps.push_back(to); }

  // Builds `e` starting at `from`; returns the state where it ends.
  int Fragment(const Expr& e, int from, int depth) {
    if (!error_.ok()) return from;
    if (depth > 512) {
      error_ = absl::InvalidArgumentError("the grammar is nested too deeply (over 512 levels)");
      return from;
    }
    switch (e.kind) {
      case Expr::Kind::kBytes: {
        int at = from;
        for (unsigned char b : e.bytes) {
          const int next = NewState();
          AddBytes(at, b, b, next);
          at = next;
        }
        return at;
      }
      case Expr::Kind::kCharClass: {
        const int end = NewState();
        for (auto [lo, hi] : NormalizeClass(e)) {
          for (const auto& seq : Utf8Sequences(lo, hi)) {
            int at = from;
            for (size_t k = 0; k < seq.size(); ++k) {
              const int next = k + 1 == seq.size() ? end : NewState();
              AddBytes(at, seq[k].first, seq[k].second, next);
              at = next;
            }
          }
        }
        return end;
      }
      case Expr::Kind::kRuleRef: {
        if (e.rule < 0 || e.rule >= static_cast<int>(g_.rules.size())) {
          error_ = absl::InvalidArgumentError(absl::StrCat("rule reference ", e.rule, " is out of range"));
          return from;
        }
        if (!cyclic_[e.rule]) return Fragment(g_.rules[e.rule].body, from, depth + 1);
        int& index = (*rule_index_)[e.rule];
        if (index < 0) {
          index = static_cast<int>(pending_->size());
          pending_->push_back({&g_.rules[e.rule].body, g_.rules[e.rule].name});
        }
        return Call(from, index);
      }
      case Expr::Kind::kSequence: {
        int at = from;
        for (const Expr& i : e.items) at = Fragment(i, at, depth + 1);
        return at;
      }
      case Expr::Kind::kChoice: {
        const int end = NewState();
        for (const Expr& i : e.items) {
          const int start = NewState();
          AddEps(from, start);
          AddEps(Fragment(i, start, depth + 1), end);
        }
        return end;
      }
      case Expr::Kind::kRepeat: {
        if (e.items.size() != 1 || e.min < 0 || (e.max >= 0 && e.max < e.min)) {
          error_ = absl::InvalidArgumentError(absl::StrCat("bad repetition {", e.min, ",", e.max, "}"));
          return from;
        }
        // A large item copied several times becomes a rule of its own that each copy calls:
        // its states (and their token masks) exist once, not once per copy.
        const int copies = e.max < 0 ? e.min + 1 : e.max;
        int item_rule = -1;
        if (copies >= 2 && Weight(e.items[0], 0) > kInlineWeight) {
          auto [it, inserted] = aux_index_.try_emplace(&e.items[0], static_cast<int>(pending_->size()));
          if (inserted) pending_->push_back({&e.items[0], "repeated item"});
          item_rule = it->second;
        }
        auto item = [&](int at) { return item_rule >= 0 ? Call(at, item_rule) : Fragment(e.items[0], at, depth + 1); };
        int at = from;
        for (int k = 0; k < e.min && error_.ok(); ++k) at = item(at);
        if (e.max < 0) {  // at -> item -> at, and out
          const int loop = NewState();
          AddEps(at, loop);
          AddEps(item(loop), loop);
          return loop;
        }
        const int end = NewState();
        AddEps(at, end);
        for (int k = e.min; k < e.max && error_.ok(); ++k) {
          at = item(at);
          AddEps(at, end);
        }
        return end;
      }
    }
    return from;
  }

  int Call(int from, int rule) {
    const int ret = NewState();
    nfa_.states[from].calls.push_back({rule, ret});
    return ret;
  }

  // About how many automaton states `e` inlines to (capped: only "small or not" matters).
  static constexpr int kInlineWeight = 64;
  int Weight(const Expr& e, int depth) const {
    if (depth > 32) return kInlineWeight + 1;
    switch (e.kind) {
      case Expr::Kind::kBytes: return static_cast<int>(e.bytes.size());
      case Expr::Kind::kCharClass: return 4;
      case Expr::Kind::kRuleRef:
        return e.rule >= 0 && e.rule < static_cast<int>(g_.rules.size()) && !cyclic_[e.rule]
                   ? Weight(g_.rules[e.rule].body, depth + 1) : 1;
      case Expr::Kind::kRepeat: {
        const int inner = e.items.empty() ? 0 : Weight(e.items[0], depth + 1);
        return std::min(kInlineWeight + 1, inner * std::max(1, e.max < 0 ? e.min + 1 : e.max));
      }
      default: {
        int w = 0;
        for (const Expr& i : e.items) w = std::min(kInlineWeight + 1, w + Weight(i, depth + 1));
        return w;
      }
    }
  }

  const Grammar& g_;
  const std::vector<bool>& cyclic_;
  const AutomatonLimits& limits_;
  std::vector<int>* rule_index_;    // grammar rule -> automaton rule (-1: not yet)
  std::vector<Pending>* pending_;   // automaton rules to build
  std::map<const Expr*, int> aux_index_;  // repeated items made rules
  int* total_;
  Nfa nfa_;
  absl::Status error_;
};

// Rules whose language is not empty, given which callees are.
std::vector<bool> NonEmptyRules(const std::vector<Nfa>& nfas) {
  std::vector<bool> nonempty(nfas.size(), false);
  for (bool changed = true; changed;) {
    changed = false;
    for (size_t r = 0; r < nfas.size(); ++r) {
      if (nonempty[r]) continue;
      const Nfa& n = nfas[r];
      std::vector<bool> seen(n.states.size(), false);
      std::vector<int> todo = {n.start};
      while (!todo.empty()) {
        const int s = todo.back();
        todo.pop_back();
        if (seen[s]) continue;
        seen[s] = true;
        for (const ByteRange& b : n.states[s].bytes) todo.push_back(b.target);
        for (int t : n.states[s].eps) todo.push_back(t);
        for (const CallEdge& c : n.states[s].calls)
          if (nonempty[c.rule]) todo.push_back(c.return_state);
      }
      if (seen[n.accept]) nonempty[r] = changed = true;
    }
  }
  return nonempty;
}

// The states of `n` from which the accepting state is reachable.
std::vector<bool> CoReachable(const Nfa& n, const std::vector<bool>& nonempty) {
  std::vector<std::vector<int>> back(n.states.size());
  for (size_t s = 0; s < n.states.size(); ++s) {
    for (const ByteRange& b : n.states[s].bytes) back[b.target].push_back(static_cast<int>(s));
    for (int t : n.states[s].eps) back[t].push_back(static_cast<int>(s));
    for (const CallEdge& c : n.states[s].calls)
      if (nonempty[c.rule]) back[c.return_state].push_back(static_cast<int>(s));
  }
  std::vector<bool> live(n.states.size(), false);
  std::vector<int> todo = {n.accept};
  while (!todo.empty()) {
    const int s = todo.back();
    todo.pop_back();
    if (live[s]) continue;
    live[s] = true;
    for (int p : back[s]) todo.push_back(p);
  }
  return live;
}

// Subset construction. Its cost is the total size of the NFA-state sets it creates, which a
// regex like `.*a.{30}` makes exponential: that total is budgeted (AutomatonLimits::
// max_dfa_set_entries) so such a grammar is refused in well under a second instead of after
// reaching max_dfa_states slowly.
class Determinizer {
 public:
  Determinizer(const Nfa& n, const std::vector<bool>& live, const std::vector<bool>& nonempty,
               const AutomatonLimits& limits, int* total_states, int64_t* total_entries)
      : n_(n),
        live_(live),
        nonempty_(nonempty),
        limits_(limits),
        total_states_(total_states),
        total_entries_(total_entries),
        mark_(n.states.size(), 0),
        count_(n.states.size(), 0),
        in_active_(n.states.size(), 0) {}

  absl::StatusOr<std::vector<DfaState>> Run() {
    Intern(Closure({n_.start}));
    for (size_t d = 0; d < sets_.size(); ++d) {
      if (*total_states_ > limits_.max_dfa_states)
        return absl::InvalidArgumentError(absl::StrCat("the grammar is too large: over ", limits_.max_dfa_states,
                                                       " deterministic automaton states"));
      if (*total_entries_ > limits_.max_dfa_set_entries)
        return absl::InvalidArgumentError(absl::StrCat(
            "the grammar is too large: its deterministic automaton tracks over ", limits_.max_dfa_set_entries,
            " alternatives (a pattern such as .*a.{30} grows exponentially)"));
      const std::vector<int> set = sets_[d];  // copied: Intern may grow sets_
      DfaState st;
      st.accepting = std::binary_search(set.begin(), set.end(), n_.accept);
      AddByteTransitions(set, &st);
      std::map<int, std::vector<int>> returns;  // callee -> return states
      for (int s : set)
        for (const CallEdge& c : n_.states[s].calls)
          if (nonempty_[c.rule] && live_[c.return_state]) returns[c.rule].push_back(c.return_state);
      for (auto& [rule, rets] : returns) st.calls.push_back({rule, Intern(Closure(rets))});
      dfa_.push_back(std::move(st));
    }
    return std::move(dfa_);
  }

 private:
  // Byte transitions over the intervals where the set of targets is constant: a sweep over the
  // edges' start and end bytes (bucketed, bytes being 0-255) keeps the targets active in each.
  void AddByteTransitions(const std::vector<int>& set, DfaState* st) {
    for (int at : touched_) {
      starts_[at].clear();
      ends_[at].clear();
    }
    touched_.clear();
    for (int s : set)
      for (const ByteRange& b : n_.states[s].bytes)
        if (live_[b.target]) {
          if (starts_[b.lo].empty() && ends_[b.lo].empty()) touched_.push_back(b.lo);
          starts_[b.lo].push_back(b.target);
          if (starts_[b.hi + 1].empty() && ends_[b.hi + 1].empty()) touched_.push_back(b.hi + 1);
          ends_[b.hi + 1].push_back(b.target);
        }
    std::sort(touched_.begin(), touched_.end());
    std::vector<int> active;  // targets with count_ > 0, possibly with stale entries
    for (size_t k = 0; k + 1 < touched_.size(); ++k) {
      const int lo = touched_[k], hi = touched_[k + 1] - 1;
      for (int t : ends_[lo]) --count_[t];
      for (int t : starts_[lo])
        if (count_[t]++ == 0) active.push_back(t);
      // Compact active: drop targets whose count fell to 0 and second copies of re-activated ones.
      ++active_stamp_;
      size_t kept = 0;
      for (int t : active)
        if (count_[t] > 0 && in_active_[t] != active_stamp_) {
          in_active_[t] = active_stamp_;
          active[kept++] = t;
        }
      active.resize(kept);
      if (active.empty()) continue;
      const int t = Intern(Closure(active));
      if (!st->bytes.empty() && st->bytes.back().target == t && st->bytes.back().hi + 1 == lo)
        st->bytes.back().hi = static_cast<uint8_t>(hi);
      else
        st->bytes.push_back({static_cast<uint8_t>(lo), static_cast<uint8_t>(hi), t});
    }
    for (int t : ends_[touched_.empty() ? 0 : touched_.back()]) --count_[t];
  }

  // The epsilon closure, sorted; mark_ (stamped per call) replaces a set.
  std::vector<int> Closure(std::vector<int> todo) {
    ++stamp_;
    std::vector<int> out;
    while (!todo.empty()) {
      const int s = todo.back();
      todo.pop_back();
      if (!live_[s] || mark_[s] == stamp_) continue;
      mark_[s] = stamp_;
      out.push_back(s);
      for (int t : n_.states[s].eps) todo.push_back(t);
    }
    std::sort(out.begin(), out.end());
    return out;
  }
  int Intern(std::vector<int> set) {
    auto it = ids_.find(set);
    if (it != ids_.end()) return it->second;
    const int id = static_cast<int>(sets_.size());
    ++*total_states_;
    *total_entries_ += static_cast<int64_t>(set.size());
    ids_.emplace(set, id);
    sets_.push_back(std::move(set));
    return id;
  }

  const Nfa& n_;
  const std::vector<bool>& live_;
  const std::vector<bool>& nonempty_;
  const AutomatonLimits& limits_;
  int* total_states_;
  int64_t* total_entries_;
  std::vector<uint32_t> mark_;  // Closure's visited set: mark_[s] == stamp_
  uint32_t stamp_ = 0;
  // AddByteTransitions' scratch: edges starting / ending at each byte value (256 = past the end),
  // the byte values used, edges covering the current interval per target, and dedup stamps.
  std::vector<int> starts_[257], ends_[257];
  std::vector<int> touched_;
  std::vector<int> count_;
  std::vector<uint32_t> in_active_;
  uint32_t active_stamp_ = 0;
  absl::flat_hash_map<std::vector<int>, int> ids_;
  std::vector<std::vector<int>> sets_;
  std::vector<DfaState> dfa_;
};

// Rules that can end without consuming a byte.
std::vector<bool> NullableRules(const GrammarAutomaton& a) {
  std::vector<bool> nullable(a.rules.size(), false);
  for (bool changed = true; changed;) {
    changed = false;
    for (size_t r = 0; r < a.rules.size(); ++r) {
      if (nullable[r]) continue;
      std::vector<bool> seen(a.rules[r].states.size(), false);
      std::vector<int> todo = {0};
      while (!todo.empty() && !nullable[r]) {
        const int s = todo.back();
        todo.pop_back();
        if (seen[s]) continue;
        seen[s] = true;
        const DfaState& st = a.rules[r].states[s];
        if (st.accepting) nullable[r] = changed = true;
        for (const CallEdge& c : st.calls)
          if (nullable[c.rule]) todo.push_back(c.return_state);
      }
    }
  }
  return nullable;
}

// Left recursion: a rule that can call itself before consuming a byte would push stacks forever.
absl::Status CheckNoLeftRecursion(const GrammarAutomaton& a) {
  const std::vector<bool> nullable = NullableRules(a);
  const int n = static_cast<int>(a.rules.size());
  std::vector<std::set<int>> left_calls(n);
  for (int r = 0; r < n; ++r) {
    std::vector<bool> seen(a.rules[r].states.size(), false);
    std::vector<int> todo = {0};
    while (!todo.empty()) {
      const int s = todo.back();
      todo.pop_back();
      if (seen[s]) continue;
      seen[s] = true;
      for (const CallEdge& c : a.rules[r].states[s].calls) {
        left_calls[r].insert(c.rule);
        if (nullable[c.rule]) todo.push_back(c.return_state);
      }
    }
  }
  for (int r = 0; r < n; ++r) {
    std::vector<bool> seen(n, false);
    std::vector<int> todo(left_calls[r].begin(), left_calls[r].end());
    while (!todo.empty()) {
      const int x = todo.back();
      todo.pop_back();
      if (x == r)
        return absl::InvalidArgumentError(
            absl::StrCat("rule '", a.rules[r].name, "' is left-recursive (it can reach itself before any text)"));
      if (seen[x]) continue;
      seen[x] = true;
      for (int y : left_calls[x]) todo.push_back(y);
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::vector<std::vector<std::pair<uint8_t, uint8_t>>> Utf8Sequences(uint32_t lo, uint32_t hi) {
  std::vector<std::vector<std::pair<uint8_t, uint8_t>>> out;
  SplitUtf8(lo, hi, &out);
  return out;
}

absl::StatusOr<GrammarAutomaton> BuildAutomaton(const Grammar& g, const AutomatonLimits& limits) {
  if (g.root < 0 || g.root >= static_cast<int>(g.rules.size()))
    return absl::InvalidArgumentError("the grammar has no root rule");
  std::vector<bool> cyclic = CyclicRules(g);
  cyclic[g.root] = true;  // the root is always a rule of its own
  std::vector<int> rule_index(g.rules.size(), -1);
  std::vector<NfaBuilder::Pending> pending = {{&g.rules[g.root].body, g.rules[g.root].name}};
  rule_index[g.root] = 0;
  int nfa_states = 0;
  std::vector<Nfa> nfas;
  NfaBuilder builder(g, cyclic, limits, &rule_index, &pending, &nfa_states);
  for (size_t k = 0; k < pending.size(); ++k) {  // pending grows as calls are found
    auto nfa = builder.Build(*pending[k].body);
    if (!nfa.ok()) return nfa.status();
    nfas.push_back(std::move(*nfa));
  }
  const std::vector<bool> nonempty = NonEmptyRules(nfas);
  if (!nonempty[0]) return absl::InvalidArgumentError("the grammar matches no text at all");
  GrammarAutomaton a;
  int dfa_states = 0;
  int64_t dfa_set_entries = 0;
  for (size_t k = 0; k < nfas.size(); ++k) {
    RuleAutomaton r;
    r.name = pending[k].name;
    if (nonempty[k]) {
      const std::vector<bool> live = CoReachable(nfas[k], nonempty);
      auto dfa = Determinizer(nfas[k], live, nonempty, limits, &dfa_states, &dfa_set_entries).Run();
      if (!dfa.ok()) return dfa.status();
      r.states = std::move(*dfa);
    } else {
      r.states.emplace_back();  // never called: calls to empty rules were dropped
    }
    a.rules.push_back(std::move(r));
  }
  if (absl::Status s = CheckNoLeftRecursion(a); !s.ok()) return s;
  return a;
}

}  // namespace strata::grammar
