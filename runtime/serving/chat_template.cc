#include "runtime/serving/chat_template.h"

#include <cctype>
#include <climits>
#include <cmath>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <vector>

#include "absl/strings/str_cat.h"

namespace strata {
namespace {

using json = nlohmann::json;

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
  if (v.is_string() || v.is_array() || v.is_object()) return !v.empty();
  return true;
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

std::string PyJson(const json& v, int indent, int depth);

std::string Str(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (IsUndefined(v)) return "";
  if (v.is_null()) return "None";
  if (v.is_boolean()) return v.get<bool>() ? "True" : "False";
  if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
  return v.dump();
}

// Python's json.dumps(v, sort_keys=True, indent=...) with jinja2's HTML-safe escapes of < > & '
// (jinja2's tojson filter): ASCII only, non-ASCII as \\uXXXX (surrogate pairs above U+FFFF).
void PyString(const std::string& s, std::string* out) {
  static const char* hex = "0123456789abcdef";
  auto u = [&](uint32_t c) {
    *out += "\\u";
    for (int k = 3; k >= 0; --k) *out += hex[(c >> (4 * k)) & 15];
  };
  *out += '"';
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    uint32_t cp = c;
    size_t len = 1;
    if (c >= 0xF0) { cp = c & 7; len = 4; }
    else if (c >= 0xE0) { cp = c & 15; len = 3; }
    else if (c >= 0xC0) { cp = c & 31; len = 2; }
    for (size_t k = 1; k < len && i + k < s.size(); ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 63);
    i += len;
    if (cp == '"') *out += "\\\"";
    else if (cp == '\\') *out += "\\\\";
    else if (cp == '\n') *out += "\\n";
    else if (cp == '\r') *out += "\\r";
    else if (cp == '\t') *out += "\\t";
    else if (cp == '\b') *out += "\\b";
    else if (cp == '\f') *out += "\\f";
    else if (cp < 0x20 || cp == '<' || cp == '>' || cp == '&' || cp == '\'' || cp > 0x7f) {
      if (cp >= 0x10000) {
        cp -= 0x10000;
        u(0xD800 + (cp >> 10));
        u(0xDC00 + (cp & 0x3ff));
      } else {
        u(cp);
      }
    } else {
      *out += static_cast<char>(cp);
    }
  }
  *out += '"';
}

std::string PyJson(const json& v, int indent, int depth) {
  const std::string nl = indent >= 0 ? "\n" + std::string(static_cast<size_t>(indent) * (depth + 1), ' ') : "";
  const std::string end = indent >= 0 ? "\n" + std::string(static_cast<size_t>(indent) * depth, ' ') : "";
  const std::string item_sep = indent >= 0 ? "," : ", ";
  std::string out;
  if (v.is_object()) {
    std::vector<std::string> keys;
    for (auto& [k, x] : v.items())
      if (k != kNamespaceKey) keys.push_back(k);
    if (keys.empty()) return "{}";
    std::sort(keys.begin(), keys.end());
    out = "{";
    for (size_t i = 0; i < keys.size(); ++i) {
      out += (i ? item_sep : "") + nl;
      PyString(keys[i], &out);
      out += ": " + PyJson(v[keys[i]], indent, depth + 1);
    }
    return out + end + "}";
  }
  if (v.is_array()) {
    if (v.empty()) return "[]";
    out = "[";
    for (size_t i = 0; i < v.size(); ++i) out += (i ? item_sep : "") + nl + PyJson(v[i], indent, depth + 1);
    return out + end + "]";
  }
  if (v.is_string()) {
    PyString(v.get<std::string>(), &out);
    return out;
  }
  if (v.is_null() || IsUndefined(v)) return "null";
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  if (v.is_number_float()) {
    const double d = v.get<double>();
    std::string r = json(d).dump();
    if (r.find_first_of(".eE") == std::string::npos && std::isfinite(d)) r += ".0";  // Python repr
    return r;
  }
  return v.dump();
}

std::string Trim(const std::string& s, bool left, bool right, const std::string& chars = " \t\n\r") {
  size_t a = 0, b = s.size();
  if (left)
    while (a < b && chars.find(s[a]) != std::string::npos) ++a;
  if (right)
    while (b > a && chars.find(s[b - 1]) != std::string::npos) --b;
  return s.substr(a, b - a);
}

class ExprParser {
 public:
  explicit ExprParser(std::vector<Tok> t) : t_(std::move(t)) {}
  Expr Parse() { return Conditional(); }
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
        a = [a, neg, test](Scope& s) {
          json v = a(s);
          bool r;
          if (test == "defined") r = !IsUndefined(v);
          else if (test == "undefined") r = IsUndefined(v);
          else if (test == "none") r = v.is_null();
          else if (test == "string") r = v.is_string();
          else if (test == "mapping") r = v.is_object();
          else if (test == "iterable" || test == "sequence") r = v.is_array() || v.is_string();
          else if (test == "number") r = v.is_number();
          else if (test == "boolean") r = v.is_boolean();
          else throw Error(absl::StrCat("unknown test 'is ", test, "'"));
          return json(neg ? !r : r);
        };
        continue;
      }
      if (op.empty()) return a;
      Expr b = Concat();
      a = [a, b, op](Scope& s) {
        json x = a(s), y = b(s);
        if (op == "==") return json(x == y);
        if (op == "!=") return json(x != y);
        if (op == "in" || op == "not in") {
          bool in = false;
          if (y.is_string()) in = y.get<std::string>().find(Str(x)) != std::string::npos;
          else if (y.is_array()) in = std::find(y.begin(), y.end(), x) != y.end();
          else if (y.is_object()) in = x.is_string() && y.contains(x.get<std::string>());
          return json(op == "in" ? in : !in);
        }
        if (op == "<") return json(x < y);
        if (op == ">") return json(x > y);
        if (op == "<=") return json(x <= y);
        return json(x >= y);
      };
    }
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
            return v.is_object() && v.contains(name) ? v[name] : Undefined();
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
            const int64_t n = v.is_array() || v.is_string() ? static_cast<int64_t>(v.size()) : 0;
            auto clamp = [n](int64_t i) { return std::max<int64_t>(0, std::min(n, i < 0 ? n + i : i)); };
            const int64_t b = lo ? clamp(Int(lo(s), "a slice bound")) : 0,
                          e = hi ? clamp(Int(hi(s), "a slice bound")) : n;
            if (v.is_string()) return json(v.get<std::string>().substr(b, std::max<int64_t>(0, e - b)));
            json r = json::array();
            for (int64_t i = b; i < e; ++i) r.push_back(v[i]);
            return r;
          };
        } else {
          a = [a, lo](Scope& s) {
            json v = a(s), k = lo(s);
            if (v.is_object() && k.is_string())
              return v.contains(k.get<std::string>()) ? v[k.get<std::string>()] : Undefined();
            if ((v.is_array() || v.is_string()) && k.is_number_integer()) {
              int64_t i = k.get<int64_t>();
              if (i < 0) i += static_cast<int64_t>(v.size());
              if (i < 0 || i >= static_cast<int64_t>(v.size())) return Undefined();
              return v.is_string() ? json(v.get<std::string>().substr(i, 1)) : v[i];
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
  // The items of `v` whose attribute `args[0]` passes the test `args[1]` (args[2] its operand);
  // with one argument, those whose attribute is true (Jinja2's selectattr / rejectattr).
  static json SelectAttr(const json& v, const std::vector<std::pair<std::string, Expr>>& args, Scope& s, bool keep) {
    const std::string attr = Str(Arg(args, 0, "attribute", s));
    const json test = Arg(args, 1, "test", s), operand = Arg(args, 2, "value", s);
    json out = json::array();
    if (!v.is_array()) return out;
    for (const json& item : v) {
      const json x = item.is_object() && item.contains(attr) ? item[attr] : Undefined();
      bool pass;
      const std::string t = IsUndefined(test) ? "" : Str(test);
      if (t.empty()) pass = Truthy(x);
      else if (t == "equalto" || t == "==" || t == "eq") pass = !IsUndefined(x) && x == operand;
      else if (t == "ne" || t == "!=") pass = IsUndefined(x) || x != operand;
      else if (t == "defined") pass = !IsUndefined(x);
      else if (t == "undefined") pass = IsUndefined(x);
      else if (t == "none") pass = x.is_null();
      else if (t == "string") pass = x.is_string();
      else throw Error(absl::StrCat("unsupported test '", t, "' in selectattr"));
      if (pass == keep) out.push_back(item);
    }
    return out;
  }
  static json Filter(const std::string& f, const json& v, const std::vector<std::pair<std::string, Expr>>& args,
                     Scope& s) {
    if (f == "trim") return json(Trim(Str(v), true, true));
    if (f == "length" || f == "count") return json(v.is_null() || IsUndefined(v) ? 0 : v.size());
    if (f == "upper" || f == "lower") {
      std::string t = Str(v);
      for (char& c : t) c = static_cast<char>(f == "upper" ? std::toupper(c) : std::tolower(c));
      return json(t);
    }
    if (f == "tojson") {
      const json indent = Arg(args, 0, "indent", s);
      if (indent.is_number_integer() && (indent.get<int64_t>() < 0 || indent.get<int64_t>() > 64))
        throw Error("tojson's indent must be between 0 and 64");
      return json(PyJson(v, indent.is_number_integer() ? indent.get<int>() : -1, 0));
    }
    if (f == "string") return json(Str(v));
    if (f == "default" || f == "d") {
      const bool boolean = Truthy(Arg(args, 1, "boolean", s));
      return IsUndefined(v) || (boolean && !Truthy(v)) ? Arg(args, 0, "default_value", s) : v;
    }
    if (f == "list") return v.is_array() ? v : IsUndefined(v) ? json::array() : json::array({v});
    if (f == "first") return v.is_array() && !v.empty() ? v.front() : Undefined();
    if (f == "last") return v.is_array() && !v.empty() ? v.back() : Undefined();
    if (f == "join") {
      const json sep = Arg(args, 0, "d", s);
      std::string out;
      if (v.is_array())
        for (size_t i = 0; i < v.size(); ++i) out += (i ? (IsUndefined(sep) ? "" : Str(sep)) : "") + Str(v[i]);
      return json(out);
    }
    if (f == "selectattr" || f == "rejectattr") return SelectAttr(v, args, s, f == "selectattr");
    if (f == "map") {
      json out = json::array();
      if (!v.is_array()) return out;
      const json attr = Arg(args, 99, "attribute", s);
      if (!IsUndefined(attr)) {
        for (const json& item : v)
          out.push_back(item.is_object() && item.contains(Str(attr)) ? item[Str(attr)] : Undefined());
        return out;
      }
      const std::string filter = Str(Arg(args, 0, "filter", s));
      for (const json& item : v) out.push_back(Filter(filter, item, {}, s));
      return out;
    }
    throw Error(absl::StrCat("unknown filter '", f, "'"));
  }
  Expr Method(Expr obj, const std::string& name, std::vector<Expr> args) {
    return [obj, name, args](Scope& s) {
      json v = obj(s);
      std::vector<json> a;
      for (const Expr& e : args) a.push_back(e(s));
      if (name == "items" && v.is_object()) {
        json r = json::array();
        for (auto& [k, x] : v.items()) r.push_back(json::array({k, x}));
        return r;
      }
      if (name == "get" && v.is_object() && !a.empty())
        return v.contains(Str(a[0])) ? v[Str(a[0])] : (a.size() > 1 ? a[1] : json());
      if (!v.is_string()) throw Error(absl::StrCat("method '", name, "' on a non-string"));
      const std::string t = v.get<std::string>();
      const std::string chars = a.empty() ? " \t\n\r" : Str(a[0]);
      if (name == "strip") return json(Trim(t, true, true, chars));
      if (name == "lstrip") return json(Trim(t, true, false, chars));
      if (name == "rstrip") return json(Trim(t, false, true, chars));
      if (name == "upper" || name == "lower") {
        std::string u = t;
        for (char& c : u) c = static_cast<char>(name == "upper" ? std::toupper(c) : std::tolower(c));
        return json(u);
      }
      if (name == "startswith" && !a.empty()) return json(t.rfind(Str(a[0]), 0) == 0);
      if (name == "endswith" && !a.empty()) {
        const std::string e = Str(a[0]);
        return json(t.size() >= e.size() && t.compare(t.size() - e.size(), e.size(), e) == 0);
      }
      if (name == "split") {
        const std::string sep = a.empty() ? " " : Str(a[0]);
        json r = json::array();
        size_t at = 0;
        for (size_t f; (f = t.find(sep, at)) != std::string::npos; at = f + sep.size()) r.push_back(t.substr(at, f - at));
        r.push_back(t.substr(at));
        return r;
      }
      throw Error(absl::StrCat("unknown method '", name, "'"));
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
  std::vector<std::pair<Expr, std::unique_ptr<Node>>> branches;  // kIf (null cond = else)
  std::vector<std::string> names;                     // kFor loop variables, kSet target
  std::vector<std::unique_ptr<Node>> children;        // kBlock
  std::unique_ptr<Node> body;                         // kFor

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
        if (items.is_object()) {
          json keys = json::array();
          for (auto& [k, v] : items.items()) keys.push_back(k);
          items = keys;
        }
        if (!items.is_array()) break;
        const size_t n = items.size();
        for (size_t i = 0; i < n; ++i) {
          json frame = json::object();
          if (names.size() == 1) {
            frame[names[0]] = items[i];
          } else {
            for (size_t k = 0; k < names.size(); ++k) frame[names[k]] = items[i].is_array() && k < items[i].size() ? items[i][k] : json();
          }
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
    const size_t end = src.find(close, at + 2);
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
    n->expr = ep.Parse();
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

absl::StatusOr<std::string> ChatTemplate::Render(const json& context) const {
  try {
    Scope s;
    s.frames.push_back(context);
    std::string out;
    root_->Render(s, &out);
    return out;
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("chat template: ", e.what()));
  }
}

absl::StatusOr<ModelChatTemplate> LoadChatTemplate(const std::string& dir) {
  ModelChatTemplate m;
  std::ifstream f(dir + "/tokenizer_config.json");
  if (!f) return m;
  json cfg = json::parse(f, nullptr, false);
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
    return absl::InvalidArgumentError(absl::StrCat(dir, "/tokenizer_config.json: ", parsed.status().message()));
  m.tmpl = std::move(*parsed);
  return m;
}

}  // namespace strata
