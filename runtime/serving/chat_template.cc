#include "runtime/serving/chat_template.h"

#include <algorithm>
#include <cctype>
#include <climits>
#include <cmath>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "runtime/base/status.h"
#include "runtime/model/gguf_file.h"
#include "runtime/tokenizer/gguf_tokenizer.h"

namespace strata {
namespace {

// Mappings keep their insertion order, as Python dicts do: `items()`, `for k in d` and `tojson`
// (Hugging Face's, which does not sort) then print keys in the order the request gave them.
using json = nlohmann::ordered_json;

constexpr int64_t kMaxRange = 1 << 20;

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// ---- Expressions ------------------------------------------------------------------------------

struct Tok {
  enum Kind { kName, kNumber, kString, kOp, kEnd } kind;
  std::string text;
};

std::vector<Tok> Lex(const std::string& s) {
  std::vector<Tok> out;
  size_t i = 0;
  while (i < s.size()) {
    const char c = s[i];
    if (std::isspace(static_cast<unsigned char>(c))) {
      ++i;
    } else if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t j = i;
      while (j < s.size() && (std::isalnum(static_cast<unsigned char>(s[j])) || s[j] == '_')) ++j;
      out.push_back({Tok::kName, s.substr(i, j - i)});
      i = j;
    } else if (std::isdigit(static_cast<unsigned char>(c))) {
      size_t j = i;
      while (j < s.size() && (std::isdigit(static_cast<unsigned char>(s[j])) || s[j] == '.')) ++j;
      out.push_back({Tok::kNumber, s.substr(i, j - i)});
      i = j;
    } else if (c == '\'' || c == '"') {
      std::string v;
      size_t j = i + 1;
      for (; j < s.size() && s[j] != c; ++j) {
        if (s[j] == '\\' && j + 1 < s.size()) {
          const char e = s[++j];
          v += e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e;
        } else {
          v += s[j];
        }
      }
      if (j >= s.size()) throw Error("unterminated string");
      out.push_back({Tok::kString, v});
      i = j + 1;
    } else {
      static const char* two[] = {"==", "!=", "<=", ">=", "//", "**"};
      std::string op(1, c);
      for (const char* t : two)
        if (s.compare(i, 2, t) == 0) op = t;
      if (std::string("+-*/%~()[].,:|=<>{}!").find(c) == std::string::npos) throw Error(absl::StrCat("unexpected '", op, "'"));
      out.push_back({Tok::kOp, op});
      i += op.size();
    }
  }
  out.push_back({Tok::kEnd, ""});
  return out;
}

struct Scope;
using Expr = std::function<json(Scope&)>;

// Jinja2's Undefined (a name or attribute that does not exist) is distinct from None: it is a
// discarded JSON value here. It is false, prints as "", and `is defined` is false only for it.
json Undefined() { return json(json::value_t::discarded); }
bool IsUndefined(const json& v) { return v.is_discarded(); }

// A namespace() object: a JSON object with this marker key, assignable with {% set ns.x = v %}.
constexpr char kNamespaceKey[] = "\x01namespace";

struct Scope {
  std::vector<json> frames;  // innermost last
  json Get(const std::string& name) const {
    for (auto it = frames.rbegin(); it != frames.rend(); ++it)
      if (it->contains(name)) return (*it)[name];
    return Undefined();
  }
  // The frame that holds `name` (for assigning a namespace's attribute), or null.
  json* Holder(const std::string& name) {
    for (auto it = frames.rbegin(); it != frames.rend(); ++it)
      if (it->contains(name)) return &*it;
    return nullptr;
  }
  bool Defined(const std::string& name) const {
    for (auto it = frames.rbegin(); it != frames.rend(); ++it)
      if (it->contains(name)) return true;
    return false;
  }
};

bool Truthy(const json& v) {
  if (v.is_null() || IsUndefined(v)) return false;
  if (v.is_boolean()) return v.get<bool>();
  if (v.is_number()) return v.get<double>() != 0;
  // nlohmann's empty() is false for every string, "" included: ask the string itself.
  if (v.is_string()) return !v.get_ref<const std::string&>().empty();
  if (v.is_array() || v.is_object()) return !v.empty();
  return true;
}

// Strings are indexed, sliced and measured in code points, as Python does, not in bytes: the
// byte offset where each code point starts, plus the end. Bytes that are not UTF-8 count one each.
std::vector<size_t> CodePointStarts(const std::string& s) {
  std::vector<size_t> at;
  for (size_t i = 0; i < s.size();) {
    at.push_back(i);
    const unsigned char c = static_cast<unsigned char>(s[i]);
    size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    for (size_t k = 1; k < len; ++k)
      if (i + k >= s.size() || (static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) len = 1;
    i += len;
  }
  at.push_back(s.size());
  return at;
}

size_t Length(const json& v) {
  if (v.is_string()) return CodePointStarts(v.get<std::string>()).size() - 1;
  if (v.is_array() || v.is_object()) return v.size();
  throw Error("length of a value that has none");
}

// Python's ==: mappings compare without regard to key order, 1 == 1.0.
bool Equal(const json& a, const json& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_number_integer() && b.is_number_integer()) return a.get<int64_t>() == b.get<int64_t>();
    return a.get<double>() == b.get<double>();
  }
  if (a.is_object() && b.is_object()) {
    if (a.size() != b.size()) return false;
    for (auto& [k, x] : a.items())
      if (!b.contains(k) || !Equal(x, b[k])) return false;
    return true;
  }
  if (a.is_array() && b.is_array()) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
      if (!Equal(a[i], b[i])) return false;
    return true;
  }
  if (IsUndefined(a) || IsUndefined(b)) return IsUndefined(a) && IsUndefined(b);
  return a == b;
}

// Python's < on numbers or on strings (UTF-8 byte order is code point order); anything else is
// a TypeError there and an error here.
bool Less(const json& a, const json& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_number_integer() && b.is_number_integer()) return a.get<int64_t>() < b.get<int64_t>();
    return a.get<double>() < b.get<double>();
  }
  if (a.is_string() && b.is_string()) return a.get<std::string>() < b.get<std::string>();
  throw Error("'<' between values that do not order (only numbers with numbers, strings with strings)");
}

// An integer operand (a slice bound, range's count): Python refuses floats there, whole or not.
int64_t Int(const json& v, const char* what) {
  if (!v.is_number_integer()) throw Error(absl::StrCat(what, " must be an integer"));
  return v.get<int64_t>();
}

// Integer arithmetic as Python's (floor division and modulo), refusing what int64 cannot hold
// instead of overflowing.
json IntegerOp(const std::string& op, int64_t u, int64_t v) {
  int64_t r = 0;
  bool overflow = false;
  if (op == "+") overflow = __builtin_add_overflow(u, v, &r);
  else if (op == "-") overflow = __builtin_sub_overflow(u, v, &r);
  else if (op == "*") overflow = __builtin_mul_overflow(u, v, &r);
  else {
    if (v == 0) throw Error("division by zero");
    if (u == INT64_MIN && v == -1) throw Error("integer overflow");
    const int64_t q = u / v, m = u % v;
    const bool adjust = m != 0 && ((m < 0) != (v < 0));
    r = op == "%" ? (adjust ? m + v : m) : (adjust ? q - 1 : q);
  }
  if (overflow) throw Error("integer overflow");
  return json(r);
}

