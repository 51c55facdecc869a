// File: runtime/grammar/grammar_automaton.h
// A Grammar as byte-level automata: one DFA per rule that has to stay a rule (the root, and the
// rules on a reference cycle); every other rule is inlined where it is referenced. A DFA state
// has byte-range transitions, call transitions (push a rule, continue at a return state when it
// ends) and an accepting flag. Every state can still reach an accepting state (dead ends are cut),
// so a non-empty set of stacks always has a sentence to finish.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/grammar/grammar.h"

namespace strata::grammar {

struct ByteRange {
  uint8_t lo = 0, hi = 0;
  int32_t target = -1;
};

struct CallEdge {
  int32_t rule = -1;          // automaton rule index
  int32_t return_state = -1;  // where the caller continues when the callee ends
};

struct DfaState {
  std::vector<ByteRange> bytes;  // sorted, disjoint
  std::vector<CallEdge> calls;
  bool accepting = false;

  // The state reached on `b`, or -1.
  int32_t Next(uint8_t b) const {
    for (const ByteRange& r : bytes)
      if (b >= r.lo && b <= r.hi) return r.target;
    return -1;
  }
};

struct RuleAutomaton {
  std::string name;
  std::vector<DfaState> states;  // state 0 is the start
};

struct GrammarAutomaton {
  std::vector<RuleAutomaton> rules;  // rules[0] is the root
  int num_states() const;
};

struct AutomatonLimits {
  int max_nfa_states = 400000;  // per grammar, after inlining and repetition
  // Realistic schemas stay under 5,000; each state costs the matcher about 0.6 ms and 6 KB of
  // masks to compile at a 128k vocabulary, so this bounds a hostile grammar's compile.
  int max_dfa_states = 20000;
  // The NFA states summed over every deterministic state's set: the determinizer's work and
  // memory, which exponential patterns exhaust long before max_dfa_states.
  int64_t max_dfa_set_entries = 4000000;
};

// Errors: a rule number out of range, a grammar that matches nothing, left recursion (named),
// a grammar past the limits, nesting too deep.
absl::StatusOr<GrammarAutomaton> BuildAutomaton(const Grammar& g, const AutomatonLimits& limits = {});

// The UTF-8 encodings of the code points in [lo, hi] (surrogates excluded) as sequences of byte
// ranges, each sequence one encoded length.
std::vector<std::vector<std::pair<uint8_t, uint8_t>>> Utf8Sequences(uint32_t lo, uint32_t hi);

}  // namespace strata::grammar
