#include "runtime/grammar/grammar.h"

#include "utf8proc.h"

#include <cctype>
#include <cstdio>
#include <set>

namespace strata::grammar {

Expr Bytes(std::string bytes) {
  Expr e;
  e.kind = Expr::Kind::kBytes;
  e.bytes = std::move(bytes);
  return e;
}

Expr CharClass(std::vector<std::pair<uint32_t, uint32_t>> ranges, bool negated) {
  Expr e;
  e.kind = Expr::Kind::kCharClass;
  e.ranges = std::move(ranges);
  e.negated = negated;
  return e;
}

Expr Char(uint32_t code_point) { return CharClass({{code_point, code_point}}); }
Expr AnyChar() { return CharClass({}, /*negated=*/true); }

Expr RuleRef(int rule) {
  Expr e;
  e.kind = Expr::Kind::kRuleRef;
  e.rule = rule;
  return e;
}

Expr Sequence(std::vector<Expr> items) {
  if (items.size() == 1) return std::move(items[0]);
  Expr e;
  e.kind = Expr::Kind::kSequence;
  e.items = std::move(items);
  return e;
}

Expr Choice(std::vector<Expr> items) {
  if (items.size() == 1) return std::move(items[0]);
  Expr e;
  e.kind = Expr::Kind::kChoice;
  e.items = std::move(items);
  return e;
}

Expr Repeat(Expr item, int min, int max) {
  Expr e;
  e.kind = Expr::Kind::kRepeat;
  e.items.push_back(std::move(item));
  e.min = min;
  e.max = max;
  return e;
}

void AppendUtf8(uint32_t code_point, std::string* out) {
  utf8proc_uint8_t buf[4];
  const auto n = utf8proc_encode_char(static_cast<utf8proc_int32_t>(code_point), buf);
  out->append(reinterpret_cast<const char*>(buf), static_cast<size_t>(n));
}

int Grammar::AddRule(std::string name) {
  rules.push_back({std::move(name), Sequence({})});
  return static_cast<int>(rules.size()) - 1;
}

namespace {

// A code point inside a literal or a class, escaped where the EBNF would misread it.
std::string EscapeCodePoint(uint32_t c, bool in_class) {
  char buf[16];
  if (c == '\n') return "\\n";
  if (c == '\r') return "\\r";
  if (c == '\t') return "\\t";
  if (c == '\\') return "\\\\";
  if (!in_class && c == '"') return "\\\"";
  if (in_class && (c == ']' || c == '-' || c == '^')) return std::string("\\") + static_cast<char>(c);
  if (c < 0x20 || c == 0x7f) {
    std::snprintf(buf, sizeof buf, "\\x%02X", c);
    return buf;
  }
  if (c < 0x80) return std::string(1, static_cast<char>(c));
  std::snprintf(buf, sizeof buf, c <= 0xFFFF ? "\\u%04X" : "\\U%08X", c);
  return buf;
}

std::string LiteralText(const std::string& bytes) {
  std::string out = "\"";
  for (unsigned char b : bytes) {
    if (b >= 0x80) {  // bytes, not code points: a literal may hold part of a character
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02X", b);
      out += buf;
    } else {
      out += EscapeCodePoint(b, false);
    }
  }
  return out + "\"";
}

class Printer {
 public:
  explicit Printer(const Grammar& g) : g_(g) {
    // Names as the EBNF takes them ([a-zA-Z_][a-zA-Z0-9_-]*), made unique with a suffix; the root
    // is always "root" so that the text parses back with the default root name.
    std::set<std::string> used = {"root"};
    for (size_t i = 0; i < g.rules.size(); ++i) {
      if (static_cast<int>(i) == g.root) {
        names_.push_back("root");
        continue;
      }
      std::string base = g.rules[i].name.empty() ? "rule" : g.rules[i].name;
      for (char& c : base)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') c = '_';
      if (!std::isalpha(static_cast<unsigned char>(base[0])) && base[0] != '_') base = "r_" + base;
      std::string name = base;
      for (int k = 1; !used.insert(name).second; ++k) name = base + "_" + std::to_string(k);
      names_.push_back(name);
    }
  }

  std::string Print(const Expr& e, bool grouped) const {
    switch (e.kind) {
      case Expr::Kind::kBytes:
        return LiteralText(e.bytes);
      case Expr::Kind::kCharClass: {
        std::string out = e.negated ? "[^" : "[";
        for (auto [lo, hi] : e.ranges) {
          out += EscapeCodePoint(lo, true);
          if (hi != lo) out += "-" + EscapeCodePoint(hi, true);
        }
        return out + "]";
      }
      case Expr::Kind::kRuleRef:
        return e.rule >= 0 && e.rule < static_cast<int>(names_.size()) ? names_[e.rule] : "<bad-rule>";
      case Expr::Kind::kSequence: {
        if (e.items.empty()) return "\"\"";
        std::string out;
        for (const Expr& i : e.items) out += (out.empty() ? "" : " ") + Print(i, true);
        return grouped && e.items.size() > 1 ? "(" + out + ")" : out;
      }
      case Expr::Kind::kChoice: {
        if (e.items.empty()) return "[^\\x00-\\U0010FFFF]";  // nothing
        std::string out;
        for (const Expr& i : e.items) out += (out.empty() ? "" : " | ") + Print(i, false);
        return grouped && e.items.size() > 1 ? "(" + out + ")" : out;
      }
      case Expr::Kind::kRepeat: {
        std::string inner = Print(e.items[0], true);
        if (e.min == 0 && e.max == 1) return inner + "?";
        if (e.min == 0 && e.max < 0) return inner + "*";
        if (e.min == 1 && e.max < 0) return inner + "+";
        if (e.min == e.max) return inner + "{" + std::to_string(e.min) + "}";
        return inner + "{" + std::to_string(e.min) + "," + (e.max < 0 ? "" : std::to_string(e.max)) + "}";
      }
    }
    return "";
  }

  std::string Print() const {
    std::string out;
    for (size_t i = 0; i < g_.rules.size(); ++i)
      out += names_[i] + " ::= " + Print(g_.rules[i].body, false) + "\n";
    return out;
  }
  const std::string& name(int i) const { return names_[i]; }

 private:
  const Grammar& g_;
  std::vector<std::string> names_;
};

}  // namespace

std::string Grammar::ToString() const {
  Printer p(*this);
  return p.Print();
}

}  // namespace strata::grammar