json FloatOp(const std::string& op, double u, double v) {
  if (op == "+") return json(u + v);
  if (op == "-") return json(u - v);
  if (op == "*") return json(u * v);
  if (op == "/") return json(u / v);
  if (v == 0) throw Error("division by zero");
  const double q = std::floor(u / v);
  return json(op == "//" ? q : u - v * q);
}


std::string PyFloat(double d) {
  std::string r = json(d).dump();
  if (!std::isfinite(d)) return d != d ? "nan" : d > 0 ? "inf" : "-inf";
  if (r.find_first_of(".eE") == std::string::npos) r += ".0";  // Python repr of a whole float
  return r;
}

// Python's repr() of a string: single quotes unless it holds ' and no ".
std::string PyRepr(const std::string& s) {
  const char q = s.find('\'') != std::string::npos && s.find('"') == std::string::npos ? '"' : '\'';
  std::string out(1, q);
  static const char* hex = "0123456789abcdef";
  for (const char ch : s) {
    const unsigned char c = static_cast<unsigned char>(ch);
    if (ch == q || ch == '\\') out += std::string("\\") + ch;
    else if (ch == '\n') out += "\\n";
    else if (ch == '\r') out += "\\r";
    else if (ch == '\t') out += "\\t";
    else if (c < 0x20 || c == 0x7f) out += std::string("\\x") + hex[c >> 4] + hex[c & 15];
    else out += ch;
  }
  return out + q;
}

// Python's str(): containers print as Python literals ({'a': 1}, [True, None]).
std::string Str(const json& v, bool nested = false) {
  if (v.is_string()) return nested ? PyRepr(v.get<std::string>()) : v.get<std::string>();
  if (IsUndefined(v)) return "";
  if (v.is_null()) return "None";
  if (v.is_boolean()) return v.get<bool>() ? "True" : "False";
  if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
  if (v.is_number_float()) return PyFloat(v.get<double>());
  std::string out;
  if (v.is_array()) {
    for (const json& x : v) out += (out.empty() ? "" : ", ") + Str(x, true);
    return "[" + out + "]";
  }
  if (v.is_object()) {
    if (v.contains(kNamespaceKey)) return "<Namespace>";
    for (auto& [k, x] : v.items()) out += (out.empty() ? "" : ", ") + PyRepr(k) + ": " + Str(x, true);
    return "{" + out + "}";
  }
  return v.dump();
}

// Hugging Face replaces Jinja's tojson (HTML-safe, sorted keys) with Python's
// json.dumps(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False); these are its
// options, with Python's defaults.
struct DumpOptions {
  bool ensure_ascii = false;
  int indent = -1;  // -1: None (one line)
  std::string item_sep = ", ", key_sep = ": ";
  bool sort_keys = false;
};

// A JSON string as json.dumps writes it: control characters as \uXXXX; with ensure_ascii every
// code point above 0x7f too (surrogate pairs above U+FFFF), else the UTF-8 bytes as they are.
void PyString(const std::string& s, bool ensure_ascii, std::string* out) {
  static const char* hex = "0123456789abcdef";
  auto u = [&](uint32_t c) {
    *out += "\\u";
    for (int k = 3; k >= 0; --k) *out += hex[(c >> (4 * k)) & 15];
  };
  *out += '"';
  const std::vector<size_t> at = CodePointStarts(s);
  for (size_t n = 0; n + 1 < at.size(); ++n) {
    const size_t i = at[n], len = at[n + 1] - at[n];
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (len > 1 || c >= 0x80) {
      if (!ensure_ascii) {
        out->append(s, i, len);
        continue;
      }
      uint32_t cp = len == 1 ? c : len == 2 ? (c & 31) : len == 3 ? (c & 15) : (c & 7);
      for (size_t k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 63);
      if (cp >= 0x10000) {
        cp -= 0x10000;
        u(0xD800 + (cp >> 10));
        u(0xDC00 + (cp & 0x3ff));
      } else {
        u(cp);
      }
    } else if (c == '"') *out += "\\\"";
    else if (c == '\\') *out += "\\\\";
    else if (c == '\n') *out += "\\n";
    else if (c == '\r') *out += "\\r";
    else if (c == '\t') *out += "\\t";
    else if (c == '\b') *out += "\\b";
    else if (c == '\f') *out += "\\f";
    else if (c < 0x20) u(c);
    else *out += static_cast<char>(c);
  }
  *out += '"';
}

// Nesting is bounded by the parsed input (nlohmann's parser) and by what a template can build.
std::string PyJson(const json& v, const DumpOptions& o, int depth) {
  if (depth > 512) throw Error("tojson: value nested too deeply");
  const std::string nl = o.indent >= 0 ? "\n" + std::string(static_cast<size_t>(o.indent) * (depth + 1), ' ') : "";
  const std::string end = o.indent >= 0 ? "\n" + std::string(static_cast<size_t>(o.indent) * depth, ' ') : "";
  std::string out;
  if (v.is_object()) {
    std::vector<std::string> keys;
    for (auto& [k, x] : v.items())
      if (k != kNamespaceKey) keys.push_back(k);
    if (keys.empty()) return "{}";
    if (o.sort_keys) std::sort(keys.begin(), keys.end());
    out = "{";
    for (size_t i = 0; i < keys.size(); ++i) {
      out += (i ? o.item_sep : "") + nl;
      PyString(keys[i], o.ensure_ascii, &out);
      out += o.key_sep + PyJson(v[keys[i]], o, depth + 1);
    }
    return out + end + "}";
  }
  if (v.is_array()) {
    if (v.empty()) return "[]";
    out = "[";
    for (size_t i = 0; i < v.size(); ++i) out += (i ? o.item_sep : "") + nl + PyJson(v[i], o, depth + 1);
    return out + end + "]";
  }
  if (v.is_string()) {
    PyString(v.get<std::string>(), o.ensure_ascii, &out);
    return out;
  }
  if (IsUndefined(v)) throw Error("tojson of an undefined value");
  if (v.is_null()) return "null";
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  if (v.is_number_float()) {
    const double d = v.get<double>();
    return std::isfinite(d) ? PyFloat(d) : d != d ? "NaN" : d > 0 ? "Infinity" : "-Infinity";
  }
  return v.dump();
}

// Python's str.strip: by default ASCII whitespace as str.isspace() has it. (Unicode spaces such as
// U+00A0 are whitespace to Python too; they are kept here.)
std::string Trim(const std::string& s, bool left, bool right,
                 const std::string& chars = std::string(" \t\n\r\v\f\x1c\x1d\x1e\x1f")) {
  for (const char c : chars)
    if (static_cast<unsigned char>(c) >= 0x80) throw Error("stripping non-ASCII characters is not supported");
  size_t a = 0, b = s.size();
  if (left)
    while (a < b && chars.find(s[a]) != std::string::npos) ++a;
  if (right)
    while (b > a && chars.find(s[b - 1]) != std::string::npos) --b;
  return s.substr(a, b - a);
}

