// File: tests/runtime/grammar/naive_recognizer.h
// A test-only oracle for grammars: an Earley parser over bytes, straight from the Expr tree and
// independent of compile_grammar / grammar_matcher, kept simple rather than fast (short inputs,
// small grammars). It answers whether bytes are a whole sentence of a grammar and whether they
// are a prefix of one (a token is allowed iff output + token is such a prefix).
#pragma once

#include <string_view>
#include <vector>

#include "runtime/grammar/grammar.h"

namespace strata::grammar {

class NaiveRecognizer {
 public:
  // Works on a copy of what it needs; `g` may go away afterwards. Rule references out of range,
  // a root out of range and repeats with max < min all denote the empty language.
  explicit NaiveRecognizer(const Grammar& g);

  // `bytes` is a complete sentence of the grammar from its root.
  bool IsSentence(std::string_view bytes) const;
  // `bytes` is a prefix of some sentence (sentences included). A grammar whose language is empty
  // has no viable prefix, not even the empty string.
  bool IsViablePrefix(std::string_view bytes) const;

  // A symbol of the flattened BNF: a nonterminal, one byte, or one code point of a class.
  struct Symbol {
    enum class Kind { kNonterminal, kByte, kClass } kind;
    int index;  // nonterminal number, byte value, or class number
  };
  struct Production {
    int lhs;
    std::vector<Symbol> rhs;
  };
  struct Class {
    std::vector<std::pair<uint32_t, uint32_t>> ranges;
    bool negated;
  };

 private:
  struct Item {
    int production;
    int dot;
    int origin;
    bool operator==(const Item&) const = default;
  };
  using Chart = std::vector<std::vector<Item>>;

  int NewNonterminal();
  void AddProduction(int lhs, std::vector<Symbol> rhs);
  // Appends the symbols that derive exactly `e`'s language.
  void Lower(const Expr& e, std::vector<Symbol>* out);
  // A nonterminal that derives exactly `e`'s language.
  int LowerToNonterminal(const Expr& e);
  void ComputeProductiveAndNullable();
  bool SymbolProductive(const Symbol& s) const;
  bool ClassMatches(int cls, uint32_t code_point) const;
  // Some code point in `lo..hi` (surrogates excluded) is in the class.
  bool ClassMatchesSomeIn(int cls, uint32_t lo, uint32_t hi) const;
  // `tail` (1 to 3 bytes) is a proper prefix of the UTF-8 encoding of a code point in the class.
  bool ClassMatchesPrefix(int cls, std::string_view tail) const;
  Chart Run(std::string_view bytes) const;

  std::vector<Production> productions_;
  std::vector<std::vector<int>> by_lhs_;  // production numbers of each nonterminal
  std::vector<Class> classes_;
  std::vector<bool> class_nonempty_;  // the class matches at least one code point
  std::vector<bool> productive_;  // nonterminal derives some terminal string
  std::vector<bool> nullable_;    // nonterminal derives the empty string
  std::vector<bool> production_ok_;  // every symbol of the production is productive
  int num_rules_ = 0;
  int start_production_ = -1;  // S' -> root
};

// One-shot helpers.
bool IsSentence(const Grammar& g, std::string_view bytes);
bool IsViablePrefix(const Grammar& g, std::string_view bytes);

}  // namespace strata::grammar
