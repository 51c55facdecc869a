// File: runtime/grammar/stack_set.h
// The pushdown automaton's configurations: stacks of (automaton rule, DFA state) frames that
// share their tails, interned as nodes (a node is its top frame and the node below it), and a
// set of such stacks after closure (calls pushed, finished rules popped).
#pragma once

#include <cstdint>
#include <deque>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "runtime/grammar/grammar_automaton.h"

namespace strata::grammar {

inline constexpr int32_t kBottom = -1;   // below the root: popping it ends the output
inline constexpr int32_t kUnknown = -2;  // what a precomputed state assumes lies below it

struct StackNode {
  int32_t rule = 0, state = 0, parent = kBottom;
};

// The configurations reachable without consuming a byte.
struct StackSet {
  std::vector<int32_t> tops;  // nodes whose DFA state has byte transitions
  bool ends = false;          // a path pops kBottom: the output may end here
  bool escapes = false;       // a path pops kUnknown: the rest depends on the real stack
  bool alive() const { return !tops.empty() || escapes; }  // more bytes may follow
  void Clear() {
    tops.clear();
    ends = escapes = false;
  }
};

class StackStore {
 public:
  // `memoize`: remember each node's successor per byte (256 ints a node), for stores that walk
  // the whole vocabulary from few nodes (compiling).
  explicit StackStore(const GrammarAutomaton* a, bool memoize = false) : a_(a), memoize_(memoize) {}

  int32_t Intern(int32_t rule, int32_t state, int32_t parent);
  const StackNode& node(int32_t id) const { return nodes_[id]; }
  const DfaState& dfa(int32_t id) const {
    const StackNode& n = nodes_[id];
    return a_->rules[n.rule].states[n.state];
  }
  const GrammarAutomaton& automaton() const { return *a_; }

  // `out` = the closure of the single stack `node`.
  void Start(int32_t node, StackSet* out);
  // `out` = the closure of every stack of `in` after byte `b` (empty: `b` fits none).
  void Advance(const StackSet& in, uint8_t b, StackSet* out);
  // Advance, memoized for a single stack when the store memoizes (the result depends on that
  // stack and the byte only): the returned set lives in the store, or is `*scratch`.
  const StackSet& AdvanceShared(const StackSet& in, uint8_t b, StackSet* scratch);
  // Runs `bytes` from the closure of `node`: does a stack survive (or end exactly at the last byte)?
  bool Accepts(int32_t node, const char* bytes, size_t n);

 private:
  void Close(int32_t node, StackSet* out);
  static uint64_t Key(int32_t rule, int32_t state, int32_t parent) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(rule)) << 44) ^
           (static_cast<uint64_t>(static_cast<uint32_t>(state)) << 24) ^ static_cast<uint32_t>(parent);
  }

  int32_t Successor(int32_t id, uint8_t b);

  const GrammarAutomaton* a_;
  bool memoize_;
  std::vector<int32_t> successor_;  // node * 256 + byte -> node; -1: none; -2: not yet known
  std::vector<const StackSet*> advanced_;  // node * 256 + byte -> in sets_; null: not yet known
  std::deque<StackSet> sets_;       // memoized results (a deque: references stay valid)
  std::vector<StackNode> nodes_;
  absl::flat_hash_map<uint64_t, std::vector<int32_t>> index_;  // key -> nodes (collisions kept apart)
  std::vector<uint32_t> stamp_;  // per node: the closure that last visited it
  uint32_t epoch_ = 0;
  StackSet scratch_a_, scratch_b_;
};

}  // namespace strata::grammar