// Python's list(v): a list's items, a string's code points, a mapping's keys.
json ToList(const json& v) {
  if (v.is_array()) return v;
  json r = json::array();
  if (v.is_string()) {
    const std::string t = v.get<std::string>();
    const std::vector<size_t> at = CodePointStarts(t);
    for (size_t n = 0; n + 1 < at.size(); ++n) r.push_back(t.substr(at[n], at[n + 1] - at[n]));
    return r;
  }
  if (v.is_object() && !v.contains(kNamespaceKey)) {
    for (auto& [k, x] : v.items()) r.push_back(k);
    return r;
  }
  throw Error("a value that is not iterable");
}

enum CaseMode { kUpper, kLower, kTitle, kCapitalize };

// Python's str.upper/lower/title/capitalize. Only ASCII: Unicode case mapping needs tables Strata
// does not carry, so non-ASCII text is refused rather than half-mapped.
std::string CaseMap(const std::string& s, CaseMode mode) {
  std::string out = s;
  bool prev_cased = false;
  for (size_t i = 0; i < out.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(out[i]);
    if (c >= 0x80) throw Error("changing the case of non-ASCII text is not supported");
    const bool cased = std::isalpha(c) != 0;
    bool up = mode == kUpper;
    if (mode == kTitle) up = cased && !prev_cased;
    if (mode == kCapitalize) up = i == 0;
    out[i] = static_cast<char>(up ? std::toupper(c) : std::tolower(c));
    prev_cased = cased;
  }
  return out;
}

// Python's str.split(): with no separator, runs of whitespace split and ends are dropped.
json PySplit(const std::string& t, const json& sep) {
  json r = json::array();
  if (IsUndefined(sep) || sep.is_null()) {
    size_t i = 0;
    for (;;) {
      while (i < t.size() && std::isspace(static_cast<unsigned char>(t[i]))) ++i;
      if (i >= t.size()) return r;
      size_t j = i;
      while (j < t.size() && !std::isspace(static_cast<unsigned char>(t[j]))) ++j;
      r.push_back(t.substr(i, j - i));
      i = j;
    }
  }
  if (!sep.is_string() || sep.get<std::string>().empty()) throw Error("split's separator must be a non-empty string");
  const std::string d = sep.get<std::string>();
  size_t at = 0;
  for (size_t f; (f = t.find(d, at)) != std::string::npos; at = f + d.size()) r.push_back(t.substr(at, f - at));
  r.push_back(t.substr(at));
  return r;
}

// Python's str.replace(old, new[, count]); an empty `old` inserts between code points.
std::string Replace(const std::string& t, const std::string& from, const std::string& to, int64_t count) {
  std::string out;
  if (from.empty()) {
    const std::vector<size_t> at = CodePointStarts(t);
    for (size_t n = 0; n + 1 < at.size(); ++n) {
      if (count < 0 || static_cast<int64_t>(n) < count) out += to;
      out.append(t, at[n], at[n + 1] - at[n]);
    }
    if (count < 0 || static_cast<int64_t>(at.size()) - 1 < count) out += to;
    return out;
  }
  size_t at = 0;
  for (int64_t done = 0; count < 0 || done < count; ++done) {
    const size_t f = t.find(from, at);
    if (f == std::string::npos) break;
    out.append(t, at, f - at);
    out += to;
    at = f + from.size();
  }
  return out + t.substr(at);
}

class ExprParser {
 public:
  explicit ExprParser(std::vector<Tok> t) : t_(std::move(t)) {}
  Expr Parse() { return Conditional(); }
  Expr ParseNoConditional() { return Or(); }
  bool AtEnd() const { return t_[p_].kind == Tok::kEnd; }
  const Tok& Peek() const { return t_[p_]; }
  bool Accept(const std::string& s) {
    if ((t_[p_].kind == Tok::kOp || t_[p_].kind == Tok::kName) && t_[p_].text == s) {
      ++p_;
      return true;
    }
    return false;
  }
  void Expect(const std::string& s) {
    if (!Accept(s)) throw Error(absl::StrCat("expected '", s, "' near '", t_[p_].text, "'"));
  }
  std::string Name() {
    if (t_[p_].kind != Tok::kName) throw Error(absl::StrCat("expected a name near '", t_[p_].text, "'"));
    return t_[p_++].text;
  }

