#include "runtime/grammar/regex_grammar.h"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"

namespace strata::grammar {
namespace {

using Ranges = std::vector<std::pair<uint32_t, uint32_t>>;

constexpr uint32_t kMaxCodePoint = 0x10FFFF;
constexpr int kMaxRepeatCount = 1000;
constexpr int kMaxGroupDepth = 100;

// Sorted, non-overlapping, non-adjacent ranges.
Ranges Normalize(Ranges r) {
  std::sort(r.begin(), r.end());
  Ranges out;
  for (auto [lo, hi] : r) {
    if (!out.empty() && lo <= out.back().second + 1) {
      out.back().second = std::max(out.back().second, hi);
    } else {
      out.push_back({lo, hi});
    }
  }
  return out;
}

// All code points not in `r` (which must be normalized).
Ranges Complement(const Ranges& r) {
  Ranges out;
  uint32_t next = 0;
  for (auto [lo, hi] : r) {
    if (lo > next) out.push_back({next, lo - 1});
    next = hi + 1;
  }
  if (next <= kMaxCodePoint) out.push_back({next, kMaxCodePoint});
  return out;
}

Ranges Union(Ranges a, const Ranges& b) {
  a.insert(a.end(), b.begin(), b.end());
  return Normalize(std::move(a));
}

Ranges Subtract(const Ranges& a, const Ranges& b) {
  // a minus b = complement(complement(a) + b)
  return Complement(Union(Complement(Normalize(a)), b));
}

// The code points a JSON string cannot hold unescaped.
const Ranges& JsonUnsafe() {
  static const Ranges kUnsafe = Normalize({{0, 0x1F}, {'"', '"'}, {'\\', '\\'}});
  return kUnsafe;
}

Ranges DigitSet() { return {{'0', '9'}}; }
Ranges WordSet() { return Normalize({{'0', '9'}, {'A', 'Z'}, {'_', '_'}, {'a', 'z'}}); }
Ranges SpaceSet() {
  return Normalize({{'\t', '\r'},
                    {' ', ' '},
                    {0xA0, 0xA0},
                    {0x1680, 0x1680},
                    {0x2000, 0x200A},
                    {0x2028, 0x2029},
                    {0x202F, 0x202F},
                    {0x205F, 0x205F},
                    {0x3000, 0x3000},
                    {0xFEFF, 0xFEFF}});
}
// How a code point appears inside a JSON string when it cannot appear as itself.
std::string JsonEscape(uint32_t c) {
  switch (c) {
    case '"': return "\\\"";
    case '\\': return "\\\\";
    case '\b': return "\\b";
    case '\f': return "\\f";
    case '\n': return "\\n";
    case '\r': return "\\r";
    case '\t': return "\\t";
    default: return absl::StrFormat("\\u%04x", c);
  }
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool IsSurrogate(uint32_t c) { return c >= 0xD800 && c <= 0xDFFF; }

// One parsed escape or character: a single code point, or a set (`\d`, `.`, ...).
struct Atom {
  bool is_set = false;
  uint32_t code_point = 0;
  Ranges set;
};

class RegexParser {
 public:
  RegexParser(std::string_view pattern, const RegexOptions& o) : p_(pattern), o_(o) {}

  absl::StatusOr<Expr> Parse() {
    absl::StatusOr<Expr> e = ParseAlternation(0);
    if (!e.ok()) return e;
    if (pos_ < p_.size()) return Unsupported("unbalanced \")\"", pos_);  // only ')' stops early
    return e;
  }

 private:
  absl::Status Unsupported(std::string_view what, size_t offset) const {
    return absl::InvalidArgumentError(
        absl::StrFormat("regex: unsupported or malformed construct %s at offset %d", what, offset));
  }
  absl::Status Quoted(std::string_view construct, std::string_view why, size_t offset) const {
    return absl::InvalidArgumentError(
        absl::StrFormat("regex: unsupported construct \"%s\" (%s) at offset %d", construct, why, offset));
  }

  bool AtEnd() const { return pos_ >= p_.size(); }
  char Peek(size_t ahead = 0) const { return pos_ + ahead < p_.size() ? p_[pos_ + ahead] : '\0'; }
  bool Has(size_t ahead) const { return pos_ + ahead < p_.size(); }

  absl::StatusOr<Expr> ParseAlternation(int depth) {
    std::vector<Expr> alternatives;
    while (true) {
      absl::StatusOr<Expr> seq = ParseConcat(depth);
      if (!seq.ok()) return seq;
      alternatives.push_back(*std::move(seq));
      if (AtEnd() || Peek() != '|') break;
      ++pos_;
    }
    return Choice(std::move(alternatives));
  }

  absl::StatusOr<Expr> ParseConcat(int depth) {
    std::vector<Expr> items;
    while (!AtEnd() && Peek() != '|' && Peek() != ')') {
      const size_t start = pos_;
      if (Peek() == '^') {
        if (start != 0) return Quoted("^", "anchor not at the start of the pattern", start);
        ++pos_;
        continue;
      }
      if (Peek() == '$') {
        if (start + 1 != p_.size()) return Quoted("$", "anchor not at the end of the pattern", start);
        ++pos_;
        continue;
      }
      absl::StatusOr<Expr> atom = ParseAtom(depth);
      if (!atom.ok()) return atom;
      absl::StatusOr<Expr> quantified = ParseQuantifiers(*std::move(atom));
      if (!quantified.ok()) return quantified;
      items.push_back(*std::move(quantified));
    }
    return Sequence(MergeLiterals(std::move(items)));
  }

  // Adjacent literals become one: smaller trees, same language.
  static std::vector<Expr> MergeLiterals(std::vector<Expr> items) {
    std::vector<Expr> out;
    for (Expr& e : items) {
      if (e.kind == Expr::Kind::kBytes && !out.empty() && out.back().kind == Expr::Kind::kBytes) {
        out.back().bytes += e.bytes;
      } else {
        out.push_back(std::move(e));
      }
    }
    return out;
  }

  // Reads `{m}`, `{m,}`, `{m,n}` or `{,n}` at pos_ without consuming; false when it is not one
  // (then `{` is a literal).
  bool ReadBraces(int* min, int* max, size_t* length, bool* too_big) const {
    size_t i = pos_ + 1;
    auto read_number = [&](long* v) {
      const size_t begin = i;
      *v = 0;
      while (i < p_.size() && p_[i] >= '0' && p_[i] <= '9') {
        if (*v <= 1000000) *v = *v * 10 + (p_[i] - '0');
        ++i;
      }
      return i > begin;
    };
    long lo = 0, hi = -1;
    const bool has_lo = read_number(&lo);
    if (i < p_.size() && p_[i] == '}') {
      if (!has_lo) return false;
      hi = lo;
    } else if (i < p_.size() && p_[i] == ',') {
      ++i;
      const bool has_hi = read_number(&hi);
      if (!has_hi) hi = -1;
      if (!has_lo && !has_hi) return false;
      if (i >= p_.size() || p_[i] != '}') return false;
    } else {
      return false;
    }
    *too_big = lo > kMaxRepeatCount || hi > kMaxRepeatCount;
    *min = static_cast<int>(std::min<long>(lo, kMaxRepeatCount + 1));
    *max = hi < 0 ? -1 : static_cast<int>(std::min<long>(hi, kMaxRepeatCount + 1));
    *length = i + 1 - pos_;
    return true;
  }

  // A quantifier at pos_, if any: consumes it and sets min/max.
  absl::StatusOr<bool> ReadQuantifier(int* min, int* max) {
    const size_t start = pos_;
    switch (Peek()) {
      case '*': *min = 0, *max = -1, ++pos_; return true;
      case '+': *min = 1, *max = -1, ++pos_; return true;
      case '?': *min = 0, *max = 1, ++pos_; return true;
      case '{': {
        size_t length = 0;
        bool too_big = false;
        if (!ReadBraces(min, max, &length, &too_big)) return false;
        if (too_big) {
          return absl::InvalidArgumentError(absl::StrFormat(
              "regex: repetition count over %d at offset %d", kMaxRepeatCount, start));
        }
        if (*max >= 0 && *min > *max) {
          return absl::InvalidArgumentError(
              absl::StrFormat("regex: repetition {%d,%d} has min > max at offset %d", *min, *max, start));
        }
        pos_ += length;
        return true;
      }
      default: return false;
    }
  }

  absl::StatusOr<Expr> ParseQuantifiers(Expr atom) {
    if (AtEnd()) return atom;
    int min = 0, max = -1;
    absl::StatusOr<bool> found = ReadQuantifier(&min, &max);
    if (!found.ok()) return found.status();
    if (!*found) return atom;
    // Lazy and possessive forms: same strings for a whole match (possessive: a superset).
    if (!AtEnd() && (Peek() == '?' || Peek() == '+')) ++pos_;
    const size_t after = pos_;
    int unused_min = 0, unused_max = 0;
    absl::StatusOr<bool> again = ReadQuantifier(&unused_min, &unused_max);
    if (!again.ok()) return again.status();
    if (*again) return Unsupported("\"multiple repeat\" (a quantifier after a quantifier)", after);
    return Repeat(std::move(atom), min, max);
  }

  absl::StatusOr<Expr> ParseAtom(int depth) {
    const size_t start = pos_;
    const char c = Peek();
    switch (c) {
      case '(': return ParseGroup(depth);
      case '[': {
        absl::StatusOr<Ranges> set = ParseClass();
        if (!set.ok()) return set.status();
        return SetExpr(*set);
      }
      case '.':
        ++pos_;
        return SetExpr(Complement({{'\n', '\n'}}));
      case '*':
      case '+':
      case '?':
        return Unsupported(absl::StrFormat("\"%c\" (nothing to repeat)", c), start);
      case '{': {
        int min = 0, max = 0;
        size_t length = 0;
        bool too_big = false;
        if (ReadBraces(&min, &max, &length, &too_big)) return Unsupported("\"{\" (nothing to repeat)", start);
        ++pos_;
        return LiteralExpr('{');
      }
      case '\\': {
        absl::StatusOr<Atom> a = ParseEscape(/*in_class=*/false);
        if (!a.ok()) return a.status();
        return a->is_set ? SetExpr(a->set) : LiteralExpr(a->code_point);
      }
      default: {
        absl::StatusOr<uint32_t> cp = ReadUtf8();
        if (!cp.ok()) return cp.status();
        return LiteralExpr(*cp);
      }
    }
  }

  absl::StatusOr<Expr> ParseGroup(int depth) {
    const size_t start = pos_;
    if (depth >= kMaxGroupDepth) {
      return absl::InvalidArgumentError(
          absl::StrFormat("regex: groups nested deeper than %d at offset %d", kMaxGroupDepth, start));
    }
    ++pos_;  // '('
    if (Peek() == '?') {
      absl::Status s = SkipGroupPrefix(start);
      if (!s.ok()) return s;
    }
    absl::StatusOr<Expr> inner = ParseAlternation(depth + 1);
    if (!inner.ok()) return inner;
    if (AtEnd() || Peek() != ')') return Unsupported("\"(\" (missing \")\")", start);
    ++pos_;
    return inner;
  }

  // After "(?": accepts ":", "<name>", "P<name>"; names everything else.
  absl::Status SkipGroupPrefix(size_t start) {
    const char a = Peek(1), b = Peek(2);
    if (a == ':') {
      pos_ += 2;
      return absl::OkStatus();
    }
    if (a == '=') return Quoted("(?=", "lookahead", start);
    if (a == '!') return Quoted("(?!", "negative lookahead", start);
    if (a == '<' && b == '=') return Quoted("(?<=", "lookbehind", start);
    if (a == '<' && b == '!') return Quoted("(?<!", "negative lookbehind", start);
    if (a == '>') return Quoted("(?>", "atomic group", start);
    if (a == '#') return Quoted("(?#", "comment", start);
    if (a == 'P' && b == '=') return Quoted("(?P=", "backreference", start);
    if (a == 'P' && b == '>') return Quoted("(?P>", "recursion", start);
    size_t i = pos_ + 1;
    if (a == 'P' && b == '<') {
      i = pos_ + 2;
    } else if (a != '<') {
      return Quoted(std::string("(?") + (Has(1) ? std::string(1, a) : ""), "inline flags or unknown group", start);
    }
    // i is at '<': a name of word characters, then '>'.
    ++i;
    const size_t name_begin = i;
    while (i < p_.size() && (std::isalnum(static_cast<unsigned char>(p_[i])) || p_[i] == '_')) ++i;
    if (i == name_begin || i >= p_.size() || p_[i] != '>') return Unsupported("group name", start);
    pos_ = i + 1;
    return absl::OkStatus();
  }

  // A class body `[...]` at pos_, as a normalized set.
  absl::StatusOr<Ranges> ParseClass() {
    const size_t start = pos_;
    ++pos_;  // '['
    bool negated = false;
    if (Peek() == '^' && Has(0)) {
      negated = true;
      ++pos_;
    }
    if (!AtEnd() && Peek() == ']') {
      return Unsupported("\"[]\" or \"[^]\" (escape a leading \"]\")", start);
    }
    Ranges set;
    while (true) {
      if (AtEnd()) return Unsupported("\"[\" (missing \"]\")", start);
      if (Peek() == ']') break;
      if (Peek() == '[' && Peek(1) == ':') return Quoted("[:", "POSIX class", pos_);
      const size_t item_start = pos_;
      absl::StatusOr<Atom> lo = ParseClassAtom();
      if (!lo.ok()) return lo.status();
      // A range "x-y" unless the '-' is last.
      if (Peek() == '-' && Has(1) && Peek(1) != ']') {
        ++pos_;
        absl::StatusOr<Atom> hi = ParseClassAtom();
        if (!hi.ok()) return hi.status();
        if (lo->is_set || hi->is_set) return Unsupported("range with a class shorthand as an end", item_start);
        if (lo->code_point > hi->code_point) return Unsupported("range out of order", item_start);
        set.push_back({lo->code_point, hi->code_point});
        continue;
      }
      if (lo->is_set) {
        set = Union(std::move(set), lo->set);
      } else {
        set.push_back({lo->code_point, lo->code_point});
      }
    }
    ++pos_;  // ']'
    set = Normalize(std::move(set));
    return negated ? Complement(set) : set;
  }

  absl::StatusOr<Atom> ParseClassAtom() {
    if (Peek() == '\\') return ParseEscape(/*in_class=*/true);
    absl::StatusOr<uint32_t> cp = ReadUtf8();
    if (!cp.ok()) return cp.status();
    Atom a;
    a.code_point = *cp;
    return a;
  }

  // Reads `count` hex digits after pos_ + skip; -1 when they are not all there.
  long ReadHex(size_t at, int count) const {
    if (at + count > p_.size()) return -1;
    long v = 0;
    for (int k = 0; k < count; ++k) {
      const int h = HexValue(p_[at + k]);
      if (h < 0) return -1;
      v = v * 16 + h;
    }
    return v;
  }

  absl::StatusOr<Atom> ParseEscape(bool in_class) {
    const size_t start = pos_;
    if (!Has(1)) return Unsupported("\"\\\" at the end of the pattern", start);
    const char c = Peek(1);
    pos_ += 2;
    Atom a;
    auto code = [&](uint32_t cp) {
      a.code_point = cp;
      return a;
    };
    auto set = [&](Ranges r) {
      a.is_set = true;
      a.set = std::move(r);
      return a;
    };
    switch (c) {
      case 'n': return code('\n');
      case 'r': return code('\r');
      case 't': return code('\t');
      case 'f': return code('\f');
      case 'v': return code('\v');
      case '0':
        if (!AtEnd() && Peek() >= '0' && Peek() <= '9') return Quoted("\\0" + std::string(1, Peek()), "octal escape", start);
        return code(0);
      case 'd': return set(DigitSet());
      case 'D': return set(Complement(DigitSet()));
      case 'w': return set(WordSet());
      case 'W': return set(Complement(WordSet()));
      case 's': return set(SpaceSet());
      case 'S': return set(Complement(SpaceSet()));
      case 'x': {
        const long v = ReadHex(pos_, 2);
        if (v < 0) return Unsupported("\"\\x\" (needs two hex digits)", start);
        pos_ += 2;
        return code(static_cast<uint32_t>(v));
      }
      case 'u': {
        if (Peek() == '{') return Quoted("\\u{", "braced code point escape", start);
        const long v = ReadHex(pos_, 4);
        if (v < 0) return Unsupported("\"\\u\" (needs four hex digits)", start);
        pos_ += 4;
        if (v >= 0xD800 && v <= 0xDBFF && Peek() == '\\' && Peek(1) == 'u') {
          const long low = ReadHex(pos_ + 2, 4);
          if (low >= 0xDC00 && low <= 0xDFFF) {
            pos_ += 6;
            return code(static_cast<uint32_t>(0x10000 + ((v - 0xD800) << 10) + (low - 0xDC00)));
          }
        }
        if (IsSurrogate(static_cast<uint32_t>(v))) return Unsupported("lone surrogate \"\\u\" escape", start);
        return code(static_cast<uint32_t>(v));
      }
      case 'b':
        return Quoted("\\b", in_class ? "backspace escape" : "word boundary", start);
      case 'B': return Quoted("\\B", "word boundary", start);
      case 'A': return Quoted("\\A", "anchor", start);
      case 'Z': return Quoted("\\Z", "anchor", start);
      case 'z': return Quoted("\\z", "anchor", start);
      case 'G': return Quoted("\\G", "anchor", start);
      case 'p': return Quoted("\\p", "unicode property class", start);
      case 'P': return Quoted("\\P", "unicode property class", start);
      case 'k': return Quoted("\\k", "backreference", start);
      default: break;
    }
    if (c >= '1' && c <= '9') return Quoted(std::string("\\") + c, "backreference", start);
    const unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x80 && (std::ispunct(u) || c == ' ')) return code(u);  // identity escape
    if (u >= 0x80) return Unsupported("escape of a non-ASCII character", start);
    return Quoted(std::string("\\") + c, "unknown escape", start);
  }

  // One UTF-8 encoded code point at pos_.
  absl::StatusOr<uint32_t> ReadUtf8() {
    const size_t start = pos_;
    const unsigned char b0 = static_cast<unsigned char>(p_[pos_]);
    int length = 0;
    uint32_t cp = 0;
    if (b0 < 0x80) {
      length = 1, cp = b0;
    } else if ((b0 & 0xE0) == 0xC0) {
      length = 2, cp = b0 & 0x1F;
    } else if ((b0 & 0xF0) == 0xE0) {
      length = 3, cp = b0 & 0x0F;
    } else if ((b0 & 0xF8) == 0xF0) {
      length = 4, cp = b0 & 0x07;
    } else {
      return Unsupported("invalid UTF-8", start);
    }
    if (start + length > p_.size()) return Unsupported("invalid UTF-8", start);
    for (int k = 1; k < length; ++k) {
      const unsigned char b = static_cast<unsigned char>(p_[start + k]);
      if ((b & 0xC0) != 0x80) return Unsupported("invalid UTF-8", start);
      cp = (cp << 6) | (b & 0x3F);
    }
    static constexpr uint32_t kMinForLength[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMinForLength[length] || cp > kMaxCodePoint || IsSurrogate(cp)) {
      return Unsupported("invalid UTF-8", start);
    }
    pos_ += length;
    return cp;
  }

  Expr LiteralExpr(uint32_t cp) const {
    if (o_.json_string_content && cp <= 0x1F) return Bytes(JsonEscape(cp));
    if (o_.json_string_content && (cp == '"' || cp == '\\')) return Bytes(JsonEscape(cp));
    std::string bytes;
    AppendUtf8(cp, &bytes);
    return Bytes(std::move(bytes));
  }

  // A class from a normalized set; written negated when that is shorter (`.`, `[^a]`).
  Expr SetExpr(const Ranges& set_in) const {
    Ranges set = o_.json_string_content ? Subtract(set_in, JsonUnsafe()) : set_in;
    if (set.empty()) return Choice({});  // matches nothing
    Ranges complement = Complement(set);
    if (complement.size() < set.size()) return CharClass(std::move(complement), /*negated=*/true);
    return CharClass(std::move(set));
  }

  std::string_view p_;
  RegexOptions o_;
  size_t pos_ = 0;
};

}  // namespace

absl::StatusOr<Expr> RegexToExpr(std::string_view pattern, const RegexOptions& o) {
  RegexParser parser(pattern, o);
  return parser.Parse();
}

absl::StatusOr<Grammar> RegexToGrammar(std::string_view pattern) {
  absl::StatusOr<Expr> e = RegexToExpr(pattern);
  if (!e.ok()) return e.status();
  Grammar g;
  g.root = g.AddRule("regex");
  g.rules[g.root].body = *std::move(e);
  return g;
}

}  // namespace strata::grammar
