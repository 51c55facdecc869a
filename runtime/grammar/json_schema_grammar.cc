#include "runtime/grammar/json_schema_grammar.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "runtime/grammar/regex_grammar.h"

namespace strata::grammar {
namespace {

using Json = nlohmann::ordered_json;

constexpr int kMaxSchemaDepth = 64;
constexpr int kMaxJsonDepth = 1000;  // of the schema document itself (enum values included)
constexpr int64_t kMaxCount = 10000;
constexpr size_t kMaxPrefixItems = 1000;
// The largest magnitude of the integer part: 19 digits.
constexpr uint64_t kMaxMagnitude = 9999999999999999999ULL;

using Int = __int128;  // integer bounds: the grammar's range is +-(10^19 - 1), past int64

// ---------------------------------------------------------------------------------------------
// Small expression helpers.

Expr Nothing() { return Choice({}); }
Expr Empty() { return Sequence({}); }
Expr Range(char lo, char hi) { return CharClass({{static_cast<uint32_t>(lo), static_cast<uint32_t>(hi)}}); }
Expr Digit() { return Range('0', '9'); }
Expr Digits(int count) { return count == 0 ? Empty() : Repeat(Digit(), count, count); }

// A sequence without its empty parts (keeps printed grammars readable).
Expr Cat(std::vector<Expr> items) {
  std::vector<Expr> kept;
  for (Expr& e : items) {
    const bool empty = (e.kind == Expr::Kind::kSequence && e.items.empty()) ||
                       (e.kind == Expr::Kind::kBytes && e.bytes.empty()) ||
                       (e.kind == Expr::Kind::kRepeat && e.max == 0);
    if (!empty) kept.push_back(std::move(e));
  }
  return Sequence(std::move(kept));
}

// The decimal digits of a value, no leading zeros.
std::string DecimalString(uint64_t v) { return std::to_string(v); }

uint64_t Pow10(int n) {
  uint64_t v = 1;
  for (int i = 0; i < n; ++i) v *= 10;
  return v;
}

// ---------------------------------------------------------------------------------------------
// Integer ranges as digit strings (the standard construction: split by length, then by the first
// digit where the two ends differ).

// Digit strings of the same length between `lo` and `hi` (lo <= hi), leading zeros allowed.
Expr SameLengthRange(const std::string& lo, const std::string& hi) {
  if (lo == hi) return Bytes(lo);
  const size_t rest = lo.size() - 1;
  if (lo[0] == hi[0]) return Cat({Bytes(lo.substr(0, 1)), SameLengthRange(lo.substr(1), hi.substr(1))});
  const bool lo_rest_zeros = lo.find_first_not_of('0', 1) == std::string::npos;
  const bool hi_rest_nines = hi.find_first_not_of('9', 1) == std::string::npos;
  std::vector<Expr> alternatives;
  char first_free = lo[0];  // first digits whose rest can be anything
  if (!lo_rest_zeros) {
    alternatives.push_back(
        Cat({Bytes(lo.substr(0, 1)), SameLengthRange(lo.substr(1), std::string(rest, '9'))}));
    ++first_free;
  }
  const char last_free = hi_rest_nines ? hi[0] : static_cast<char>(hi[0] - 1);
  if (first_free <= last_free) alternatives.push_back(Cat({Range(first_free, last_free), Digits(rest)}));
  if (!hi_rest_nines) {
    alternatives.push_back(
        Cat({Bytes(hi.substr(0, 1)), SameLengthRange(std::string(rest, '0'), hi.substr(1))}));
  }
  return Choice(std::move(alternatives));
}

// The decimal forms (no leading zeros) of the integers in [lo, hi], lo <= hi.
Expr UnsignedRange(uint64_t lo, uint64_t hi) {
  std::vector<Expr> alternatives;
  if (lo == 0) {
    alternatives.push_back(Bytes("0"));
    if (hi == 0) return Bytes("0");
    lo = 1;
  }
  const int lo_len = static_cast<int>(DecimalString(lo).size());
  const int hi_len = static_cast<int>(DecimalString(hi).size());
  int full_from = -1;  // a run of lengths whose whole range is inside [lo, hi]
  auto flush_full = [&](int to) {
    if (full_from < 0) return;
    alternatives.push_back(Cat({Range('1', '9'), Repeat(Digit(), full_from - 1, to - 1)}));
    full_from = -1;
  };
  for (int len = lo_len; len <= hi_len; ++len) {
    const uint64_t first = Pow10(len - 1);
    const uint64_t last = len == 19 ? kMaxMagnitude : Pow10(len) - 1;
    const uint64_t a = std::max(lo, first), b = std::min(hi, last);
    if (a == first && b == last) {
      if (full_from < 0) full_from = len;
      continue;
    }
    flush_full(len - 1);
    alternatives.push_back(SameLengthRange(DecimalString(a), DecimalString(b)));
  }
  flush_full(hi_len);
  return Choice(std::move(alternatives));
}

// The integers in [lo, hi] (lo <= hi, both within +-kMaxMagnitude); "-0" never.
Expr IntegerRange(Int lo, Int hi) {
  std::vector<Expr> alternatives;
  if (lo < 0) {
    const Int neg_hi = std::min<Int>(hi, -1);
    alternatives.push_back(
        Sequence({Bytes("-"), UnsignedRange(static_cast<uint64_t>(-neg_hi), static_cast<uint64_t>(-lo))}));
  }
  if (hi >= 0) alternatives.push_back(UnsignedRange(static_cast<uint64_t>(std::max<Int>(lo, 0)), static_cast<uint64_t>(hi)));
  return Choice(std::move(alternatives));
}

// ---------------------------------------------------------------------------------------------
// Fixed pieces of JSON.

Expr Fraction() { return Sequence({Bytes("."), Repeat(Digit(), 1, 16)}); }
// A fraction that is not zero (ends in a non-zero digit), for bounded numbers.
Expr NonZeroFraction() { return Sequence({Bytes("."), Repeat(Digit(), 0, 15), Range('1', '9')}); }
Expr Exponent() {
  return Sequence({CharClass({{'E', 'E'}, {'e', 'e'}}), Optional(CharClass({{'+', '+'}, {'-', '-'}})),
                   Repeat(Digit(), 1, 3)});
}
Expr UnsignedIntegerPart() {
  return Choice({Bytes("0"), Sequence({Range('1', '9'), Repeat(Digit(), 0, 18)})});
}
Expr IntegerExpr() { return Sequence({Optional(Bytes("-")), UnsignedIntegerPart()}); }
Expr NumberExpr() { return Sequence({IntegerExpr(), Optional(Fraction()), Optional(Exponent())}); }

Expr StringChar() {
  Expr plain = CharClass({{0, 0x1F}, {'"', '"'}, {'\\', '\\'}}, /*negated=*/true);
  Expr hex = CharClass({{'0', '9'}, {'A', 'F'}, {'a', 'f'}});
  Expr escape = Sequence({Bytes("\\"), Choice({CharClass({{'"', '"'}, {'/', '/'}, {'\\', '\\'}, {'b', 'b'},
                                                          {'f', 'f'}, {'n', 'n'}, {'r', 'r'}, {'t', 't'}}),
                                               Sequence({Bytes("u"), Repeat(hex, 4, 4)})})});
  return Choice({std::move(plain), std::move(escape)});
}
Expr StringExpr() { return Sequence({Bytes("\""), Star(StringChar()), Bytes("\"")}); }

std::string Dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

// ---------------------------------------------------------------------------------------------
// Keywords.

const std::set<std::string>& Annotations() {
  static const std::set<std::string> k = {"title",   "description", "default",  "examples",
                                          "$schema", "$id",         "$comment", "deprecated",
                                          "readOnly", "writeOnly",  "strict"};
  return k;
}
// Keywords that hold schemas for $ref, not constraints.
bool IsDefinitions(const std::string& k) { return k == "$defs" || k == "definitions"; }

const std::set<std::string>& ObjectKeywords() {
  static const std::set<std::string> k = {"properties", "required", "additionalProperties"};
  return k;
}
const std::set<std::string>& ArrayKeywords() {
  static const std::set<std::string> k = {"items", "prefixItems", "minItems", "maxItems"};
  return k;
}
const std::set<std::string>& StringKeywords() {
  static const std::set<std::string> k = {"pattern", "minLength", "maxLength", "format"};
  return k;
}
const std::set<std::string>& NumberKeywords() {
  static const std::set<std::string> k = {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"};
  return k;
}
const std::set<std::string>& OtherKeywords() {
  static const std::set<std::string> k = {"type", "enum", "const", "anyOf", "oneOf", "allOf", "$ref"};
  return k;
}

bool IsKnownKeyword(const std::string& k) {
  return Annotations().count(k) || IsDefinitions(k) || ObjectKeywords().count(k) || ArrayKeywords().count(k) ||
         StringKeywords().count(k) || NumberKeywords().count(k) || OtherKeywords().count(k);
}

// A JSON pointer step, escaped (RFC 6901).
std::string Child(const std::string& pointer, const std::string& key) {
  std::string escaped;
  for (char c : key) {
    if (c == '~') {
      escaped += "~0";
    } else if (c == '/') {
      escaped += "~1";
    } else {
      escaped += c;
    }
  }
  return pointer + "/" + escaped;
}
std::string Child(const std::string& pointer, size_t index) { return pointer + "/" + std::to_string(index); }
std::string Where(const std::string& pointer) { return pointer.empty() ? "/" : pointer; }

absl::Status Invalid(const std::string& pointer, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrFormat("invalid JSON schema at %s: %s", Where(pointer), what));
}

// Whether `j` nests deeper than `limit` (stops looking there, so the stack stays small).
template <typename J>
bool DeeperThan(const J& j, int limit) {
  if (!j.is_structured()) return false;
  if (limit <= 0) return true;
  for (const auto& child : j) {
    if (DeeperThan(child, limit - 1)) return true;
  }
  return false;
}

bool IsIntegral(const Json& v) {
  if (v.is_number_integer()) return true;  // signed and unsigned
  if (!v.is_number_float()) return false;
  const double d = v.get<double>();
  return std::isfinite(d) && std::floor(d) == d;
}

long double NumberValue(const Json& v) {
  if (v.is_number_unsigned()) return static_cast<long double>(v.get<uint64_t>());
  if (v.is_number_integer()) return static_cast<long double>(v.get<int64_t>());
  return static_cast<long double>(v.get<double>());
}

// Whether `v` has JSON schema type `type`.
bool HasType(const Json& v, const std::string& type) {
  if (type == "null") return v.is_null();
  if (type == "boolean") return v.is_boolean();
  if (type == "string") return v.is_string();
  if (type == "number") return v.is_number();
  if (type == "integer") return v.is_number() && IsIntegral(v);
  if (type == "array") return v.is_array();
  if (type == "object") return v.is_object();
  return false;
}

const std::vector<std::string>& AllTypes() {
  static const std::vector<std::string> k = {"object", "array", "string", "integer", "number", "boolean", "null"};
  return k;
}

// A lower or upper bound on a number.
struct Bound {
  bool present = false;
  long double value = 0;
  bool exclusive = false;
};

Int ClampToMagnitude(long double v) {
  const long double m = static_cast<long double>(kMaxMagnitude);
  if (v > m) return static_cast<Int>(kMaxMagnitude) + 1;  // past the grammar's range
  if (v < -m) return -static_cast<Int>(kMaxMagnitude) - 1;
  return static_cast<Int>(v);
}

// The smallest integer the lower bound allows, and the largest the upper bound allows.
Int LowestInteger(const Bound& lo) {
  if (!lo.present) return -static_cast<Int>(kMaxMagnitude);
  return ClampToMagnitude(lo.exclusive ? std::floor(lo.value) + 1 : std::ceil(lo.value));
}
Int HighestInteger(const Bound& hi) {
  if (!hi.present) return static_cast<Int>(kMaxMagnitude);
  return ClampToMagnitude(hi.exclusive ? std::ceil(hi.value) - 1 : std::floor(hi.value));
}

// ---------------------------------------------------------------------------------------------
// Left recursion: a rule that can reach itself without reading a byte cannot be compiled.

class LeftRecursionCheck {
 public:
  explicit LeftRecursionCheck(const Grammar& g) : g_(g), nullable_(g.rules.size(), false) {
    // Nullable rules: iterate to a fixed point.
    for (bool changed = true; changed;) {
      changed = false;
      for (size_t r = 0; r < g.rules.size(); ++r) {
        if (!nullable_[r] && Nullable(g.rules[r].body)) nullable_[r] = changed = true;
      }
    }
  }