 private:
  Expr Conditional() {
    Expr a = Or();
    if (Accept("if")) {
      Expr cond = Or();
      Expr b = Accept("else") ? Conditional() : Expr([](Scope&) { return json(""); });
      return [a, cond, b](Scope& s) { return Truthy(cond(s)) ? a(s) : b(s); };
    }
    return a;
  }
  Expr Or() {
    Expr a = And();
    while (Accept("or")) {
      Expr b = And();
      a = [a, b](Scope& s) {
        json x = a(s);
        return Truthy(x) ? x : b(s);
      };
    }
    return a;
  }
  Expr And() {
    Expr a = Not();
    while (Accept("and")) {
      Expr b = Not();
      a = [a, b](Scope& s) {
        json x = a(s);
        return Truthy(x) ? b(s) : x;
      };
    }
    return a;
  }
  Expr Not() {
    if (Accept("not")) {
      Expr a = Not();
      return [a](Scope& s) { return json(!Truthy(a(s))); };
    }
    return Compare();
  }
  Expr Compare() {
    Expr a = Concat();
    for (;;) {
      std::string op;
      for (const char* o : {"==", "!=", "<=", ">=", "<", ">", "in"})
        if (Accept(o)) {
          op = o;
          break;
        }
      if (op.empty() && Peek().text == "not" && t_[p_ + 1].text == "in") {
        p_ += 2;
        op = "not in";
      }
      if (op.empty() && Accept("is")) {
        const bool neg = Accept("not");
        const std::string test = Name();
        // `is divisibleby(3)`, `is equalto 5` (one literal or name), or no operand.
        Expr operand;
        if (Accept("(")) {
          std::vector<Expr> args = Args();
          if (args.size() > 1) throw Error(absl::StrCat("test '", test, "' takes at most one argument"));
          if (!args.empty()) operand = args[0];
        } else if (Peek().kind == Tok::kString || Peek().kind == Tok::kNumber ||
                   (Peek().kind == Tok::kName && !IsKeyword(Peek().text))) {
          operand = Postfix(Primary());
        }
        a = [a, neg, test, operand](Scope& s) {
          const json v = a(s);
          const bool r = ApplyTest(test, v, operand ? operand(s) : Undefined(), static_cast<bool>(operand));
          return json(neg ? !r : r);
        };
        continue;
      }
      if (op.empty()) return a;
      Expr b = Concat();
      a = [a, b, op](Scope& s) {
        json x = a(s), y = b(s);
        if (op == "==") return json(Equal(x, y));
        if (op == "!=") return json(!Equal(x, y));
        if (op == "in" || op == "not in") {
          const bool in = Contains(y, x);
          return json(op == "in" ? in : !in);
        }
        if (op == "<") return json(Less(x, y));
        if (op == ">") return json(Less(y, x));
        if (op == "<=") return json(!Less(y, x));
        return json(!Less(x, y));
      };
    }
  }
  static bool IsKeyword(const std::string& w) {
    return w == "and" || w == "or" || w == "not" || w == "if" || w == "else" || w == "in" || w == "is";
  }
  // Python's `x in y`: a substring, a list item, a mapping key.
  static bool Contains(const json& y, const json& x) {
    if (y.is_string()) {
      if (!x.is_string()) throw Error("'in <string>' requires a string on the left");
      return y.get<std::string>().find(x.get<std::string>()) != std::string::npos;
    }
    if (y.is_array()) {
      for (const json& e : y)
        if (Equal(e, x)) return true;
      return false;
    }
    if (y.is_object()) return x.is_string() && y.contains(x.get<std::string>()) && x.get<std::string>() != kNamespaceKey;
    throw Error("'in' on a value that is not a string, list or mapping");
  }
  // Jinja's tests, as `x is name`, select/reject and selectattr/rejectattr use them.
  static bool ApplyTest(const std::string& t, const json& v, const json& operand, bool has_operand) {
    auto need = [&](bool want) {
      if (has_operand != want)
        throw Error(absl::StrCat("test '", t, want ? "' needs an argument" : "' takes no argument"));
    };
    if (t == "equalto" || t == "eq" || t == "==") return need(true), Equal(v, operand);
    if (t == "ne" || t == "!=") return need(true), !Equal(v, operand);
    if (t == "lt" || t == "<" || t == "lessthan") return need(true), Less(v, operand);
    if (t == "gt" || t == ">" || t == "greaterthan") return need(true), Less(operand, v);
    if (t == "le" || t == "<=") return need(true), !Less(operand, v);
    if (t == "ge" || t == ">=") return need(true), !Less(v, operand);
    if (t == "in") return need(true), Contains(operand, v);
    need(false);
    if (t == "defined") return !IsUndefined(v);
    if (t == "undefined") return IsUndefined(v);
    if (t == "none") return v.is_null();
    if (t == "string") return v.is_string();
    if (t == "mapping") return v.is_object() && !v.contains(kNamespaceKey);
    if (t == "iterable" || t == "sequence") return v.is_array() || v.is_string() || (v.is_object() && !v.contains(kNamespaceKey));
    if (t == "number") return v.is_number();  // True is a number in Python; JSON keeps them apart
    if (t == "integer") return v.is_number_integer();
    if (t == "float") return v.is_number_float();
    if (t == "boolean") return v.is_boolean();
    if (t == "true") return v.is_boolean() && v.get<bool>();
    if (t == "false") return v.is_boolean() && !v.get<bool>();
    if (t == "lower" || t == "upper") {
      if (!v.is_string()) return false;
      const std::string x = v.get<std::string>();
      return x == CaseMap(x, t == "upper" ? kUpper : kLower) && x != CaseMap(x, t == "upper" ? kLower : kUpper);
    }
    throw Error(absl::StrCat("unsupported test '", t, "'"));
  }
  Expr Concat() {
    Expr a = Additive();
    while (Accept("~")) {
      Expr b = Additive();
      a = [a, b](Scope& s) { return json(Str(a(s)) + Str(b(s))); };
    }
    return a;
  }
  Expr Additive() {
    Expr a = Multiplicative();
    for (;;) {
      std::string op = Accept("+") ? "+" : Accept("-") ? "-" : "";
      if (op.empty()) return a;
      Expr b = Multiplicative();
      a = [a, b, op](Scope& s) {
        json x = a(s), y = b(s);
        if (op == "+" && x.is_string() && y.is_string()) return json(x.get<std::string>() + y.get<std::string>());
        if (op == "+" && x.is_array() && y.is_array()) {
          json r = x;
          for (const json& e : y) r.push_back(e);
          return r;
        }
        if (!x.is_number() || !y.is_number()) throw Error("arithmetic on non-numbers");
        if (x.is_number_integer() && y.is_number_integer()) return IntegerOp(op, x.get<int64_t>(), y.get<int64_t>());
        return FloatOp(op, x.get<double>(), y.get<double>());
      };
    }
  }
  Expr Multiplicative() {
    Expr a = Unary();
    for (;;) {
      std::string op = Accept("*") ? "*" : Accept("//") ? "//" : Accept("/") ? "/" : Accept("%") ? "%" : "";
      if (op.empty()) return a;
      Expr b = Unary();
      a = [a, b, op](Scope& s) {
        json x = a(s), y = b(s);
        if (!x.is_number() || !y.is_number()) throw Error("arithmetic on non-numbers");
        if (op != "/" && x.is_number_integer() && y.is_number_integer())
          return IntegerOp(op, x.get<int64_t>(), y.get<int64_t>());
        return FloatOp(op, x.get<double>(), y.get<double>());
      };
    }
  }
  Expr Unary() {
    if (Accept("-")) {
      Expr a = Unary();
      return [a](Scope& s) {
        json v = a(s);
        if (!v.is_number()) throw Error("negation of a non-number");
        return v.is_number_integer() ? IntegerOp("-", 0, v.get<int64_t>()) : json(-v.get<double>());
      };
    }
    return Postfix(Primary());
  }
  std::vector<Expr> Args() {  // after '('
    std::vector<Expr> args;
    for (auto& [name, e] : NamedArgs()) {
      if (!name.empty()) throw Error(absl::StrCat("unsupported keyword argument '", name, "'"));
      args.push_back(std::move(e));
    }
    return args;
  }
  // After '(': positional (empty name) and keyword arguments, in order.
  std::vector<std::pair<std::string, Expr>> NamedArgs() {
    std::vector<std::pair<std::string, Expr>> args;
    if (!Accept(")")) {
      do {
        std::string name;
        if (Peek().kind == Tok::kName && t_[p_ + 1].text == "=") {
          name = Name();
          Expect("=");
        }
        args.push_back({name, Parse()});
      } while (Accept(","));
      Expect(")");
    }
    return args;
  }
  Expr Postfix(Expr a) {
    for (;;) {
      if (Accept(".")) {
        const std::string name = Name();
        if (Accept("(")) {
          a = Method(a, name, Args());
        } else {
          a = [a, name](Scope& s) {
            json v = a(s);
            // Jinja: an attribute of an undefined value is an error, of anything else undefined.
            if (IsUndefined(v)) throw Error(absl::StrCat("attribute '", name, "' of an undefined value"));
            return v.is_object() && v.contains(name) && name != kNamespaceKey ? v[name] : Undefined();
          };
        }
      } else if (Accept("[")) {
        Expr lo, hi;
        bool slice = false;
        if (!(Peek().text == ":")) lo = Parse();
        if (Accept(":")) {
          slice = true;
          if (Peek().text != "]") hi = Parse();
        }
        Expect("]");
        if (slice) {
          a = [a, lo, hi](Scope& s) {
            json v = a(s);
            if (!v.is_array() && !v.is_string()) throw Error("slice of a value that is not a list or string");
            const int64_t n = static_cast<int64_t>(Length(v));
            auto clamp = [n](int64_t i) { return std::max<int64_t>(0, std::min(n, i < 0 ? n + i : i)); };
            const int64_t b = lo ? clamp(Int(lo(s), "a slice bound")) : 0,
                          e = hi ? clamp(Int(hi(s), "a slice bound")) : n;
            if (v.is_string()) {
              if (e <= b) return json("");
              const std::string t = v.get<std::string>();
              const std::vector<size_t> at = CodePointStarts(t);
              return json(t.substr(at[b], at[e] - at[b]));
            }
            json r = json::array();
            for (int64_t i = b; i < e; ++i) r.push_back(v[i]);
            return r;
          };
        } else {
          a = [a, lo](Scope& s) {
            json v = a(s), k = lo(s);
            if (IsUndefined(v)) throw Error("index into an undefined value");
            if (v.is_object() && k.is_string())
              return v.contains(k.get<std::string>()) && k.get<std::string>() != kNamespaceKey ? v[k.get<std::string>()]
                                                                                              : Undefined();
            if ((v.is_array() || v.is_string()) && k.is_number_integer()) {
              const int64_t n = static_cast<int64_t>(Length(v));
              int64_t i = k.get<int64_t>();
              if (i < 0) i += n;
              if (i < 0 || i >= n) return Undefined();
              if (v.is_array()) return v[static_cast<size_t>(i)];
              const std::string t = v.get<std::string>();
              const std::vector<size_t> at = CodePointStarts(t);
              return json(t.substr(at[i], at[i + 1] - at[i]));
            }
            return Undefined();
          };
        }
      } else if (Accept("|")) {
        const std::string f = Name();
        std::vector<std::pair<std::string, Expr>> args;
        if (Accept("(")) args = NamedArgs();
        a = [a, f, args](Scope& s) { return Filter(f, a(s), args, s); };
      } else {
        return a;
      }
    }
  }
  // An argument by keyword, else by position, else undefined.
  static json Arg(const std::vector<std::pair<std::string, Expr>>& args, size_t position, const char* name, Scope& s) {
    for (const auto& [n, e] : args)
      if (n == name) return e(s);
    size_t k = 0;
    for (const auto& [n, e] : args)
      if (n.empty() && k++ == position) return e(s);
    return Undefined();
  }
  // The items of `v` that pass a test (select / reject), or whose attribute passes it
  // (selectattr / rejectattr): the test by name, its operand after it; with no test, truthiness.
  static json Select(const json& v, const std::vector<std::pair<std::string, Expr>>& args, Scope& s, bool keep,
                     bool by_attribute) {
    std::vector<json> pos;
    for (const auto& [n, e] : args) {
      if (!n.empty()) throw Error(absl::StrCat("unsupported keyword argument '", n, "'"));
      pos.push_back(e(s));
    }
    size_t k = 0;
    std::string attr;
    if (by_attribute) {
      if (pos.empty() || !pos[0].is_string()) throw Error("selectattr / rejectattr need an attribute name");
      attr = pos[k++].get<std::string>();
    }
    const std::string test = k < pos.size() ? Str(pos[k]) : "";
    if (pos.size() > k + 2) throw Error("a test takes at most one argument");
    const bool has_operand = pos.size() == k + 2;
    const json operand = has_operand ? pos[k + 1] : Undefined();
    if (!v.is_array()) throw Error("select / reject on a value that is not a list");
    json out = json::array();
    for (const json& item : v) {
      json x = item;
      if (by_attribute) x = item.is_object() && item.contains(attr) ? item[attr] : Undefined();
      const bool pass = test.empty() ? Truthy(x) : ApplyTest(test, x, operand, has_operand);
      if (pass == keep) out.push_back(item);
    }
    return out;
  }
  static std::string StrArg(const json& v, const char* what) {
    if (!v.is_string()) throw Error(absl::StrCat(what, " must be a string"));
    return v.get<std::string>();
  }
  static json Items(const json& v) {
    if (!v.is_object() || v.contains(kNamespaceKey)) throw Error("items of a value that is not a mapping");
    json r = json::array();
    for (auto& [k, x] : v.items()) r.push_back(json::array({k, x}));
    return r;
  }
  static json Filter(const std::string& f, const json& v, const std::vector<std::pair<std::string, Expr>>& args,
                     Scope& s) {
    if (f == "trim") {
      const json chars = Arg(args, 0, "chars", s);
      return json(IsUndefined(chars) || chars.is_null() ? Trim(Str(v), true, true)
                                                         : Trim(Str(v), true, true, StrArg(chars, "trim's chars")));
    }
    if (f == "length" || f == "count") return json(Length(v));
    if (f == "upper") return json(CaseMap(Str(v), kUpper));
    if (f == "lower") return json(CaseMap(Str(v), kLower));
    if (f == "title") return json(CaseMap(Str(v), kTitle));
    if (f == "capitalize") return json(CaseMap(Str(v), kCapitalize));
    if (f == "replace") {
      const json count = Arg(args, 2, "count", s);
      return json(Replace(Str(v), StrArg(Arg(args, 0, "old", s), "replace's old"),
                          StrArg(Arg(args, 1, "new", s), "replace's new"),
                          IsUndefined(count) || count.is_null() ? -1 : Int(count, "replace's count")));
    }
    if (f == "tojson") {
      // Hugging Face's signature: tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False).
      DumpOptions o;
      const json ascii = Arg(args, 0, "ensure_ascii", s), indent = Arg(args, 1, "indent", s),
                 seps = Arg(args, 2, "separators", s), sort = Arg(args, 3, "sort_keys", s);
      for (const auto& [n, e] : args)
        if (!n.empty() && n != "ensure_ascii" && n != "indent" && n != "separators" && n != "sort_keys")
          throw Error(absl::StrCat("tojson has no argument '", n, "'"));
      o.ensure_ascii = Truthy(ascii);
      o.sort_keys = Truthy(sort);
      if (!IsUndefined(indent) && !indent.is_null()) {
        const int64_t n = Int(indent, "tojson's indent");
        if (n < 0 || n > 64) throw Error("tojson's indent must be between 0 and 64");
        o.indent = static_cast<int>(n);
        o.item_sep = ",";
      }
      if (!IsUndefined(seps) && !seps.is_null()) {
        if (!seps.is_array() || seps.size() != 2 || !seps[0].is_string() || !seps[1].is_string())
          throw Error("tojson's separators must be two strings");
        o.item_sep = seps[0].get<std::string>();
        o.key_sep = seps[1].get<std::string>();
      }
      return json(PyJson(v, o, 0));
    }
    if (f == "string") return json(Str(v));
    if (f == "default" || f == "d") {
      const bool boolean = Truthy(Arg(args, 1, "boolean", s));
      return IsUndefined(v) || (boolean && !Truthy(v)) ? Arg(args, 0, "default_value", s) : v;
    }
    if (f == "items") return Items(v);
    if (f == "list") return ToList(v);
    if (f == "first") return v.is_array() && !v.empty() ? v.front() : Undefined();
    if (f == "last") return v.is_array() && !v.empty() ? v.back() : Undefined();
    if (f == "join") {
      const json sep = Arg(args, 0, "d", s);
      if (!v.is_array()) throw Error("join of a value that is not a list");
      std::string out;
      for (size_t i = 0; i < v.size(); ++i) out += (i ? (IsUndefined(sep) ? "" : Str(sep)) : "") + Str(v[i]);
      return json(out);
    }
    if (f == "selectattr" || f == "rejectattr") return Select(v, args, s, f == "selectattr", true);
    if (f == "select" || f == "reject") return Select(v, args, s, f == "select", false);
    if (f == "map") {
      json out = json::array();
      if (!v.is_array()) throw Error("map of a value that is not a list");
      const json attr = Arg(args, 99, "attribute", s);
      if (!IsUndefined(attr)) {
        const json dflt = Arg(args, 99, "default", s);
        for (const json& item : v)
          out.push_back(item.is_object() && item.contains(Str(attr)) ? item[Str(attr)] : dflt);
        return out;
      }
      if (args.empty() || !args[0].first.empty()) throw Error("map needs a filter name or attribute=");
      const std::string filter = Str(args[0].second(s));
      const std::vector<std::pair<std::string, Expr>> rest(args.begin() + 1, args.end());
      for (const json& item : v) out.push_back(Filter(filter, item, rest, s));
      return out;
    }
    throw Error(absl::StrCat("unknown filter '", f, "'"));
  }
  Expr Method(Expr obj, const std::string& name, std::vector<Expr> args) {
    return [obj, name, args](Scope& s) {
      json v = obj(s);
      std::vector<json> a;
      for (const Expr& e : args) a.push_back(e(s));
      auto arity = [&](size_t lo, size_t hi) {
        if (a.size() < lo || a.size() > hi)
          throw Error(absl::StrCat("method '", name, "' called with ", a.size(), " arguments"));
      };
      if (IsUndefined(v)) throw Error(absl::StrCat("method '", name, "' of an undefined value"));
      if (v.is_object() && !v.contains(kNamespaceKey)) {
        if (name == "items") return arity(0, 0), Items(v);
        if (name == "keys" || name == "values") {
          arity(0, 0);
          json r = json::array();
          for (auto& [k, x] : v.items()) r.push_back(name == "keys" ? json(k) : x);
          return r;
        }
        if (name == "get") {
          arity(1, 2);
          return a[0].is_string() && v.contains(a[0].get<std::string>()) ? v[a[0].get<std::string>()]
                                                                          : (a.size() > 1 ? a[1] : json());
        }
        throw Error(absl::StrCat("unknown mapping method '", name, "'"));
      }
      if (!v.is_string()) throw Error(absl::StrCat("method '", name, "' on a value that is not a string"));
      const std::string t = v.get<std::string>();
      if (name == "strip" || name == "lstrip" || name == "rstrip") {
        arity(0, 1);
        if (a.empty() || a[0].is_null()) return json(Trim(t, name != "rstrip", name != "lstrip"));
        return json(Trim(t, name != "rstrip", name != "lstrip", StrArg(a[0], "strip's chars")));
      }
      if (name == "upper") return arity(0, 0), json(CaseMap(t, kUpper));
      if (name == "lower") return arity(0, 0), json(CaseMap(t, kLower));
      if (name == "title") return arity(0, 0), json(CaseMap(t, kTitle));
      if (name == "capitalize") return arity(0, 0), json(CaseMap(t, kCapitalize));
      if (name == "startswith" || name == "endswith") {
        arity(1, 1);
        const std::string e = StrArg(a[0], name.c_str());
        if (name == "startswith") return json(t.compare(0, e.size(), e) == 0 && t.size() >= e.size());
        return json(t.size() >= e.size() && t.compare(t.size() - e.size(), e.size(), e) == 0);
      }
      if (name == "split") return arity(0, 1), PySplit(t, a.empty() ? Undefined() : a[0]);
      if (name == "replace") {
        arity(2, 3);
        return json(Replace(t, StrArg(a[0], "replace's old"), StrArg(a[1], "replace's new"),
                            a.size() > 2 ? Int(a[2], "replace's count") : -1));
      }
      if (name == "join") {
        arity(1, 1);
        if (!a[0].is_array()) throw Error("join's argument must be a list");
        std::string out;
        for (size_t i = 0; i < a[0].size(); ++i) out += (i ? t : "") + StrArg(a[0][i], "an item joined");
        return json(out);
      }
      throw Error(absl::StrCat("unknown string method '", name, "'"));
    };
  }
  Expr Primary() {
    const Tok t = t_[p_];
    if (t.kind == Tok::kString) {
      ++p_;
      std::string v = t.text;
      while (t_[p_].kind == Tok::kString) v += t_[p_++].text;  // adjacent literals join
      return [v](Scope&) { return json(v); };
    }
    if (t.kind == Tok::kNumber) {
      ++p_;
      const json v = t.text.find('.') != std::string::npos ? json(std::stod(t.text)) : json(std::stoll(t.text));
      return [v](Scope&) { return v; };
    }
    if (Accept("(")) {
      Expr e = Parse();
      Expect(")");
      return e;
    }
    if (Accept("[")) {
      std::vector<Expr> items;
      if (!Accept("]")) {
        do {
          items.push_back(Parse());
        } while (Accept(","));
        Expect("]");
      }
      return [items](Scope& s) {
        json r = json::array();
        for (const Expr& e : items) r.push_back(e(s));
        return r;
      };
    }
    if (t.kind == Tok::kName) {
      ++p_;
      const std::string n = t.text;
      if (n == "true" || n == "True") return [](Scope&) { return json(true); };
      if (n == "false" || n == "False") return [](Scope&) { return json(false); };
      if (n == "none" || n == "None") return [](Scope&) { return json(); };
      if (Accept("(")) {
        if (n == "namespace") {
          auto named = NamedArgs();
          return [named](Scope& s) {
            json ns = {{kNamespaceKey, true}};
            for (const auto& [key, e] : named)
              if (!key.empty()) ns[key] = e(s);
            return ns;
          };
        }
        std::vector<Expr> args = Args();
        if (n == "raise_exception")
          return [args](Scope& s) -> json { throw Error(args.empty() ? "raise_exception" : Str(args[0](s))); };
        if (n == "range")
          return [args](Scope& s) {
            json r = json::array();
            const int64_t n2 = args.empty() ? 0 : Int(args[0](s), "range's argument");
            // A template renders one conversation: a range this long is a mistake or an attack.
            if (n2 > kMaxRange) throw Error(absl::StrCat("range(", n2, ") is longer than ", kMaxRange));
            for (int64_t i = 0; i < n2; ++i) r.push_back(i);
            return r;
          };
        throw Error(absl::StrCat("unknown function '", n, "'"));
      }
      return [n](Scope& s) { return s.Get(n); };
    }
    throw Error(absl::StrCat("unexpected '", t.text, "'"));
  }

