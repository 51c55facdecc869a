// File: runtime/grammar/regex_grammar.h
// Regular expressions as grammar expressions: vLLM's `guided_regex` (the whole output must match)
// and JSON schema's `pattern` (the content of a JSON string).
//
// The match is always a whole match: `abc` means exactly "abc", never "xabcx".
//
// Supported subset:
//   - literal characters (UTF-8 text);
//   - escapes of punctuation: `\\ \. \* \+ \? \( \) \[ \] \{ \} \| \^ \$ \/ \- \"` (and any other
//     ASCII punctuation or space, which stands for itself);
//   - `\n \r \t \f \v \0` (NUL, not followed by a digit), `\xHH`, `\uHHHH` (a surrogate pair of two
//     `\uHHHH` escapes is one code point);
//   - `\d` = [0-9], `\w` = [A-Za-z0-9_] (ASCII only, as ECMAScript), `\s` = ECMAScript white space
//     ([\t\n\v\f\r ] plus U+00A0 U+1680 U+2000-U+200A U+2028 U+2029 U+202F U+205F U+3000 U+FEFF),
//     and their negations `\D \W \S`;
//   - classes `[...]` with ranges `a-z`, negation `[^...]`, the escapes above and the shorthand
//     classes inside; `-` is literal first or last; a `]` must be escaped (`[]` and `[^]` are
//     rejected: ECMAScript and Python read them differently);
//   - `.`: any code point except `\n`;
//   - groups `( )`, `(?: )`, named groups `(?<name> )` and `(?P<name> )` (plain groups);
//   - alternation `|` (empty alternatives allowed);
//   - quantifiers `* + ? {m} {m,} {m,n}` (and `{,n}` = `{0,n}`), with counts at most 1000, and
//     their lazy (`*?`) and possessive (`*+`) forms, read as the greedy form (a possessive
//     quantifier can only match less, so this accepts a superset for it);
//     a `{` that does not start a quantifier is a literal `{`;
//   - anchors `^` only as the very first character and `$` only as the very last (ignored: the
//     match is whole anyway).
// Anything else is an InvalidArgumentError naming the construct and its byte offset:
// backreferences (`\1`, `\k<n>`, `(?P=n)`), lookaround (`(?=`, `(?!`, `(?<=`, `(?<!`), atomic
// groups, inline flags (`(?i)`), word boundaries (`\b \B`), `\A \Z \z`, anchors elsewhere, property
// classes (`\p{..}` `\P{..}`), POSIX classes (`[[:alpha:]]`), other letter escapes, and groups
// nested deeper than 100.
#pragma once

#include <string_view>

#include "absl/status/statusor.h"
#include "runtime/grammar/grammar.h"

namespace strata::grammar {

struct RegexOptions {
  // Match the JSON-encoded content of a string (JSON schema `pattern`): every class and `.` leaves
  // out `"`, `\` and the controls U+0000-U+001F, so what they match needs no escaping; a literal
  // `"`, `\` or control in the pattern becomes its JSON escape (`\"`, `\\`, `\n`, `\u001f`, ...).
  bool json_string_content = false;
};

// The expression for `pattern` (whole match).
absl::StatusOr<Expr> RegexToExpr(std::string_view pattern, const RegexOptions& o = {});

// A one-rule grammar whose root matches exactly the strings `pattern` matches as a whole.
absl::StatusOr<Grammar> RegexToGrammar(std::string_view pattern);

}  // namespace strata::grammar