  // A rule on a left-recursive cycle, or -1.
  int FindCycle() {
    std::vector<int> state(g_.rules.size(), 0);  // 0 new, 1 on the path, 2 done
    std::function<int(int)> visit = [&](int r) -> int {
      state[r] = 1;
      std::set<int> next;
      LeftRefs(g_.rules[r].body, &next);
      for (int n : next) {
        if (n < 0 || n >= static_cast<int>(state.size())) continue;
        if (state[n] == 1) return n;
        if (state[n] == 0) {
          const int found = visit(n);
          if (found >= 0) return found;
        }
      }
      state[r] = 2;
      return -1;
    };
    for (size_t r = 0; r < g_.rules.size(); ++r) {
      if (state[r] != 0) continue;
      const int found = visit(static_cast<int>(r));
      if (found >= 0) return found;
    }
    return -1;
  }

 private:
  bool Nullable(const Expr& e) const {
    switch (e.kind) {
      case Expr::Kind::kBytes: return e.bytes.empty();
      case Expr::Kind::kCharClass: return false;
      case Expr::Kind::kRuleRef: return e.rule >= 0 && e.rule < static_cast<int>(nullable_.size()) && nullable_[e.rule];
      case Expr::Kind::kSequence:
        return std::all_of(e.items.begin(), e.items.end(), [&](const Expr& i) { return Nullable(i); });
      case Expr::Kind::kChoice:
        return std::any_of(e.items.begin(), e.items.end(), [&](const Expr& i) { return Nullable(i); });
      case Expr::Kind::kRepeat: return e.min == 0 || Nullable(e.items[0]);
    }
    return false;
  }