  std::vector<Tok> t_;
  size_t p_ = 0;
};

}  // namespace

// ---- Statements -------------------------------------------------------------------------------

struct ChatTemplate::Node {
  enum Kind { kText, kOutput, kIf, kFor, kSet, kBlock } kind = kBlock;
  std::string text;                                   // kText
  Expr expr;                                          // kOutput, kSet value, kFor iterable
  Expr filter;                                        // kFor: the optional `if` clause
  std::vector<std::pair<Expr, std::unique_ptr<Node>>> branches;  // kIf (null cond = else)
  std::vector<std::string> names;                     // kFor loop variables, kSet target
  std::vector<std::unique_ptr<Node>> children;        // kBlock
  std::unique_ptr<Node> body;                         // kFor

  // The loop variables for one item: `for a, b in pairs` unpacks, and the counts must agree.
  json Bind(const json& item) const {
    json frame = json::object();
    if (names.size() == 1) {
      frame[names[0]] = item;
      return frame;
    }
    const json parts = ToList(item);  // Python unpacks any iterable: a mapping gives its keys
    if (parts.size() != names.size())
      throw Error(absl::StrCat("cannot unpack ", parts.size(), " values into ", names.size(), " loop variables"));
    for (size_t k = 0; k < names.size(); ++k) frame[names[k]] = parts[k];
    return frame;
  }

