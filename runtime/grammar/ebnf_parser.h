// File: runtime/grammar/ebnf_parser.h
// The EBNF that vLLM's `guided_grammar` takes (GBNF / xgrammar dialect), parsed into a Grammar,
// and the grammar of vLLM's `guided_choice`.
//
// Dialect:
//   rule        name ::= alternation          (names: [a-zA-Z_][a-zA-Z0-9_.-]*)
//                                             a rule may span lines; the next starts at `name ::=`
//   alternation sequence ("|" sequence)*      (a sequence may be empty: the empty string)
//   sequence    postfix*                      (juxtaposition; binds tighter than "|")
//   postfix     primary quantifier*           ("*" "+" "?" "{m}" "{m,}" "{m,n}", m, n <= 10000)
//   primary     "literal" | [class] | [^class] | "." | name | "(" alternation ")"
//   comments    "#" to the end of the line
// Escapes, in literals and classes: \n \r \t \\ \" \' \[ \] \- \^ \xHH \uHHHH \UHHHHHHHH.
// A literal is bytes: its text as written (UTF-8) with escapes replaced; \xHH is one raw byte,
// \u and \U the UTF-8 encoding of a code point. In a class every item is a code point (\xHH
// included); `.` is any code point. `[]` matches nothing and `[^]` any code point.
// Rules may be referenced before they are defined; left recursion is not checked here.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/grammar/grammar.h"

namespace strata::grammar {

// The most a repetition bound may be, and how deeply groups and stacked quantifiers may nest
// (hostile input must not overflow the stack of this parser or of what walks the result).
inline constexpr int kMaxEbnfRepeat = 10000;
inline constexpr int kMaxEbnfNesting = 256;

// Parses `text`; the grammar's root is the rule named `root_rule`. Errors are InvalidArgument
// and start with "line:column: " (1-based, columns in bytes).
absl::StatusOr<Grammar> ParseEbnf(std::string_view text, std::string_view root_rule = "root");

// Exactly one of `choices` (as UTF-8 bytes), like vLLM's guided_choice. No choices: a grammar
// that matches nothing.
Grammar ChoiceGrammar(const std::vector<std::string>& choices);

}  // namespace strata::grammar