  // The rules `e` can enter before reading a byte.
  void LeftRefs(const Expr& e, std::set<int>* out) const {
    switch (e.kind) {
      case Expr::Kind::kBytes:
      case Expr::Kind::kCharClass: return;
      case Expr::Kind::kRuleRef: out->insert(e.rule); return;
      case Expr::Kind::kSequence:
        for (const Expr& i : e.items) {
          LeftRefs(i, out);
          if (!Nullable(i)) return;
        }
        return;
      case Expr::Kind::kChoice:
        for (const Expr& i : e.items) LeftRefs(i, out);
        return;
      case Expr::Kind::kRepeat:
        if (e.max != 0) LeftRefs(e.items[0], out);
        return;
    }
  }

  const Grammar& g_;
  std::vector<bool> nullable_;
};

// ---------------------------------------------------------------------------------------------
// The converter.

class Converter {
 public:
  Converter(const Json& root, const JsonSchemaOptions& o) : root_(root), o_(o) {}

  absl::StatusOr<Grammar> Run() {
    if (DeeperThan(root_, kMaxJsonDepth)) {
      return Invalid("", absl::StrFormat("the schema document nests deeper than %d levels", kMaxJsonDepth));
    }
    if (root_.is_boolean() && !root_.get<bool>()) return Invalid("", "the schema false matches nothing");
    // "#" refers to the root schema's value (without the surrounding whitespace).
    const int value_rule = g_.AddRule("root_value");
    refs_["#"] = value_rule;
    absl::StatusOr<Expr> body = Convert(root_, "", 0);
    if (!body.ok()) return body.status();
    g_.rules[value_rule].body = *std::move(body);
    g_.root = g_.AddRule("root");
    g_.rules[g_.root].body = Sequence({Ws(), RuleRef(value_rule), Ws()});
    const int cycle = LeftRecursionCheck(g_).FindCycle();
    if (cycle >= 0) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "invalid JSON schema: \"%s\" refers to itself without reading any input (left recursion)",
          g_.rules[cycle].name));
    }
    return std::move(g_);
  }

  Grammar AnyObject() {
    const int object = AnyObjectRule();
    g_.root = g_.AddRule("root");
    g_.rules[g_.root].body = Sequence({Ws(), RuleRef(object), Ws()});
    return std::move(g_);
  }

 private:
  // ---- Whitespace and separators.
  Expr Ws() const {
    if (o_.max_whitespace == 0) return Empty();
    return Repeat(CharClass({{'\t', '\n'}, {' ', ' '}}), 0, o_.max_whitespace < 0 ? -1 : o_.max_whitespace);
  }
  Expr Comma() const { return Sequence({Ws(), Bytes(","), Ws()}); }
  Expr Member(Expr key, Expr value) const {
    return Sequence({std::move(key), Ws(), Bytes(":"), Ws(), std::move(value)});
  }

  // ---- Any JSON value: three recursive rules, built once.
  int AnyValueRule() {
    if (any_value_ >= 0) return any_value_;
    any_value_ = g_.AddRule("value");
    const int object = AnyObjectRule();
    const int array = g_.AddRule("array");
    Expr value = Choice({RuleRef(object), RuleRef(array), StringExpr(), NumberExpr(), Bytes("true"),
                         Bytes("false"), Bytes("null")});
    g_.rules[any_value_].body = std::move(value);
    Expr items = Sequence({RuleRef(any_value_), Star(Sequence({Comma(), RuleRef(any_value_)})), Ws()});
    g_.rules[array].body = Sequence({Bytes("["), Ws(), Optional(std::move(items)), Bytes("]")});
    return any_value_;
  }
  int AnyObjectRule() {
    if (any_object_ >= 0) return any_object_;
    any_object_ = g_.AddRule("object");
    const int value = AnyValueRule();
    Expr member = Member(StringExpr(), RuleRef(value));
    Expr members = Sequence({member, Star(Sequence({Comma(), member})), Ws()});
    g_.rules[any_object_].body = Sequence({Bytes("{"), Ws(), Optional(std::move(members)), Bytes("}")});
    return any_object_;
  }
  Expr AnyValue() { return RuleRef(AnyValueRule()); }

  // `e` where it will be written more than once: a helper rule, so that nested schemas grow the
  // grammar linearly instead of doubling it per level (the compiler inlines it again).
  Expr Share(Expr e, const std::string& name) {
    const bool small = e.kind == Expr::Kind::kBytes || e.kind == Expr::Kind::kCharClass ||
                       e.kind == Expr::Kind::kRuleRef || e.items.empty();
    if (small) return e;
    const int rule = g_.AddRule(name);
    g_.rules[rule].body = std::move(e);
    return RuleRef(rule);
  }

  // ---- Errors.
  static absl::Status Unsupported(const std::string& keyword, const std::string& pointer) {
    return absl::InvalidArgumentError(
        absl::StrFormat("unsupported JSON schema keyword \"%s\" at %s", keyword, Where(pointer)));
  }

  // The first keyword of `s` that is not an annotation, a definitions holder or in `allowed`.
  static std::string FirstOtherKeyword(const Json& s, const std::set<std::string>& allowed) {
    for (const auto& [k, v] : s.items()) {
      if (!Annotations().count(k) && !IsDefinitions(k) && !allowed.count(k)) return k;
    }
    return "";
  }

  // ---- Schemas.
  absl::StatusOr<Expr> Convert(const Json& s, const std::string& ptr, int depth) {
    if (depth > kMaxSchemaDepth) {
      return Invalid(ptr, absl::StrFormat("schemas nest deeper than %d levels", kMaxSchemaDepth));
    }
    if (s.is_boolean()) return s.get<bool>() ? AnyValue() : Nothing();
    if (!s.is_object()) return Invalid(ptr, "a schema must be an object or a boolean");
    for (const auto& [k, v] : s.items()) {
      if (!IsKnownKeyword(k)) return Unsupported(k, ptr);
    }
    for (const char* defs : {"$defs", "definitions"}) {
      if (s.contains(defs) && !s[defs].is_object()) return Invalid(Child(ptr, defs), "must be an object");
    }
    if (s.contains("$ref")) return ConvertRef(s, ptr, depth);
    if (s.contains("allOf")) return ConvertAllOf(s, ptr, depth);
    if (s.contains("anyOf") || s.contains("oneOf")) return ConvertAnyOf(s, ptr, depth);
    if (s.contains("enum") || s.contains("const")) return ConvertEnum(s, ptr);
    absl::StatusOr<std::vector<std::string>> types = Types(s, ptr);
    if (!types.ok()) return types.status();
    if (types->empty()) return AnyValue();
    std::vector<Expr> alternatives;
    for (const std::string& type : *types) {
      absl::StatusOr<Expr> e = ConvertType(s, type, ptr, depth);
      if (!e.ok()) return e;
      alternatives.push_back(*std::move(e));
    }
    return Choice(std::move(alternatives));
  }

  // The types `s` allows: `type`, else those its keywords imply; empty: any value.
  absl::StatusOr<std::vector<std::string>> Types(const Json& s, const std::string& ptr) const {
    std::vector<std::string> types;
    if (s.contains("type")) {
      const Json& t = s["type"];
      std::vector<const Json*> names;
      if (t.is_string()) {
        names.push_back(&t);
      } else if (t.is_array() && !t.empty()) {
        for (const Json& n : t) names.push_back(&n);
      } else {
        return Invalid(Child(ptr, "type"), "must be a type name or a non-empty array of them");
      }
      for (const Json* n : names) {
        if (!n->is_string()) return Invalid(Child(ptr, "type"), "type names must be strings");
        const std::string name = n->get<std::string>();
        if (std::find(AllTypes().begin(), AllTypes().end(), name) == AllTypes().end()) {
          return Invalid(Child(ptr, "type"), absl::StrFormat("unknown type \"%s\"", name));
        }
        if (std::find(types.begin(), types.end(), name) == types.end()) types.push_back(name);
      }
      return types;
    }
    auto any_of = [&](const std::set<std::string>& keywords) {
      return std::any_of(keywords.begin(), keywords.end(), [&](const std::string& k) { return s.contains(k); });
    };
    if (any_of(ObjectKeywords())) types.push_back("object");
    if (any_of(ArrayKeywords())) types.push_back("array");
    if (any_of(StringKeywords())) types.push_back("string");
    if (any_of(NumberKeywords())) types.push_back("number");
    return types;
  }

  absl::StatusOr<Expr> ConvertType(const Json& s, const std::string& type, const std::string& ptr, int depth) {
    if (type == "object") return ConvertObject(s, ptr, depth);
    if (type == "array") return ConvertArray(s, ptr, depth);
    if (type == "string") return ConvertString(s, ptr);
    if (type == "integer") return ConvertInteger(s, ptr);
    if (type == "number") return ConvertNumber(s, ptr);
    if (type == "boolean") return Choice({Bytes("true"), Bytes("false")});
    return Bytes("null");
  }

  // ---- $ref, allOf, anyOf, enum.
  absl::StatusOr<Expr> ConvertRef(const Json& s, const std::string& ptr, int depth) {
    const std::string other = FirstOtherKeyword(s, {"$ref"});
    if (!other.empty()) {
      return Invalid(ptr, absl::StrFormat("\"$ref\" beside \"%s\" is not supported (use allOf)", other));
    }
    const Json& ref = s["$ref"];
    if (!ref.is_string()) return Invalid(Child(ptr, "$ref"), "must be a string");
    const std::string target = ref.get<std::string>();
    auto it = refs_.find(target);
    if (it != refs_.end()) return RuleRef(it->second);
    if (target.rfind("#/", 0) != 0) {
      return Invalid(Child(ptr, "$ref"),
                     absl::StrFormat("\"%s\": only local references (\"#\", \"#/$defs/NAME\") are supported", target));
    }
    const Json* schema = Resolve(target.substr(1));
    if (schema == nullptr) {
      return Invalid(Child(ptr, "$ref"), absl::StrFormat("\"%s\" points to nothing", target));
    }
    // Register the rule before converting, so recursive references find it.
    const int rule = g_.AddRule(target.substr(target.rfind('/') + 1));
    refs_[target] = rule;
    absl::StatusOr<Expr> body = Convert(*schema, target.substr(1), depth + 1);
    if (!body.ok()) return body;
    g_.rules[rule].body = *std::move(body);
    return RuleRef(rule);
  }

  // A JSON pointer ("/a/b") inside the root document; null when it points to nothing.
  const Json* Resolve(const std::string& pointer) const {
    const Json* at = &root_;
    size_t pos = 0;
    while (pos < pointer.size()) {
      const size_t end = std::min(pointer.find('/', pos + 1), pointer.size());
      std::string token;
      for (size_t i = pos + 1; i < end; ++i) {
        if (pointer[i] == '~' && i + 1 < end && (pointer[i + 1] == '0' || pointer[i + 1] == '1')) {
          token += pointer[i + 1] == '0' ? '~' : '/';
          ++i;
        } else {
          token += pointer[i];
        }
      }
      if (at->is_object()) {
        auto it = at->find(token);
        if (it == at->end()) return nullptr;
        at = &*it;
      } else if (at->is_array()) {
        if (token.empty() || token.size() > 9 || token.find_first_not_of("0123456789") != std::string::npos) {
          return nullptr;
        }
        const size_t index = std::stoul(token);
        if (index >= at->size()) return nullptr;
        at = &(*at)[index];
      } else {
        return nullptr;
      }
      pos = end;
    }
    return at;
  }

  absl::StatusOr<Expr> ConvertAllOf(const Json& s, const std::string& ptr, int depth) {
    const Json& all = s["allOf"];
    if (!all.is_array() || all.size() != 1) {
      return Invalid(Child(ptr, "allOf"), "only an allOf with exactly one subschema is supported");
    }
    const std::string other = FirstOtherKeyword(s, {"allOf"});
    if (!other.empty()) return Invalid(ptr, absl::StrFormat("\"allOf\" beside \"%s\" is not supported", other));
    return Convert(all[0], Child(Child(ptr, "allOf"), size_t{0}), depth + 1);
  }

  absl::StatusOr<Expr> ConvertAnyOf(const Json& s, const std::string& ptr, int depth) {
    if (s.contains("anyOf") && s.contains("oneOf")) return Invalid(ptr, "both \"anyOf\" and \"oneOf\"");
    const std::string keyword = s.contains("anyOf") ? "anyOf" : "oneOf";
    const std::string other = FirstOtherKeyword(s, {keyword});
    if (!other.empty()) {
      return Invalid(ptr, absl::StrFormat("\"%s\" beside \"%s\" is not supported", keyword, other));
    }
    const Json& list = s[keyword];
    if (!list.is_array() || list.empty()) return Invalid(Child(ptr, keyword), "must be a non-empty array");
    std::vector<Expr> alternatives;
    for (size_t i = 0; i < list.size(); ++i) {
      absl::StatusOr<Expr> e = Convert(list[i], Child(Child(ptr, keyword), i), depth + 1);
      if (!e.ok()) return e;
      alternatives.push_back(*std::move(e));
    }
    return Choice(std::move(alternatives));
  }

  absl::StatusOr<Expr> ConvertEnum(const Json& s, const std::string& ptr) {
    const std::string other = FirstOtherKeyword(s, {"enum", "const", "type"});
    if (!other.empty()) {
      return Invalid(ptr, absl::StrFormat("\"enum\"/\"const\" beside \"%s\" is not supported", other));
    }
    std::vector<Json> values;
    if (s.contains("enum")) {
      const Json& e = s["enum"];
      if (!e.is_array()) return Invalid(Child(ptr, "enum"), "must be an array");
      values.assign(e.begin(), e.end());
    }
    if (s.contains("const")) {
      const Json& c = s["const"];
      const bool in_enum = !s.contains("enum") || std::find(values.begin(), values.end(), c) != values.end();
      values.clear();
      if (in_enum) values.push_back(c);
    }
    absl::StatusOr<std::vector<std::string>> types = Types(s, ptr);
    if (!types.ok()) return types.status();
    std::vector<Expr> alternatives;
    std::set<std::string> seen;
    for (const Json& v : values) {
      const bool typed = types->empty() || std::any_of(types->begin(), types->end(),
                                                       [&](const std::string& t) { return HasType(v, t); });
      const std::string text = Dump(v);
      if (typed && seen.insert(text).second) alternatives.push_back(Bytes(text));
    }
    if (alternatives.empty()) return Invalid(ptr, "no value satisfies \"enum\"/\"const\" (and \"type\")");
    return Choice(std::move(alternatives));
  }

  // ---- Objects.
  struct Property {
    Expr member;
    bool required;
  };

  absl::StatusOr<Expr> ConvertObject(const Json& s, const std::string& ptr, int depth) {
    std::vector<std::string> required;
    if (s.contains("required")) {
      const Json& r = s["required"];
      if (!r.is_array()) return Invalid(Child(ptr, "required"), "must be an array of strings");
      for (const Json& name : r) {
        if (!name.is_string()) return Invalid(Child(ptr, "required"), "must be an array of strings");
        if (std::find(required.begin(), required.end(), name.get<std::string>()) == required.end()) {
          required.push_back(name.get<std::string>());
        }
      }
    }
    const Json empty_properties = Json::object();
    const Json& properties = s.contains("properties") ? s["properties"] : empty_properties;
    if (!properties.is_object()) return Invalid(Child(ptr, "properties"), "must be an object");

    // Additional properties: absent means none (strict mode).
    std::optional<Expr> extra_value;
    if (s.contains("additionalProperties")) {
      const Json& a = s["additionalProperties"];
      if (!a.is_boolean() && !a.is_object()) {
        return Invalid(Child(ptr, "additionalProperties"), "must be a boolean or a schema");
      }
      if (!(a.is_boolean() && !a.get<bool>())) {
        absl::StatusOr<Expr> v = Convert(a, Child(ptr, "additionalProperties"), depth + 1);
        if (!v.ok()) return v;
        extra_value = Share(*std::move(v), "additional_value");
      }
    }

    std::vector<Property> props;
    for (const auto& [key, sub] : properties.items()) {
      const bool is_required = std::find(required.begin(), required.end(), key) != required.end();
      if (sub.is_boolean() && !sub.get<bool>()) {
        if (is_required) return Invalid(Child(Child(ptr, "properties"), key), "a required property with schema false");
        continue;  // may not appear at all
      }
      absl::StatusOr<Expr> value = Convert(sub, Child(Child(ptr, "properties"), key), depth + 1);
      if (!value.ok()) return value;
      props.push_back({Member(Bytes(Dump(Json(key))), Share(*std::move(value), key)), is_required});
    }
    for (const std::string& key : required) {
      if (properties.contains(key)) continue;
      if (!extra_value) {
        return Invalid(Child(ptr, "required"),
                       absl::StrFormat("required property \"%s\" is not in \"properties\" and additional "
                                       "properties are not allowed",
                                       key));
      }
      props.push_back({Member(Bytes(Dump(Json(key))), *extra_value), true});
    }
    std::optional<Expr> extra_member;
    if (extra_value) extra_member = Member(StringExpr(), *std::move(extra_value));
    return Sequence({Bytes("{"), Ws(), ObjectBody(props, extra_member), Bytes("}")});
  }

  // The members between "{ ws" and "}": properties in order (optional ones may be skipped), then
  // any number of extra members; a comma between any two; whitespace before "}" when not empty.
  Expr ObjectBody(const std::vector<Property>& props, const std::optional<Expr>& extra) {
    const size_t n = props.size();
    // The first required property: alternatives below start at any property up to it.
    size_t first_required = n;
    for (size_t k = 0; k < n && first_required == n; ++k) {
      if (props[k].required) first_required = k;
    }
    // after[i]: the rest once something has been written, from property i on (each item with
    // its leading comma), then the closing whitespace. after[i] is written in after[i - 1] and,
    // when the first member may be property i - 1, in that alternative too: then it is shared.
    std::vector<Expr> after(n + 1);
    after[n] = extra ? Sequence({Star(Sequence({Comma(), *extra})), Ws()}) : Ws();
    for (size_t i = n + 1; i-- > 1;) {
      if (i < n) {
        Expr item = Sequence({Comma(), props[i].member});
        after[i] = Sequence({props[i].required ? std::move(item) : Optional(std::move(item)), after[i + 1]});
      }
      if (i >= 2 && i <= first_required + 1) after[i] = Share(std::move(after[i]), "members");
    }
    // Nothing written yet: the first member written is property k, where all before k are
    // optional; or, with no required property, only extras or nothing.
    std::vector<Expr> alternatives;
    bool all_optional = true;
    for (size_t k = 0; k < n; ++k) {
      alternatives.push_back(Sequence({props[k].member, after[k + 1]}));
      if (props[k].required) {
        all_optional = false;
        break;
      }
    }
    if (all_optional) {
      if (extra) alternatives.push_back(Sequence({*extra, after[n]}));
      alternatives.push_back(Empty());
    }
    return Choice(std::move(alternatives));
  }

  // ---- Arrays.
  absl::StatusOr<int64_t> Count(const Json& s, const char* keyword, const std::string& ptr, int64_t absent) const {
    if (!s.contains(keyword)) return absent;
    const Json& v = s[keyword];
    if (!v.is_number() || !IsIntegral(v) || NumberValue(v) < 0) {
      return Invalid(Child(ptr, keyword), "must be a non-negative integer");
    }
    if (NumberValue(v) > kMaxCount) {
      return Invalid(Child(ptr, keyword), absl::StrFormat("counts over %d are not supported", kMaxCount));
    }
    return static_cast<int64_t>(NumberValue(v));
  }

  absl::StatusOr<Expr> ConvertArray(const Json& s, const std::string& ptr, int depth) {
    // prefixItems, or a draft-7 tuple `items: [...]`.
    const Json* prefix_list = nullptr;
    std::string prefix_ptr;
    if (s.contains("prefixItems")) {
      prefix_list = &s["prefixItems"];
      prefix_ptr = Child(ptr, "prefixItems");
    } else if (s.contains("items") && s["items"].is_array()) {
      prefix_list = &s["items"];
      prefix_ptr = Child(ptr, "items");
    }
    std::vector<Expr> prefix;
    if (prefix_list != nullptr) {
      if (!prefix_list->is_array()) return Invalid(prefix_ptr, "must be an array of schemas");
      if (prefix_list->size() > kMaxPrefixItems) {
        return Invalid(prefix_ptr, absl::StrFormat("more than %d schemas", kMaxPrefixItems));
      }
      for (size_t i = 0; i < prefix_list->size(); ++i) {
        absl::StatusOr<Expr> e = Convert((*prefix_list)[i], Child(prefix_ptr, i), depth + 1);
        if (!e.ok()) return e;
        prefix.push_back(*std::move(e));
      }
    }
    // The schema of the items after the prefix; none: no more items.
    std::optional<Expr> rest;
    if (s.contains("items") && !s["items"].is_array()) {
      const Json& items = s["items"];
      if (!items.is_boolean() && !items.is_object()) return Invalid(Child(ptr, "items"), "must be a schema");
      if (!(items.is_boolean() && !items.get<bool>())) {
        absl::StatusOr<Expr> e = Convert(items, Child(ptr, "items"), depth + 1);
        if (!e.ok()) return e;
        rest = *std::move(e);
      }
    } else {
      rest = AnyValue();
    }
    absl::StatusOr<int64_t> min = Count(s, "minItems", ptr, 0);
    if (!min.ok()) return min.status();
    absl::StatusOr<int64_t> max = Count(s, "maxItems", ptr, -1);
    if (!max.ok()) return max.status();
    const int64_t k = static_cast<int64_t>(prefix.size());
    if (*max >= 0 && *min > *max) return Invalid(ptr, "\"minItems\" is greater than \"maxItems\"");
    if (!rest && (*max < 0 || *max > k)) *max = k;
    if (*min > *max && *max >= 0) return Invalid(ptr, "\"minItems\" asks for more items than \"items\" allows");
    if (*max == 0) return Sequence({Bytes("["), Ws(), Bytes("]")});

    // Items from index i on, each with its leading comma (i >= 1 items already written).
    std::function<Expr(int64_t)> from = [&](int64_t i) -> Expr {
      if (*max >= 0 && i >= *max) return Empty();
      if (i < k) {
        Expr item = Sequence({Comma(), prefix[i], from(i + 1)});
        return i < *min ? std::move(item) : Optional(std::move(item));
      }
      const int64_t lo = std::max<int64_t>(0, *min - i);
      const int64_t hi = *max < 0 ? -1 : *max - i;
      return Repeat(Sequence({Comma(), *rest}), static_cast<int>(lo), static_cast<int>(hi));
    };
    if (rest) rest = Share(*std::move(rest), "item");
    Expr first = k > 0 ? prefix[0] : *rest;
    Expr items = Sequence({std::move(first), from(1), Ws()});
    return Sequence({Bytes("["), Ws(), *min >= 1 ? std::move(items) : Optional(std::move(items)), Bytes("]")});
  }

  // ---- Strings.
  absl::StatusOr<Expr> ConvertString(const Json& s, const std::string& ptr) {
    const int ways = static_cast<int>(s.contains("pattern")) + static_cast<int>(s.contains("format")) +
                     static_cast<int>(s.contains("minLength") || s.contains("maxLength"));
    if (ways > 1) return Invalid(ptr, "\"pattern\", \"format\" and \"minLength\"/\"maxLength\" do not combine");
    if (s.contains("pattern")) {
      const Json& p = s["pattern"];
      if (!p.is_string()) return Invalid(Child(ptr, "pattern"), "must be a string");
      RegexOptions ro;
      ro.json_string_content = true;
      absl::StatusOr<Expr> e = RegexToExpr(p.get<std::string>(), ro);
      if (!e.ok()) return Invalid(Child(ptr, "pattern"), std::string(e.status().message()));
      return Sequence({Bytes("\""), *std::move(e), Bytes("\"")});
    }
    if (s.contains("format")) return ConvertFormat(s["format"], Child(ptr, "format"));
    absl::StatusOr<int64_t> min = Count(s, "minLength", ptr, 0);
    if (!min.ok()) return min.status();
    absl::StatusOr<int64_t> max = Count(s, "maxLength", ptr, -1);
    if (!max.ok()) return max.status();
    if (*max >= 0 && *min > *max) return Invalid(ptr, "\"minLength\" is greater than \"maxLength\"");
    return Sequence(
        {Bytes("\""), Repeat(StringChar(), static_cast<int>(*min), static_cast<int>(*max)), Bytes("\"")});
  }

  absl::StatusOr<Expr> ConvertFormat(const Json& f, const std::string& ptr) {
    if (!f.is_string()) return Invalid(ptr, "must be a string");
    // Calendar dates only, as validators check them (Python's date.fromisoformat, ajv-formats'
    // full mode): days per month, 29 February in leap years, no year 0000.
#define STRATA_YEAR "([0-9]{3}[1-9]|[0-9]{2}[1-9]0|[0-9][1-9]00|[1-9]000)"
#define STRATA_LEAP_YEAR "([0-9]{2}(0[48]|[2468][048]|[13579][26])|(0[48]|[2468][048]|[13579][26])00)"
    static const char kDate[] = "(" STRATA_YEAR "-(0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])|" STRATA_YEAR
                                "-(0[469]|11)-(0[1-9]|[12][0-9]|30)|" STRATA_YEAR "-02-(0[1-9]|1[0-9]|2[0-8])|"
                                STRATA_LEAP_YEAR "-02-29)";
#undef STRATA_YEAR
#undef STRATA_LEAP_YEAR
    static const char kTime[] =
        "([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])";
    static const char kLabel[] = "[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?";
    static const char kAtom[] = "[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+";
    const std::string name = f.get<std::string>();
    std::string pattern;
    if (name == "date") {
      pattern = kDate;
    } else if (name == "time") {
      pattern = kTime;
    } else if (name == "date-time") {
      pattern = std::string(kDate) + "T" + kTime;
    } else if (name == "uuid") {
      pattern = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}";
    } else if (name == "email") {
      pattern = absl::StrFormat("%s(\\.%s)*@%s(\\.%s)+", kAtom, kAtom, kLabel, kLabel);
    } else {
      return absl::InvalidArgumentError(absl::StrFormat("unsupported JSON schema format \"%s\" at %s", name, ptr));
    }
    RegexOptions ro;
    ro.json_string_content = true;
    absl::StatusOr<Expr> e = RegexToExpr(pattern, ro);
    if (!e.ok()) return absl::InternalError(absl::StrFormat("format \"%s\": %s", name, e.status().message()));
    return Sequence({Bytes("\""), *std::move(e), Bytes("\"")});
  }

  // ---- Numbers.
  absl::Status ReadBounds(const Json& s, const std::string& ptr, Bound* lo, Bound* hi) const {
    auto number = [&](const char* keyword, long double* v) -> absl::Status {
      const Json& j = s[keyword];
      if (!j.is_number()) return Invalid(Child(ptr, keyword), "must be a number");
      *v = NumberValue(j);
      return absl::OkStatus();
    };
    // Keeps the stricter of two bounds (`lower`: the larger one).
    auto tighten = [](Bound* b, long double v, bool exclusive, bool lower) {
      const bool stricter = !b->present || (lower ? v > b->value : v < b->value) ||
                            (v == b->value && exclusive);
      if (stricter) *b = {true, v, exclusive};
    };
    for (const bool lower : {true, false}) {
      const char* inclusive_kw = lower ? "minimum" : "maximum";
      const char* exclusive_kw = lower ? "exclusiveMinimum" : "exclusiveMaximum";
      Bound* b = lower ? lo : hi;
      bool draft4_exclusive = false;
      if (s.contains(exclusive_kw) && s[exclusive_kw].is_boolean()) {
        draft4_exclusive = s[exclusive_kw].get<bool>();  // draft 4: modifies minimum/maximum
      } else if (s.contains(exclusive_kw)) {
        long double v = 0;
        absl::Status st = number(exclusive_kw, &v);
        if (!st.ok()) return st;
        tighten(b, v, true, lower);
      }
      if (s.contains(inclusive_kw)) {
        long double v = 0;
        absl::Status st = number(inclusive_kw, &v);
        if (!st.ok()) return st;
        tighten(b, v, draft4_exclusive, lower);
      }
    }
    return absl::OkStatus();
  }

  absl::StatusOr<Expr> ConvertInteger(const Json& s, const std::string& ptr) {
    Bound lo, hi;
    absl::Status st = ReadBounds(s, ptr, &lo, &hi);
    if (!st.ok()) return st;
    if (!lo.present && !hi.present) return IntegerExpr();
    const Int a = std::max<Int>(LowestInteger(lo), -static_cast<Int>(kMaxMagnitude));
    const Int b = std::min<Int>(HighestInteger(hi), static_cast<Int>(kMaxMagnitude));
    if (a > b) return Invalid(ptr, "no integer satisfies the minimum/maximum bounds");
    return IntegerRange(a, b);
  }

  absl::StatusOr<Expr> ConvertNumber(const Json& s, const std::string& ptr) {
    Bound lo, hi;
    absl::Status st = ReadBounds(s, ptr, &lo, &hi);
    if (!st.ok()) return st;
    if (!lo.present && !hi.present) return NumberExpr();
    // A lone lower bound of 0: the sign alone decides, exponents included.
    if (!hi.present && lo.value == 0) {
      if (!lo.exclusive) return Sequence({UnsignedIntegerPart(), Optional(Fraction()), Optional(Exponent())});
      Expr positive = Choice({Sequence({Range('1', '9'), Repeat(Digit(), 0, 18), Optional(Fraction())}),
                              Sequence({Bytes("0"), NonZeroFraction()})});
      return Sequence({std::move(positive), Optional(Exponent())});
    }
    const Int max = static_cast<Int>(kMaxMagnitude);
    std::vector<Expr> alternatives;
    // Whole numbers: exact.
    const Int a = std::max<Int>(LowestInteger(lo), -max);
    const Int b = std::min<Int>(HighestInteger(hi), max);
    if (a <= b) alternatives.push_back(IntegerRange(a, b));
    // m.f with f > 0 lies strictly between m and m + 1: allowed when both are within the bounds
    // (exact for integral bounds, inward rounding otherwise).
    const Int pos_lo = std::max<Int>(0, lo.present ? ClampToMagnitude(std::ceil(lo.value)) : 0);
    const Int pos_hi = std::min<Int>(max, hi.present ? ClampToMagnitude(std::floor(hi.value)) - 1 : max);
    if (pos_lo <= pos_hi) {
      alternatives.push_back(Sequence({UnsignedRange(static_cast<uint64_t>(pos_lo), static_cast<uint64_t>(pos_hi)),
                                       NonZeroFraction()}));
    }
    // -(m.f) lies strictly between -(m + 1) and -m.
    const Int neg_lo = std::max<Int>(0, hi.present ? ClampToMagnitude(std::ceil(-hi.value)) : 0);
    const Int neg_hi = std::min<Int>(max, lo.present ? ClampToMagnitude(std::floor(-lo.value)) - 1 : max);
    if (neg_lo <= neg_hi) {
      alternatives.push_back(Sequence({Bytes("-"),
                                       UnsignedRange(static_cast<uint64_t>(neg_lo), static_cast<uint64_t>(neg_hi)),
                                       NonZeroFraction()}));
    }
    if (alternatives.empty()) {
      return Invalid(ptr, "no number this grammar can write satisfies the minimum/maximum bounds");
    }
    return Choice(std::move(alternatives));
  }

  const Json& root_;
  JsonSchemaOptions o_;
  Grammar g_;
  std::map<std::string, int> refs_;
  int any_value_ = -1, any_object_ = -1;
};

}  // namespace