  void Render(Scope& s, std::string* out) const {
    switch (kind) {
      case kText: *out += text; break;
      case kOutput: *out += Str(expr(s)); break;
      case kBlock:
        for (const auto& c : children) c->Render(s, out);
        break;
      case kSet:
        if (names.size() == 2) {  // {% set ns.attr = v %}: the namespace where it was made
          json* holder = s.Holder(names[0]);
          if (holder == nullptr || !(*holder)[names[0]].is_object() || !(*holder)[names[0]].contains(kNamespaceKey))
            throw Error(absl::StrCat("'", names[0], "' is not a namespace"));
          (*holder)[names[0]][names[1]] = expr(s);
        } else {
          s.frames.back()[names[0]] = expr(s);
        }
        break;
      case kIf:
        for (const auto& [cond, block] : branches)
          if (!cond || Truthy(cond(s))) {
            block->Render(s, out);
            break;
          }
        break;
      case kFor: {
        json items = expr(s);
        if (IsUndefined(items)) break;  // Jinja iterates an undefined value as empty
        items = ToList(items);  // keys of a mapping, code points of a string; None is an error
        if (filter) {  // {% for x in xs if cond %}: loop.* count only the items kept
          json kept = json::array();
          for (const json& item : items) {
            s.frames.push_back(Bind(item));
            const bool keep = Truthy(filter(s));
            s.frames.pop_back();
            if (keep) kept.push_back(item);
          }
          items = std::move(kept);
        }
        const size_t n = items.size();
        for (size_t i = 0; i < n; ++i) {
          json frame = Bind(items[i]);
          frame["loop"] = {{"index", i + 1}, {"index0", i}, {"first", i == 0}, {"last", i + 1 == n}, {"length", n},
                           {"revindex", n - i}, {"revindex0", n - i - 1}};
          if (i > 0) frame["loop"]["previtem"] = items[i - 1];
          if (i + 1 < n) frame["loop"]["nextitem"] = items[i + 1];
          s.frames.push_back(std::move(frame));
          body->Render(s, out);
          // `set` inside a loop does not leak out (Jinja scoping), except namespace-free reads.
          s.frames.pop_back();
        }
        break;
      }
    }
  }
};

