#include "runtime/grammar/ebnf_parser.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace strata::grammar {
namespace {

constexpr uint32_t kMaxCodePoint = 0x10FFFF;

bool IsSurrogate(uint32_t c) { return c >= 0xD800 && c <= 0xDFFF; }
bool IsNameStart(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool IsNameChar(char c) {
  return IsNameStart(c) || (c >= '0' && c <= '9') || c == '.' || c == '-';
}
bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Decodes one strict UTF-8 code point (no overlongs, surrogates or values past U+10FFFF) at the
// start of `s`; returns its length, or 0 if `s` does not start with one.
int DecodeUtf8(std::string_view s, uint32_t* out) {
  if (s.empty()) return 0;
  const auto b0 = static_cast<unsigned char>(s[0]);
  int len;
  uint32_t c, min;
  if (b0 < 0x80) {
    *out = b0;
    return 1;
  } else if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2, c = b0 & 0x1F, min = 0x80;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3, c = b0 & 0x0F, min = 0x800;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4, c = b0 & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (static_cast<int>(s.size()) < len) return 0;
  for (int i = 1; i < len; ++i) {
    const auto b = static_cast<unsigned char>(s[i]);
    if ((b & 0xC0) != 0x80) return 0;
    c = (c << 6) | (b & 0x3F);
  }
  if (c < min || c > kMaxCodePoint || IsSurrogate(c)) return 0;
  *out = c;
  return len;
}

// A parsed expression and the height of its tree, so that deep trees are refused before
// anything walks them recursively.
struct Node {
  Expr expr;
  int height = 1;
};

// What an escape sequence stands for: a code point, or (\xHH in a literal) one raw byte.
struct Escape {
  uint32_t value = 0;
  bool hex_byte = false;  // written as \xHH
};

class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text) {}

  absl::StatusOr<Grammar> Parse(std::string_view root_rule) {
    SkipSpace();
    if (AtEnd()) return Error(pos_, "empty grammar: expected a rule 'name ::= ...'");
    while (!AtEnd()) {
      if (absl::Status s = ParseRule(); !s.ok()) return s;
      SkipSpace();
    }
    // References are checked once every rule is known: rules may be used before they are defined.
    for (size_t i = 0; i < grammar_.rules.size(); ++i) {
      if (!defined_[i]) {
        return Error(first_use_[i], absl::StrCat("unknown rule '", grammar_.rules[i].name,
                                                 "': expected a rule defined as '",
                                                 grammar_.rules[i].name, " ::= ...'"));
      }
    }
    auto root = rule_index_.find(root_rule);
    if (root == rule_index_.end()) {
      return Error(text_.size(), absl::StrCat("missing root rule: expected a rule '", std::string(root_rule),
                                              " ::= ...'"));
    }
    grammar_.root = root->second;
    InDefinitionOrder();
    return std::move(grammar_);
  }