absl::StatusOr<Grammar> JsonSchemaToGrammar(const nlohmann::ordered_json& schema, const JsonSchemaOptions& o) {
  try {
    return Converter(schema, o).Run();
  } catch (const nlohmann::json::exception& e) {
    // Every access is checked first; this is a last line of defense, not a path we expect.
    return absl::InternalError(absl::StrFormat("JSON schema conversion failed: %s", e.what()));
  }
}

absl::StatusOr<Grammar> JsonSchemaToGrammar(const nlohmann::json& schema, const JsonSchemaOptions& o) {
  // Copying is recursive: refuse absurd nesting before it.
  if (DeeperThan(schema, kMaxJsonDepth)) {
    return Invalid("", absl::StrFormat("the schema document nests deeper than %d levels", kMaxJsonDepth));
  }
  try {
    const nlohmann::ordered_json ordered = schema;
    return JsonSchemaToGrammar(ordered, o);
  } catch (const nlohmann::json::exception& e) {
    return absl::InternalError(absl::StrFormat("JSON schema conversion failed: %s", e.what()));
  }
}

Grammar AnyJsonGrammar(const JsonSchemaOptions& o) {
  static const Json kEmpty;
  return Converter(kEmpty, o).AnyObject();
}

}  // namespace strata::grammar