namespace {

struct Segment {
  enum Kind { kText, kExpr, kStmt } kind;
  std::string body;
};

// Splits the source into text, {{ }} and {% %} (comments dropped), applying '-' and HF's
// trim_blocks / lstrip_blocks.
std::vector<Segment> Split(const std::string& src) {
  std::vector<Segment> out;
  size_t i = 0;
  bool trim_next = false, block_newline = false;
  while (i < src.size()) {
    const size_t open = src.find('{', i);
    size_t at = open;
    while (at != std::string::npos && at + 1 < src.size() && src[at + 1] != '{' && src[at + 1] != '%' && src[at + 1] != '#')
      at = src.find('{', at + 1);
    std::string text = src.substr(i, at == std::string::npos ? std::string::npos : at - i);
    if (trim_next) text = Trim(text, true, false);
    if (block_newline && !text.empty() && text[0] == '\n') text.erase(0, 1);
    trim_next = block_newline = false;
    if (at == std::string::npos || at + 1 >= src.size()) {
      out.push_back({Segment::kText, text});
      break;
    }
    const char kind = src[at + 1];
    const std::string close = kind == '{' ? "}}" : kind == '%' ? "%}" : "#}";
    // The tag ends at the first close outside string literals ('}}' may sit inside one).
    size_t end = std::string::npos;
    for (size_t j = at + 2; j + 1 < src.size(); ++j) {
      if (kind != '#' && (src[j] == '\'' || src[j] == '"')) {
        const char q = src[j];
        for (++j; j < src.size() && src[j] != q; ++j)
          if (src[j] == '\\') ++j;
        if (j >= src.size()) throw Error("unterminated string in a tag");
        continue;
      }
      if (src.compare(j, 2, close) == 0) {
        end = j;
        break;
      }
    }
    if (end == std::string::npos) throw Error("unclosed tag");
    std::string body = src.substr(at + 2, end - at - 2);
    const bool strip_before = !body.empty() && body[0] == '-';
    if (strip_before) body.erase(0, 1);
    const bool strip_after = !body.empty() && body.back() == '-';  // "{%-%}": one '-', the first
    if (strip_after) body.pop_back();
    if (strip_before) {
      text = Trim(text, false, true);
    } else if (kind != '{') {  // lstrip_blocks: spaces from the line start up to a block tag
      const size_t nl = text.find_last_of('\n');
      const std::string tail = text.substr(nl == std::string::npos ? 0 : nl + 1);
      if (tail.find_first_not_of(" \t") == std::string::npos) text.erase(text.size() - tail.size());
    }
    out.push_back({Segment::kText, text});
    if (kind == '{') out.push_back({Segment::kExpr, body});
    if (kind == '%') out.push_back({Segment::kStmt, body});
    trim_next = strip_after;
    block_newline = kind != '{';  // trim_blocks
    i = end + 2;
  }
  return out;
}

class StmtParser {
 public:
  explicit StmtParser(std::vector<Segment> s) : s_(std::move(s)) {}
  std::unique_ptr<ChatTemplate::Node> ParseAll() {
    std::string stop;
    auto root = Block({}, &stop);
    if (!stop.empty()) throw Error(absl::StrCat("unexpected {% ", stop, " %}"));
    return root;
  }

