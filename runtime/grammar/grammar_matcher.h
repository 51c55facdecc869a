// File: runtime/grammar/grammar_matcher.h
// Structured output over a model's real vocabulary (xgrammar's design): a Grammar is compiled
// into one byte-level DFA per rule that recursion keeps apart (every other rule is inlined), run
// as a pushdown automaton whose stacks share their tails (a tree of interned nodes). Compiling
// walks the vocabulary's byte trie once per automaton state and stores which tokens that state
// accepts whatever lies below it on the stack; the rest ("uncertain": a token that runs past the
// end of its rule) are checked against the real stack at each step. So a step's token mask is
// an OR of precomputed sets plus a few short simulations.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/grammar/grammar.h"

namespace strata {
class Tokenizer;
}

namespace strata::grammar {

// What a grammar can match a token as: its bytes where it stands in the output. Special tokens
// and tokens with no bytes never match; the end-of-sequence ids are allowed only where the
// grammar accepts.
class TokenVocabulary {
 public:
  // `model_vocab` (the logits' width) may exceed the tokenizer's size; ids past it never match.
  static std::shared_ptr<const TokenVocabulary> FromTokenizer(const Tokenizer& t, int model_vocab,
                                                              std::vector<int> eos_ids);
  // Tokens as byte strings (empty: never matches). `first_bytes`: the bytes each token decodes
  // to as the first token of an output, where that differs (SentencePiece drops its dummy-prefix
  // space there); empty when no token differs.
  TokenVocabulary(std::vector<std::string> bytes, std::vector<int> eos_ids,
                  std::vector<std::string> first_bytes = {});

  int size() const { return static_cast<int>(bytes_.size()); }
  const std::string& bytes(int id) const { return bytes_[id]; }
  const std::string& first_bytes(int id) const { return first_bytes_.empty() ? bytes_[id] : first_bytes_[id]; }
  bool has_first_bytes() const { return !first_bytes_.empty(); }
  const std::vector<int>& eos_ids() const { return eos_ids_; }
  // The tokens' byte trie in preorder: node k adds byte trie_byte(k) to its parent's prefix at
  // depth trie_depth(k) (1 for the first byte); its subtree is nodes [k, trie_skip(k)), and the
  // tokens in it are sorted()[trie_first(k) .. trie_last(k)) (sorted(): the ids with bytes, by
  // bytes), of which the first trie_ends(k) end at k (several ids can share bytes: SentencePiece's
  // byte-fallback <0x41> and "A").
  const std::vector<int>& sorted() const { return sorted_; }
  int trie_size() const { return static_cast<int>(trie_.size()); }
  uint8_t trie_byte(int k) const { return trie_[k].byte; }
  int trie_depth(int k) const { return trie_[k].depth; }
  int trie_ends(int k) const { return trie_[k].ends; }
  int trie_skip(int k) const { return trie_[k].skip; }
  int trie_first(int k) const { return trie_[k].first; }
  int trie_last(int k) const { return trie_[k].last; }
  int max_token_bytes() const { return max_len_; }

 private:
  std::vector<std::string> bytes_, first_bytes_;
  struct TrieNode {
    uint8_t byte = 0;
    int32_t depth = 0, ends = 0, skip = 0, first = 0, last = 0;
  };
  std::vector<int> eos_ids_, sorted_;
  std::vector<TrieNode> trie_;
  int max_len_ = 0;
};

// A token bitmask: bit i of word i / 32 set when token i may be sampled.
using TokenMask = std::vector<uint32_t>;
inline bool MaskHas(const TokenMask& m, int id) { return (m[id >> 5] >> (id & 31)) & 1u; }

struct CompiledGrammarData;

class CompiledGrammar {
 public:
  ~CompiledGrammar();
  const TokenVocabulary& vocabulary() const;
  const CompiledGrammarData& data() const { return *data_; }
  // Sizes, for logs and benchmarks.
  int num_states() const;
  size_t memory_bytes() const;

 private:
  friend absl::StatusOr<std::shared_ptr<const CompiledGrammar>> CompileGrammar(
      const Grammar&, std::shared_ptr<const TokenVocabulary>);
  CompiledGrammar();
  std::unique_ptr<CompiledGrammarData> data_;
};

// Errors: a rule reference out of range, left recursion (named), a grammar past the size limit.
absl::StatusOr<std::shared_ptr<const CompiledGrammar>> CompileGrammar(const Grammar& g,
                                                                     std::shared_ptr<const TokenVocabulary> vocab);

// One output's position in its grammar. Not thread-safe; cheap to create per request.
class GrammarMatcher {
 public:
  explicit GrammarMatcher(std::shared_ptr<const CompiledGrammar> g);
  ~GrammarMatcher();
  GrammarMatcher(GrammarMatcher&&) noexcept;
  GrammarMatcher& operator=(GrammarMatcher&&) noexcept;

  // The tokens that may come next (end-of-sequence ids only where the grammar accepts), as a mask
  // of vocabulary().size() bits.
  void FillNextTokenMask(TokenMask* mask);
  // Takes a token; false (and no change) when the grammar does not allow it. An end-of-sequence
  // id is taken where the grammar accepts, and ends the matcher.
  bool AcceptToken(int id);
  // The output so far is a whole sentence of the grammar.
  bool CanTerminate() const;
  // Nothing but the end may follow (the grammar accepts and no byte can extend it), or an
  // end-of-sequence id was taken.
  bool IsComplete() const;
  // Test access: does the grammar allow these bytes next (without changing the matcher)?
  bool AcceptsBytes(const std::string& bytes) const;

 private:
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace strata::grammar
