// File: runtime/grammar/grammar.h
// A context-free grammar over UTF-8 text, the one form every structured-output request becomes
// (JSON schema, regex, EBNF, a choice of strings, tool calls) before compile_grammar.h turns it
// into a byte-level pushdown automaton over a model's vocabulary.
//
// A grammar is a list of rules; each rule's body is an expression tree. Character classes are
// over Unicode code points and match their UTF-8 encoding; literals are byte strings (UTF-8
// text). Rules may refer to each other (recursion included), but not left-recursively.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace strata::grammar {

struct Expr {
  enum class Kind {
    kBytes,      // `bytes`, exactly (empty: matches the empty string)
    kCharClass,  // one code point in `ranges` (or, `negated`, one not in them; surrogates never)
    kRuleRef,    // rule number `rule` of the grammar
    kSequence,   // `items` one after another (none: the empty string)
    kChoice,     // one of `items` (none: matches nothing)
    kRepeat,     // `items[0]` between `min` and `max` times (max -1: unbounded)
  };
  Kind kind = Kind::kSequence;
  std::string bytes;
  std::vector<std::pair<uint32_t, uint32_t>> ranges;  // inclusive code point ranges
  bool negated = false;
  int rule = -1;
  std::vector<Expr> items;
  int min = 0, max = -1;
};

// Builders.
Expr Bytes(std::string bytes);
Expr CharClass(std::vector<std::pair<uint32_t, uint32_t>> ranges, bool negated = false);
Expr Char(uint32_t code_point);
Expr AnyChar();  // any code point
Expr RuleRef(int rule);
Expr Sequence(std::vector<Expr> items);
Expr Choice(std::vector<Expr> items);
Expr Repeat(Expr item, int min, int max);
inline Expr Optional(Expr e) { return Repeat(std::move(e), 0, 1); }
inline Expr Star(Expr e) { return Repeat(std::move(e), 0, -1); }
inline Expr Plus(Expr e) { return Repeat(std::move(e), 1, -1); }

struct Rule {
  std::string name;
  Expr body;
};

struct Grammar {
  std::vector<Rule> rules;
  int root = 0;

  // Adds a rule with an empty body (set it later: rules may refer to rules not yet written) and
  // returns its number. Names are for messages only; they need not be unique.
  int AddRule(std::string name);
  // The grammar in the EBNF of ebnf_parser.h (the root named "root", other names made valid and
  // unique): messages, tests and the compile cache's key; ParseEbnf reads it back.
  std::string ToString() const;
};

// Appends the UTF-8 encoding of `code_point` (utf8proc's encoder).
void AppendUtf8(uint32_t code_point, std::string* out);

// `text` as an exact-match expression (its UTF-8 bytes).
inline Expr Literal(std::string text) { return Bytes(std::move(text)); }

}  // namespace strata::grammar