 private:
  using Node = ChatTemplate::Node;
  static std::string FirstWord(const std::string& s) {
    const std::string t = Trim(s, true, true);
    return t.substr(0, t.find_first_of(" \t\n"));
  }
  // Parses until a statement whose first word is in `stops` (returned in *stop) or the end.
  std::unique_ptr<Node> Block(const std::vector<std::string>& stops, std::string* stop) {
    auto block = std::make_unique<Node>();
    block->kind = Node::kBlock;
    while (p_ < s_.size()) {
      const Segment& seg = s_[p_];
      if (seg.kind == Segment::kText) {
        auto n = std::make_unique<Node>();
        n->kind = Node::kText;
        n->text = seg.body;
        block->children.push_back(std::move(n));
        ++p_;
        continue;
      }
      if (seg.kind == Segment::kExpr) {
        auto n = std::make_unique<Node>();
        n->kind = Node::kOutput;
        n->expr = ParseExpr(seg.body);
        block->children.push_back(std::move(n));
        ++p_;
        continue;
      }
      const std::string word = FirstWord(seg.body);
      if (std::find(stops.begin(), stops.end(), word) != stops.end()) {
        *stop = word;
        return block;
      }
      ++p_;
      const std::string rest = Trim(Trim(seg.body, true, true).substr(word.size()), true, true);
      if (word == "if") {
        block->children.push_back(ParseIf(rest));
      } else if (word == "for") {
        block->children.push_back(ParseFor(rest));
      } else if (word == "set") {
        block->children.push_back(ParseSet(rest));
      } else {
        throw Error(absl::StrCat("unsupported statement {% ", word, " %}"));
      }
    }
    return block;
  }
  // {% if c %} ... {% elif c %} ... {% else %} ... {% endif %}, after its opening tag.
  std::unique_ptr<Node> ParseIf(const std::string& rest) {
    auto n = std::make_unique<Node>();
    n->kind = Node::kIf;
    Expr cond = ParseExpr(rest);
    for (;;) {
      std::string s;
      auto body = Block({"elif", "else", "endif"}, &s);
      n->branches.push_back({cond, std::move(body)});
      if (s.empty()) throw Error("missing {% endif %}");
      const std::string r = Trim(Trim(s_[p_].body, true, true).substr(s.size()), true, true);
      ++p_;
      if (s == "endif") break;
      cond = s == "elif" ? ParseExpr(r) : Expr();
    }
    return n;
  }
  // {% for a, b in expr %} ... {% endfor %}
  std::unique_ptr<Node> ParseFor(const std::string& rest) {
    auto n = std::make_unique<Node>();
    n->kind = Node::kFor;
    ExprParser ep(Lex(rest));
    do {
      n->names.push_back(ep.Name());
    } while (ep.Accept(","));
    ep.Expect("in");
    // The iterable stops before a loop filter's `if` (an inline if-else is not allowed there).
    n->expr = ep.ParseNoConditional();
    if (ep.Accept("if")) n->filter = ep.ParseNoConditional();
    if (ep.Peek().text == "recursive") throw Error("recursive loops are not supported");
    if (!ep.AtEnd()) throw Error(absl::StrCat("unsupported for clause: ", rest));
    std::string s;
    n->body = Block({"endfor"}, &s);
    if (s.empty()) throw Error("missing {% endfor %}");
    ++p_;
    return n;
  }
  // {% set name = expr %}
  static std::unique_ptr<Node> ParseSet(const std::string& rest) {
    auto n = std::make_unique<Node>();
    n->kind = Node::kSet;
    ExprParser ep(Lex(rest));
    n->names.push_back(ep.Name());
    if (ep.Accept(".")) n->names.push_back(ep.Name());  // a namespace attribute
    ep.Expect("=");
    n->expr = ep.Parse();
    if (!ep.AtEnd()) throw Error(absl::StrCat("unsupported set: ", rest));
    return n;
  }
  static Expr ParseExpr(const std::string& s) {
    ExprParser ep(Lex(s));
    Expr e = ep.Parse();
    if (!ep.AtEnd()) throw Error(absl::StrCat("unexpected '", ep.Peek().text, "' in '", s, "'"));
    return e;
  }
  std::vector<Segment> s_;
  size_t p_ = 0;
};

std::string TokenText(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return "";
}

}  // namespace

ChatTemplate::~ChatTemplate() = default;

absl::StatusOr<std::unique_ptr<ChatTemplate>> ChatTemplate::Parse(const std::string& source) {
  try {
    std::unique_ptr<ChatTemplate> t(new ChatTemplate());
    t->root_ = StmtParser(Split(source)).ParseAll();
    return t;
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("chat template: ", e.what()));
  }
}

absl::StatusOr<std::string> ChatTemplate::Render(const nlohmann::json& context) const {
  // nlohmann::json has already sorted each mapping's keys; the values are the same.
  return RenderOrdered(json::parse(context.dump()));
}

absl::StatusOr<std::string> ChatTemplate::RenderOrdered(const nlohmann::ordered_json& context) const {
  if (!context.is_object()) return absl::InvalidArgumentError("chat template: the context must be a JSON object");
  try {
    Scope s;
    s.frames.push_back(context);
    // As transformers' apply_chat_template: a message's keys whose value is null are dropped
    // (OpenAI clients send "content": null beside tool_calls; a template reading it would
    // print "None").
    json& frame = s.frames.back();
    if (frame.contains("messages") && frame["messages"].is_array())
      for (json& m : frame["messages"])
        if (m.is_object())
          for (auto it = m.begin(); it != m.end();) it = it.value().is_null() ? m.erase(it) : std::next(it);
    std::string out;
    root_->Render(s, &out);
    return out;
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("chat template: ", e.what()));
  }
}

absl::StatusOr<ModelChatTemplate> LoadChatTemplate(const std::string& dir) {
  ModelChatTemplate m;
  json cfg;
  std::string where = dir + "/tokenizer_config.json";
  if (IsGgufPath(dir)) {  // a GGUF model: tokenizer.chat_template and its special tokens
    ASSIGN_OR_RETURN(const GgufModel gguf, GgufModel::Open(dir));
    ASSIGN_OR_RETURN(const GgufTokenizerFiles files, TokenizerFilesFromGguf(gguf));
    cfg = json::parse(files.tokenizer_config.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    where = gguf.path();
  } else {
    std::ifstream f(dir + "/tokenizer_config.json");
    if (!f) return m;
    cfg = json::parse(f, nullptr, false);
  }
  if (cfg.is_discarded() || !cfg.is_object())
    return absl::InvalidArgumentError(absl::StrCat(dir, "/tokenizer_config.json: not a JSON object"));
  m.bos_token = TokenText(cfg.value("bos_token", json()));
  m.eos_token = TokenText(cfg.value("eos_token", json()));
  json tmpl = cfg.value("chat_template", json());
  if (tmpl.is_array()) {  // named templates: take "default"
    json chosen;
    for (const json& t : tmpl)
      if (t.value("name", "") == "default") chosen = t.value("template", json());
    tmpl = chosen;
  }
  if (!tmpl.is_string()) return m;
  auto parsed = ChatTemplate::Parse(tmpl.get<std::string>());
  if (!parsed.ok())
    return absl::InvalidArgumentError(absl::StrCat(where, ": ", parsed.status().message()));
  m.tmpl = std::move(*parsed);
  m.source = tmpl.get<std::string>();
  return m;
}

}  // namespace strata