 private:
  absl::Status Error(size_t at, const std::string& what) const {
    int line = 1, column = 1;
    for (size_t i = 0; i < at && i < text_.size(); ++i) {
      if (text_[i] == '\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
    return absl::InvalidArgumentError(absl::StrCat(line, ":", column, ": ", what));
  }

  bool AtEnd() const { return pos_ >= text_.size(); }
  char Peek(size_t ahead = 0) const {
    return pos_ + ahead < text_.size() ? text_[pos_ + ahead] : '\0';
  }

  // Whitespace (newlines included: rules may span lines) and `#` comments.
  size_t SkipSpaceFrom(size_t at) const {
    while (at < text_.size()) {
      if (IsSpace(text_[at])) {
        ++at;
      } else if (text_[at] == '#') {
        while (at < text_.size() && text_[at] != '\n') ++at;
      } else {
        break;
      }
    }
    return at;
  }
  void SkipSpace() { pos_ = SkipSpaceFrom(pos_); }

  size_t NameEnd(size_t at) const {
    if (at >= text_.size() || !IsNameStart(text_[at])) return at;
    while (at < text_.size() && IsNameChar(text_[at])) ++at;
    return at;
  }

  // Whether a new rule (`name ::=`) starts at `pos_`: that is where the previous rule ends.
  bool AtRuleStart() const {
    const size_t end = NameEnd(pos_);
    if (end == pos_) return false;
    return text_.substr(SkipSpaceFrom(end)).substr(0, 3) == "::=";
  }

  // A character for a message: itself if printable ASCII, else its hex value.
  static std::string Describe(char c) {
    const auto b = static_cast<unsigned char>(c);
    if (b >= 0x21 && b < 0x7F) return absl::StrCat("'", std::string(1, c), "'");
    return absl::StrFormat("byte 0x%02X", b);
  }

  int RuleIndex(std::string_view name, size_t at) {
    auto it = rule_index_.find(name);
    if (it != rule_index_.end()) return it->second;
    const int index = grammar_.AddRule(std::string(name));
    rule_index_.emplace(std::string(name), index);
    defined_.push_back(false);
    defined_at_.push_back(0);
    first_use_.push_back(at);
    return index;
  }

  absl::Status ParseRule() {
    const size_t start = pos_;
    const size_t end = NameEnd(pos_);
    if (end == pos_) {
      if (Peek() == ')') return Error(pos_, "unmatched ')'");
      return Error(pos_, absl::StrCat("unexpected ", Describe(Peek()),
                                      ": expected a rule name ([a-zA-Z_][a-zA-Z0-9_.-]*)"));
    }
    const std::string_view name = text_.substr(start, end - start);
    pos_ = SkipSpaceFrom(end);
    if (text_.substr(pos_, 3) != "::=") {
      return Error(pos_, absl::StrCat("expected '::=' after rule name '", std::string(name), "'"));
    }
    pos_ += 3;
    const int index = RuleIndex(name, start);
    if (defined_[index]) {
      return Error(start, absl::StrCat("duplicate definition of rule '", std::string(name),
                                       "' (first defined at ", Where(defined_at_[index]), ")"));
    }
    defined_[index] = true;
    defined_at_[index] = start;
    absl::StatusOr<Node> body = ParseAlternation(0);
    if (!body.ok()) return body.status();
    grammar_.rules[index].body = std::move(body->expr);
    SkipSpace();
    if (!AtEnd() && !AtRuleStart()) {
      if (Peek() == ')') return Error(pos_, "unmatched ')'");
      return Error(pos_, absl::StrCat("unexpected ", Describe(Peek()),
                                      ": expected an expression, '|' or the next rule"));
    }
    return absl::OkStatus();
  }

  // Rules are numbered as first named; renumber them in the order they are written, so that
  // printing a parsed grammar keeps its author's order.
  void InDefinitionOrder() {
    const int n = static_cast<int>(grammar_.rules.size());
    std::vector<int> order(n);
    for (int i = 0; i < n; ++i) order[i] = i;
    std::sort(order.begin(), order.end(),
              [&](int a, int b) { return defined_at_[a] < defined_at_[b]; });
    std::vector<int> new_index(n);
    for (int i = 0; i < n; ++i) new_index[order[i]] = i;
    std::vector<Rule> rules(n);
    for (int i = 0; i < n; ++i) {
      rules[new_index[i]] = std::move(grammar_.rules[i]);
      Renumber(new_index, &rules[new_index[i]].body);
    }
    grammar_.rules = std::move(rules);
    grammar_.root = new_index[grammar_.root];
  }

  // Recursion is safe: every tree was checked against kMaxEbnfNesting as it was built.
  static void Renumber(const std::vector<int>& new_index, Expr* e) {
    if (e->kind == Expr::Kind::kRuleRef) e->rule = new_index[e->rule];
    for (Expr& item : e->items) Renumber(new_index, &item);
  }

  std::string Where(size_t at) const {
    std::string message(Error(at, "").message());
    return message.substr(0, message.size() - 2);  // drop the ": "
  }

  absl::Status CheckHeight(int height, size_t at) const {
    if (height > kMaxEbnfNesting) {
      return Error(at, absl::StrCat("expression nested too deeply (limit ", kMaxEbnfNesting, ")"));
    }
    return absl::OkStatus();
  }

  // alternation: sequence ("|" sequence)*
  absl::StatusOr<Node> ParseAlternation(int depth) {
    const size_t start = pos_;
    std::vector<Expr> items;
    int height = 0;
    while (true) {
      absl::StatusOr<Node> seq = ParseSequence(depth);
      if (!seq.ok()) return seq.status();
      height = std::max(height, seq->height);
      items.push_back(std::move(seq->expr));
      SkipSpace();
      if (Peek() != '|') break;
      ++pos_;
    }
    if (items.size() > 1) ++height;
    if (absl::Status s = CheckHeight(height, start); !s.ok()) return s;
    return Node{Choice(std::move(items)), height};
  }

  // sequence: postfix* -- ends at '|', ')', the end, or the start of the next rule.
  absl::StatusOr<Node> ParseSequence(int depth) {
    const size_t start = pos_;
    std::vector<Expr> items;
    int height = 0;
    while (true) {
      SkipSpace();
      const char c = Peek();
      if (AtEnd() || c == '|' || c == ')' || AtRuleStart()) break;
      if (c == '*' || c == '+' || c == '?' || c == '{') {
        return Error(pos_, absl::StrCat("quantifier '", std::string(1, c),
                                        "' has nothing to repeat: expected an expression before it"));
      }
      absl::StatusOr<Node> item = ParsePostfix(depth);
      if (!item.ok()) return item.status();
      height = std::max(height, item->height);
      items.push_back(std::move(item->expr));
    }
    if (items.size() != 1) ++height;
    if (absl::Status s = CheckHeight(height, start); !s.ok()) return s;
    return Node{Sequence(std::move(items)), height};
  }

  // postfix: primary quantifier*
  absl::StatusOr<Node> ParsePostfix(int depth) {
    absl::StatusOr<Node> node = ParsePrimary(depth);
    if (!node.ok()) return node;
    while (true) {
      const size_t at = SkipSpaceFrom(pos_);
      const char c = at < text_.size() ? text_[at] : '\0';
      int min = 0, max = -1;
      if (c == '*') {
        min = 0, max = -1;
        pos_ = at + 1;
      } else if (c == '+') {
        min = 1, max = -1;
        pos_ = at + 1;
      } else if (c == '?') {
        min = 0, max = 1;
        pos_ = at + 1;
      } else if (c == '{') {
        pos_ = at;
        if (absl::Status s = ParseBraces(&min, &max); !s.ok()) return s;
      } else {
        return node;
      }
      node->expr = Repeat(std::move(node->expr), min, max);
      ++node->height;
      if (absl::Status s = CheckHeight(node->height, at); !s.ok()) return s;
    }
  }

  void SkipBlanks() {
    while (Peek() == ' ' || Peek() == '\t') ++pos_;
  }

  // A repetition bound: decimal digits, at most kMaxEbnfRepeat.
  absl::StatusOr<int> ParseBound() {
    SkipBlanks();
    const size_t start = pos_;
    if (!(Peek() >= '0' && Peek() <= '9')) {
      return Error(pos_, "expected a number in the repetition bounds '{m}', '{m,}' or '{m,n}'");
    }
    long long value = 0;
    while (Peek() >= '0' && Peek() <= '9') {
      if (value <= kMaxEbnfRepeat) value = value * 10 + (Peek() - '0');
      ++pos_;
    }
    if (value > kMaxEbnfRepeat) {
      return Error(start, absl::StrCat("repetition bound ", std::string(text_.substr(start, pos_ - start)),
                                       " is over the limit of ", kMaxEbnfRepeat));
    }
    SkipBlanks();
    return static_cast<int>(value);
  }

  // {m} {m,} {m,n}, with `pos_` at the '{'.
  absl::Status ParseBraces(int* min, int* max) {
    const size_t start = pos_;
    ++pos_;
    absl::StatusOr<int> lo = ParseBound();
    if (!lo.ok()) return lo.status();
    *min = *max = *lo;
    if (Peek() == ',') {
      ++pos_;
      SkipBlanks();
      if (Peek() == '}') {
        *max = -1;
      } else {
        absl::StatusOr<int> hi = ParseBound();
        if (!hi.ok()) return hi.status();
        *max = *hi;
      }
    }
    if (Peek() != '}') return Error(pos_, "expected '}' to close the repetition bounds");
    ++pos_;
    if (*max >= 0 && *max < *min) {
      return Error(start, absl::StrCat("repetition bounds out of order: {", *min, ",", *max,
                                       "} has its maximum below its minimum"));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<Node> ParsePrimary(int depth) {
    const size_t start = pos_;
    const char c = Peek();
    if (c == '"') return ParseLiteral();
    if (c == '[') return ParseClass();
    if (c == '.') {
      ++pos_;
      return Node{AnyChar(), 1};
    }
    if (c == '(') {
      if (depth + 1 > kMaxEbnfNesting) {
        return Error(pos_, absl::StrCat("groups nested too deeply (limit ", kMaxEbnfNesting, ")"));
      }
      ++pos_;
      absl::StatusOr<Node> inner = ParseAlternation(depth + 1);
      if (!inner.ok()) return inner;
      SkipSpace();
      if (Peek() != ')') {
        return Error(pos_, absl::StrCat("expected ')' to close the '(' at ", Where(start)));
      }
      ++pos_;
      return inner;
    }
    if (IsNameStart(c)) {
      const size_t end = NameEnd(pos_);
      const int rule = RuleIndex(text_.substr(pos_, end - pos_), pos_);
      pos_ = end;
      return Node{RuleRef(rule), 1};
    }
    return Error(pos_, absl::StrCat("unexpected ", Describe(c),
                                    ": expected a string literal, a character class, '.', "
                                    "a rule name or '('"));
  }

  // An escape sequence, with `pos_` at its backslash.
  absl::StatusOr<Escape> ParseEscape() {
    const size_t start = pos_;
    ++pos_;
    if (AtEnd()) return Error(start, "bad escape: '\\' at the end of the input");
    const char c = text_[pos_++];
    switch (c) {
      case 'n': return Escape{'\n'};
      case 'r': return Escape{'\r'};
      case 't': return Escape{'\t'};
      case '\\': case '"': case '\'': case '[': case ']': case '-': case '^':
        return Escape{static_cast<uint32_t>(c)};
      case 'x': case 'u': case 'U': break;
      default:
        return Error(start, absl::StrCat("bad escape '\\", std::string(1, c),
                                         "': expected one of \\n \\r \\t \\\\ \\\" \\' \\[ \\] "
                                         "\\- \\^ \\xHH \\uHHHH \\UHHHHHHHH"));
    }
    const int digits = c == 'x' ? 2 : c == 'u' ? 4 : 8;
    uint32_t value = 0;
    for (int i = 0; i < digits; ++i) {
      const int h = HexValue(Peek());
      if (h < 0) {
        return Error(start, absl::StrCat("bad escape: '\\", std::string(1, c), "' expects ",
                                         digits, " hex digits"));
      }
      value = value * 16 + static_cast<uint32_t>(h);
      ++pos_;
    }
    if (value > kMaxCodePoint) {
      return Error(start, absl::StrFormat("bad escape: U+%X is past the last code point U+10FFFF",
                                          value));
    }
    return Escape{value, c == 'x'};
  }

  // "..." -- bytes as written, escapes replaced.
  absl::StatusOr<Node> ParseLiteral() {
    const size_t start = pos_;
    ++pos_;
    std::string bytes;
    while (true) {
      if (AtEnd() || Peek() == '\n') {
        return Error(start, "unterminated string literal: expected a closing '\"'");
      }
      const char c = Peek();
      if (c == '"') {
        ++pos_;
        return Node{Bytes(std::move(bytes)), 1};
      }
      if (c != '\\') {
        bytes.push_back(c);
        ++pos_;
        continue;
      }
      const size_t escape_at = pos_;
      absl::StatusOr<Escape> e = ParseEscape();
      if (!e.ok()) return e.status();
      if (e->hex_byte) {
        bytes.push_back(static_cast<char>(e->value));
      } else if (IsSurrogate(e->value)) {
        return Error(escape_at, absl::StrFormat("bad escape: surrogate U+%04X has no UTF-8 "
                                                "encoding", e->value));
      } else {
        AppendUtf8(e->value, &bytes);
      }
    }
  }

  // One code point of a class: an escape or a UTF-8 character as written.
  absl::StatusOr<uint32_t> ParseClassChar(size_t class_start) {
    if (AtEnd() || Peek() == '\n') {
      return Error(class_start, "unterminated character class: expected a closing ']'");
    }
    if (Peek() == '\\') {
      absl::StatusOr<Escape> e = ParseEscape();
      if (!e.ok()) return e.status();
      return e->value;  // \xHH is a code point here: a class holds characters, not bytes
    }
    uint32_t c;
    const int len = DecodeUtf8(text_.substr(pos_), &c);
    if (len == 0) return Error(pos_, "invalid UTF-8 in a character class");
    pos_ += len;
    return c;
  }

  // [...] or [^...]
  absl::StatusOr<Node> ParseClass() {
    const size_t start = pos_;
    ++pos_;
    bool negated = false;
    if (Peek() == '^') {
      negated = true;
      ++pos_;
    }
    std::vector<std::pair<uint32_t, uint32_t>> ranges;
    while (true) {
      if (AtEnd() || Peek() == '\n') {
        return Error(start, "unterminated character class: expected a closing ']'");
      }
      if (Peek() == ']') {
        ++pos_;
        return Node{CharClass(std::move(ranges), negated), 1};
      }
      const size_t item_at = pos_;
      absl::StatusOr<uint32_t> lo = ParseClassChar(start);
      if (!lo.ok()) return lo.status();
      uint32_t hi = *lo;
      // A '-' between two characters makes a range; first or last in the class it is itself.
      if (Peek() == '-' && Peek(1) != ']' && pos_ + 1 < text_.size()) {
        ++pos_;
        absl::StatusOr<uint32_t> end = ParseClassChar(start);
        if (!end.ok()) return end.status();
        hi = *end;
        if (hi < *lo) {
          return Error(item_at, absl::StrFormat("character range out of order: U+%04X-U+%04X",
                                                *lo, hi));
        }
      }
      ranges.emplace_back(*lo, hi);
    }
  }

  std::string_view text_;
  size_t pos_ = 0;
  Grammar grammar_;
  std::map<std::string, int, std::less<>> rule_index_;
  std::vector<bool> defined_;
  std::vector<size_t> first_use_;  // where each rule was first named
  std::vector<size_t> defined_at_;  // where each defined rule's definition starts
};

}  // namespace

absl::StatusOr<Grammar> ParseEbnf(std::string_view text, std::string_view root_rule) {
  return Parser(text).Parse(root_rule);
}

Grammar ChoiceGrammar(const std::vector<std::string>& choices) {
  Grammar g;
  g.root = g.AddRule("root");
  std::vector<Expr> items;
  items.reserve(choices.size());
  for (const std::string& c : choices) items.push_back(Literal(c));
  // Choice() of one item is that item, of none an expression that matches nothing.
  g.rules[g.root].body = Choice(std::move(items));
  return g;
}

}  // namespace strata::grammar
