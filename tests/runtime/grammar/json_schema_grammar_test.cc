#include "runtime/grammar/json_schema_grammar.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "tests/runtime/grammar/naive_matcher_for_tests.h"

namespace strata::grammar {
namespace {

using nlohmann::ordered_json;
using testing::FullMatch;

absl::StatusOr<Grammar> Convert(const std::string& schema, const JsonSchemaOptions& o = {}) {
  return JsonSchemaToGrammar(ordered_json::parse(schema), o);
}

std::string ErrorOf(const std::string& schema) {
  absl::StatusOr<Grammar> g = Convert(schema);
  EXPECT_FALSE(g.ok()) << "expected an error for " << schema;
  if (g.ok()) return "";
  EXPECT_EQ(g.status().code(), absl::StatusCode::kInvalidArgument) << schema << ": " << g.status();
  return std::string(g.status().message());
}

struct SchemaCase {
  std::string name;
  std::string schema;
  std::vector<std::string> valid;    // must match (and must be valid JSON: checked)
  std::vector<std::string> invalid;  // must not match
};

int g_checked_documents = 0;

void Check(const SchemaCase& c) {
  SCOPED_TRACE(c.name);
  absl::StatusOr<Grammar> g = Convert(c.schema);
  ASSERT_TRUE(g.ok()) << c.schema << ": " << g.status();
  for (const std::string& doc : c.valid) {
    EXPECT_TRUE(ordered_json::accept(doc)) << "test bug: not JSON: " << doc;
    EXPECT_TRUE(FullMatch(*g, doc)) << "should accept: " << doc << "\ngrammar:\n" << g->ToString();
    ++g_checked_documents;
  }
  for (const std::string& doc : c.invalid) {
    EXPECT_FALSE(FullMatch(*g, doc)) << "should reject: " << doc;
    ++g_checked_documents;
  }
}

TEST(JsonSchemaGrammarTest, VariedSchemas) {
  const std::vector<SchemaCase> cases = {
      {"required properties",
       R"({"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"}},
           "required":["name","age"]})",
       {R"({"name":"Bob","age":42})", R"({ "name" : "A\"b\\\u00e9/é" , "age" : -3 })",
        "{\n  \"name\": \"x\",\n  \"age\": 0\n}", R"(  {"name":"","age":1234567890123456789}  )"},
       {R"({"name":"Bob"})", R"({"name":"Bob","age":42,"x":1})", R"({"name":1,"age":2})",
        R"({"name":"Bob","age":4.5})", R"({"name":"Bob","age":42,})", R"({"name":"Bob" "age":42})", "[]",
        R"({"name":"Bob","age":042})", R"({"name":"a	b","age":1})", R"({"name":"\x","age":1})",
        R"({"name":"Bob","age":12345678901234567890})", "{\"name\":\"Bob\",\"age\":42}\r"}},
      {"optional properties and commas",
       R"({"properties":{"a":{"type":"integer"},"b":{"type":"string"},"c":{"type":"boolean"}},"required":["b"]})",
       {R"({"b":"x"})", R"({"a":1,"b":"x"})", R"({"b":"x","c":true})", R"({"a":1,"b":"x","c":false})",
        R"({ "a" : 1 , "b" : "" })"},
       {"{}", R"({"a":1})", R"({"a":1,,"b":"x"})", R"({,"b":"x"})", R"({"b":"x",})", R"({"a":1 "b":"x"})",
        R"({"b":"x","c":1})", R"("x")"}},
      {"all optional",
       R"({"type":"object","properties":{"a":{"type":"null"},"b":{"type":"number"}}})",
       {"{}", "{ }", R"({"a":null})", R"({"b":1.5e3})", R"({"a":null,"b":-0.25})", R"({ "b" : 0 })"},
       {"{,}", R"({"a":null,})", R"({,"a":null})", R"({"a":null,,"b":1})", R"({"c":1})"}},
      {"additionalProperties schema",
       R"({"type":"object","properties":{"id":{"type":"integer"}},"required":["id"],
           "additionalProperties":{"type":"string"}})",
       {R"({"id":1})", R"({"id":1,"x":"y","z":""})", R"({ "id" : 1 , "x" : "y" })"},
       {R"({"id":1,"x":2})", R"({"x":"y"})", R"({"id":1,})", R"({"id":1,"x":"y",})"}},
      {"additionalProperties true, no properties",
       R"({"type":"object","additionalProperties":true})",
       {"{}", R"({"a":[1,{"b":null}],"c":"d"})", R"({"a":{}})"},
       {"[]", R"({"a":})", R"({"a":1,})"}},
      {"nested objects and arrays",
       R"({"type":"object","properties":{"user":{"type":"object","properties":{"name":{"type":"string"},
           "tags":{"type":"array","items":{"type":"string"}}},"required":["name","tags"]}},"required":["user"]})",
       {R"({"user":{"name":"a","tags":[]}})", R"({"user":{"name":"a","tags":["x","y"]}})",
        "{\"user\": {\"name\": \"a\", \"tags\": [\n \"x\" ,\"y\"\n]}}"},
       {R"({"user":{"name":"a"}})", R"({"user":{"name":"a","tags":[1]}})", R"({"user":{"name":"a","tags":["x",]}})",
        R"({"user":null})"}},
      {"array min and max",
       R"({"type":"array","items":{"type":"integer"},"minItems":2,"maxItems":4})",
       {"[1,2]", "[1, 2, 3, 4]", "[ 1,2,3 ]", "[\n1,\n2\n]"},
       {"[]", "[1]", "[1,2,3,4,5]", R"([1,"a"])", "[1,2,]", "[,1,2]", "[1 2]"}},
      {"array of booleans",
       R"({"type":"array","items":{"type":"boolean"}})",
       {"[]", "[ ]", "[true]", "[true,false,true]"},
       {"[,]", "[true,]", "[null]", "{}"}},
      {"prefixItems, items false",
       R"({"type":"array","prefixItems":[{"type":"string"},{"type":"integer"}],"items":false})",
       {"[]", R"(["a"])", R"(["a",1])", R"([ "a" , 1 ])"},
       {"[1]", R"(["a",1,2])", R"(["a","b"])", R"(["a",])"}},
      {"prefixItems then items, minItems",
       R"({"type":"array","prefixItems":[{"type":"string"}],"items":{"type":"null"},"minItems":2})",
       {R"(["a",null])", R"(["a",null,null,null])"},
       {"[]", R"(["a"])", R"(["a",1])", R"([null,null])"}},
      {"enum of mixed values",
       R"({"enum":["red","green",1,null,{"a":[1,2]},true]})",
       {R"("red")", R"("green")", "1", "null", R"({"a":[1,2]})", "true", " 1 "},
       {R"("blue")", R"({"a": [1,2]})", "2", "false", R"("Red")"}},
      {"enum with type",
       R"({"type":"string","enum":["a","b",3],"description":"letters"})",
       {R"("a")", R"("b")"},
       {"3", R"("c")"}},
      {"const discriminator",
       R"({"properties":{"kind":{"const":"circle"},"r":{"type":"number"}},"required":["kind","r"]})",
       {R"({"kind":"circle","r":1.5})"},
       {R"({"kind":"square","r":1.5})", R"({"r":1.5})"}},
      {"anyOf",
       R"({"anyOf":[{"type":"string","maxLength":3},{"type":"integer","minimum":0,"maximum":9},{"type":"null"}],
           "title":"x"})",
       {R"("abc")", R"("")", "7", "0", "null"},
       {R"("abcd")", "10", "-1", "true", "7.5"}},
      {"oneOf and type arrays",
       R"({"oneOf":[{"type":["string","null"]},{"type":"array","items":{"type":["integer","boolean"]}}]})",
       {R"("s")", "null", "[1,true,false,-2]", "[]"},
       {"1", R"(["s"])", "[null]"}},
      {"$defs and $ref",
       R"({"$defs":{"point":{"type":"object","properties":{"x":{"type":"number"},"y":{"type":"number"}},
           "required":["x","y"]}},"type":"array","items":{"$ref":"#/$defs/point"}})",
       {"[]", R"([{"x":1,"y":2}])", R"([{"x":1.5,"y":-2e3},{"x":0,"y":0}])"},
       {R"([{"x":1}])", R"([{"y":2,"x":1}])", R"({"x":1,"y":2})"}},
      {"recursive $ref",
       R"({"$defs":{"node":{"type":"object","properties":{"value":{"type":"integer"},
           "children":{"type":"array","items":{"$ref":"#/$defs/node"}}},"required":["value","children"]}},
           "$ref":"#/$defs/node"})",
       {R"({"value":1,"children":[]})",
        R"({"value":1,"children":[{"value":2,"children":[{"value":3,"children":[]}]},{"value":4,"children":[]}]})"},
       {R"({"value":1,"children":[{"value":2}]})", R"({"value":1})", R"({"value":1,"children":[1]})"}},
      {"recursion through #",
       R"({"type":"object","properties":{"name":{"type":"string"},"next":{"anyOf":[{"$ref":"#"},{"type":"null"}]}},
           "required":["name","next"]})",
       {R"({"name":"a","next":null})", R"({"name":"a","next":{"name":"b","next":{"name":"c","next":null}}})",
        R"({"name":"a","next": {"name":"b","next":null} })"},
       {R"({"name":"a","next":{"name":"b"}})", R"({"name":"a","next":1})"}},
      {"definitions and a one-schema allOf",
       R"({"definitions":{"c":{"type":"string","enum":["x","y"]}},"type":"object",
           "properties":{"c":{"allOf":[{"$ref":"#/definitions/c"}],"description":"d","default":"x"}},
           "required":["c"]})",
       {R"({"c":"x"})", R"({"c":"y"})"},
       {R"({"c":"z"})", "{}"}},
      {"patterns",
       R"({"type":"object","properties":{"code":{"type":"string","pattern":"^[A-Z]{3}-[0-9]{2,4}$"},
           "q":{"type":"string","pattern":"a\"b\\\\c"}},"required":["code","q"]})",
       {R"({"code":"ABC-123","q":"a\"b\\c"})", R"({"code":"XYZ-0000","q":"a\"b\\c"})"},
       {R"({"code":"AB-123","q":"a\"b\\c"})", R"({"code":"abc-12","q":"a\"b\\c"})",
        R"({"code":"ABC-12345","q":"a\"b\\c"})", R"({"code":"ABC-123","q":"ab\\c"})"}},
      {"string lengths in code points",
       R"({"type":"string","minLength":2,"maxLength":4})",
       {R"("ab")", R"("a\nb")", R"("日本語")", R"("\u00e9\u00e9")", R"("abcd")"},
       {R"("a")", R"("abcde")", R"("")", R"("日")", R"("ab)"}},
      {"formats",
       R"({"type":"object","properties":{"d":{"type":"string","format":"date"},"t":{"type":"string","format":"time"},
           "dt":{"type":"string","format":"date-time"},"u":{"type":"string","format":"uuid"},
           "e":{"type":"string","format":"email"}},"required":["d","t","dt","u","e"]})",
       {R"({"d":"2024-02-29","t":"23:59:59Z","dt":"2024-01-31T08:00:00.123+05:30",
            "u":"123e4567-e89b-12d3-a456-426614174000","e":"first.last+tag@mail.example.com"})"},
       {R"({"d":"2024-13-01","t":"23:59:59Z","dt":"2024-01-31T08:00:00Z","u":"123e4567-e89b-12d3-a456-426614174000","e":"a@b.co"})",
        R"({"d":"2024-01-01","t":"24:00:00Z","dt":"2024-01-31T08:00:00Z","u":"123e4567-e89b-12d3-a456-426614174000","e":"a@b.co"})",
        R"({"d":"2024-01-01","t":"23:00:00","dt":"2024-01-31T08:00:00Z","u":"123e4567-e89b-12d3-a456-426614174000","e":"a@b.co"})",
        R"({"d":"2024-01-01","t":"23:00:00Z","dt":"2024-01-31 08:00:00Z","u":"123e4567-e89b-12d3-a456-426614174000","e":"a@b.co"})",
        R"({"d":"2024-01-01","t":"23:00:00Z","dt":"2024-01-31T08:00:00Z","u":"123e4567e89b12d3a456426614174000","e":"a@b.co"})",
        R"({"d":"2024-01-01","t":"23:00:00Z","dt":"2024-01-31T08:00:00Z","u":"123e4567-e89b-12d3-a456-426614174000","e":"a@localhost"})"}},
      {"calendar dates",
       R"({"type":"string","format":"date"})",
       {R"("2024-02-29")", R"("2000-02-29")", R"("1600-02-29")", R"("0004-02-29")", R"("2026-11-30")",
        R"("2026-12-31")", R"("0001-01-01")", R"("9999-12-31")"},
       {R"("2023-02-29")", R"("1900-02-29")", R"("2026-11-31")", R"("2026-04-31")", R"("2026-02-30")",
        R"("0000-01-01")", R"("0000-02-29")", R"("2026-00-10")", R"("2026-01-00")"}},
      {"bounded integers and numbers",
       R"({"type":"object","properties":{"age":{"type":"integer","minimum":0,"maximum":150},
           "score":{"type":"number","minimum":0,"maximum":1}},"required":["age","score"]})",
       {R"({"age":0,"score":0.5})", R"({"age":150,"score":1})", R"({"age":18,"score":0})",
        R"({"age":7,"score":0.0001})"},
       {R"({"age":151,"score":0.5})", R"({"age":-1,"score":0.5})", R"({"age":1,"score":1.5})",
        R"({"age":1,"score":-0.1})", R"({"age":1,"score":1.0001})", R"({"age":1.0,"score":0})"}},
      {"boolean subschemas",
       R"({"type":"object","properties":{"any":true,"never":false},"required":["any"]})",
       {R"({"any":1})", R"({"any":{"x":[null]}})"},
       {R"({"any":1,"never":1})", "{}"}},
      {"empty schema is any value",
       "{}",
       {R"("x")", "1", R"([1,{"a":null}])", R"({"a":{"b":[]}})", "true", "null", "-0.5e-7"},
       {"[1,]", "{a:1}", "", "tru", R"({"a"})"}},
      {"numbers",
       R"({"type":"number"})",
       {"0", "-0", "1.5", "1e10", "-2.5E-3", "1234567890123456789.1234567890123456", "5E+99"},
       {"01", "1.", ".5", "+1", "1e1234", "12345678901234567890", "0.12345678901234567", "NaN", "1e"}},
  };
  for (const SchemaCase& c : cases) Check(c);
  EXPECT_GT(g_checked_documents, 200);
}

TEST(JsonSchemaGrammarTest, AnyJsonObject) {
  const Grammar g = AnyJsonGrammar();
  for (const char* doc : {"{}", R"({"a":1})", R"( { "a" : [1, {"b": null}, "x", -1.5e3, true] } )",
                          R"({"a":{"b":{"c":{"d":[[[]]]}}}})"}) {
    EXPECT_TRUE(FullMatch(g, doc)) << doc;
  }
  for (const char* doc : {"[]", R"("x")", "1", "{", R"({"a":1,})", R"({'a':1})", "null"}) {
    EXPECT_FALSE(FullMatch(g, doc)) << doc;
  }
}

TEST(JsonSchemaGrammarTest, WhitespaceBound) {
  const std::string schema = R"({"type":"array","items":{"type":"integer"}})";
  const std::string twenty(20, ' '), twenty_one(21, ' ');
  absl::StatusOr<Grammar> g = Convert(schema);
  ASSERT_TRUE(g.ok());
  EXPECT_TRUE(FullMatch(*g, "[" + twenty + "1" + twenty + "," + twenty + "2]"));
  EXPECT_FALSE(FullMatch(*g, "[" + twenty_one + "1]"));
  EXPECT_TRUE(FullMatch(*g, twenty + "[]" + twenty));
  EXPECT_FALSE(FullMatch(*g, twenty_one + "[]"));
  EXPECT_FALSE(FullMatch(*g, "[\r1]"));

  JsonSchemaOptions none;
  none.max_whitespace = 0;
  g = Convert(schema, none);
  ASSERT_TRUE(g.ok());
  EXPECT_TRUE(FullMatch(*g, "[1,2]"));
  EXPECT_FALSE(FullMatch(*g, "[1, 2]"));
  EXPECT_FALSE(FullMatch(*g, " [1,2]"));

  JsonSchemaOptions unbounded;
  unbounded.max_whitespace = -1;
  g = Convert(schema, unbounded);
  ASSERT_TRUE(g.ok());
  EXPECT_TRUE(FullMatch(*g, "[" + std::string(100, '\n') + "1]"));
}

TEST(JsonSchemaGrammarTest, PropertyOrderAndKeyEscaping) {
  const std::string schema =
      R"({"type":"object","properties":{"zeta":{"type":"integer"},"alpha":{"type":"integer"},
          "we\"ird/key":{"type":"integer"}},"required":["zeta","alpha","we\"ird/key"]})";
  // ordered_json keeps the schema's order.
  absl::StatusOr<Grammar> g = Convert(schema);
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_TRUE(FullMatch(*g, R"({"zeta":1,"alpha":2,"we\"ird/key":3})"));
  EXPECT_FALSE(FullMatch(*g, R"({"alpha":2,"zeta":1,"we\"ird/key":3})"));
  // nlohmann::json sorts keys, so its order is alphabetical.
  absl::StatusOr<Grammar> sorted = JsonSchemaToGrammar(nlohmann::json::parse(schema));
  ASSERT_TRUE(sorted.ok()) << sorted.status();
  EXPECT_TRUE(FullMatch(*sorted, R"({"alpha":2,"we\"ird/key":3,"zeta":1})"));
}

// Every integer near the range is accepted exactly when it is inside.
TEST(JsonSchemaGrammarTest, IntegerRangesExhaustive) {
  struct Range {
    std::string bounds;
    long long lo, hi;  // inclusive; +-1e15 for "none"
  };
  const long long kNone = 1000000000000000LL;
  const std::vector<Range> ranges = {
      {R"("minimum":0,"maximum":9)", 0, 9},
      {R"("minimum":-15,"maximum":7)", -15, 7},
      {R"("minimum":100,"maximum":12345)", 100, 12345},
      {R"("minimum":-1000,"maximum":-3)", -1000, -3},
      {R"("minimum":7)", 7, kNone},
      {R"("maximum":-40)", -kNone, -40},
      {R"("exclusiveMinimum":3,"exclusiveMaximum":17)", 4, 16},
      {R"("minimum":2.5,"maximum":10.2)", 3, 10},
      {R"("exclusiveMinimum":-10.5,"maximum":0)", -10, 0},
      {R"("minimum":5,"exclusiveMinimum":5,"maximum":99)", 6, 99},
      {R"("minimum":5,"exclusiveMinimum":true,"maximum":99,"exclusiveMaximum":true)", 6, 98},
      {R"("minimum":42,"maximum":42)", 42, 42},
      {R"("minimum":-999,"maximum":1000)", -999, 1000},
      {R"("minimum":0)", 0, kNone},
      {R"("exclusiveMaximum":0)", -kNone, -1},
  };
  int checked = 0;
  for (const Range& r : ranges) {
    SCOPED_TRACE(r.bounds);
    absl::StatusOr<Grammar> g = Convert(R"({"type":"integer",)" + r.bounds + "}");
    ASSERT_TRUE(g.ok()) << g.status();
    const long long from = (r.lo == -kNone ? r.hi - 3000 : r.lo) - 50;
    const long long to = (r.hi == kNone ? r.lo + 3000 : r.hi) + 50;
    for (long long v = from; v <= to; ++v) {
      EXPECT_EQ(FullMatch(*g, std::to_string(v)), v >= r.lo && v <= r.hi) << v;
      ++checked;
    }
    // Forms JSON or the grammar does not allow.
    for (const char* bad : {"-0", "007", "+5", "1.0", "1e2", "", "-"}) EXPECT_FALSE(FullMatch(*g, bad)) << bad;
  }
  EXPECT_GT(checked, 20000);
}

// Random ranges, including huge bounds: membership of random and edge values.
TEST(JsonSchemaGrammarTest, IntegerRangesRandom) {
  std::mt19937_64 rng(7);
  auto random_value = [&]() -> long long {
    const int digits = static_cast<int>(rng() % 18) + 1;
    long long v = static_cast<long long>(rng() % static_cast<unsigned long long>(std::pow(10.0, digits)));
    return rng() % 2 ? -v : v;
  };
  for (int trial = 0; trial < 150; ++trial) {
    long long lo = random_value(), hi = random_value();
    if (lo > hi) std::swap(lo, hi);
    absl::StatusOr<Grammar> g =
        Convert(absl::StrFormat(R"({"type":"integer","minimum":%d,"maximum":%d})", lo, hi));
    ASSERT_TRUE(g.ok()) << g.status();
    std::vector<long long> probes = {lo, hi, lo - 1, hi + 1, lo + 1, hi - 1, 0, -1, 1};
    for (int i = 0; i < 40; ++i) probes.push_back(random_value());
    for (int i = 0; i < 20; ++i) probes.push_back(lo + static_cast<long long>(rng() % (static_cast<unsigned long long>(hi - lo) + 1)));
    for (long long v : probes) {
      EXPECT_EQ(FullMatch(*g, std::to_string(v)), v >= lo && v <= hi) << "[" << lo << "," << hi << "] " << v;
    }
  }
  // The edges of the grammar's 19-digit range.
  absl::StatusOr<Grammar> big = Convert(R"({"type":"integer","minimum":9223372036854775000})");
  ASSERT_TRUE(big.ok()) << big.status();
  EXPECT_TRUE(FullMatch(*big, "9223372036854775000"));
  EXPECT_TRUE(FullMatch(*big, "9999999999999999999"));
  EXPECT_FALSE(FullMatch(*big, "9223372036854774999"));
  EXPECT_FALSE(FullMatch(*big, "10000000000000000000"));
  absl::StatusOr<Grammar> huge = Convert(R"({"type":"integer","maximum":1e300,"minimum":-1e300})");
  ASSERT_TRUE(huge.ok()) << huge.status();
  EXPECT_TRUE(FullMatch(*huge, "-9999999999999999999"));
  EXPECT_TRUE(FullMatch(*huge, "0"));
  EXPECT_FALSE(ErrorOf(R"({"type":"integer","minimum":1e300})").empty());
  EXPECT_FALSE(ErrorOf(R"({"type":"integer","minimum":5,"maximum":4})").empty());
  EXPECT_FALSE(ErrorOf(R"({"type":"integer","minimum":2.1,"maximum":2.9})").empty());
}

// Bounded numbers: everything accepted is inside the bounds; with integral bounds, every
// exponent-free number with a fraction ending in a non-zero digit is accepted when inside.
TEST(JsonSchemaGrammarTest, NumberBounds) {
  struct Case {
    std::string bounds;
    double lo, hi;
    bool lo_excl, hi_excl;
    bool complete;  // integral bounds: exact for the exponent-free form
  };
  const double inf = INFINITY;
  const std::vector<Case> cases = {
      {R"("minimum":0,"maximum":1)", 0, 1, false, false, true},
      {R"("minimum":-3,"maximum":5)", -3, 5, false, false, true},
      {R"("exclusiveMinimum":-2,"exclusiveMaximum":2)", -2, 2, true, true, true},
      {R"("minimum":10)", 10, inf, false, false, true},
      {R"("maximum":-4)", -inf, -4, false, false, true},
      {R"("exclusiveMaximum":0)", -inf, 0, false, true, true},
      {R"("minimum":0)", 0, inf, false, false, true},
      {R"("exclusiveMinimum":0)", 0, inf, true, false, true},
      {R"("minimum":-2.5,"maximum":3.25)", -2.5, 3.25, false, false, false},
  };
  std::vector<std::string> texts;
  for (int i = -1200; i <= 1200; ++i) {
    const double v = i / 100.0;
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.2f", v);
    std::string s = buf;
    texts.push_back(s);
    // Drop trailing zeros ("1.50" -> "1.5", "2.00" -> "2") as the canonical form.
    while (s.back() == '0') s.pop_back();
    if (s.back() == '.') s.pop_back();
    if (s == "-0") continue;
    texts.push_back(s);
  }
  for (const char* t : {"1e2", "-1e2", "0.5e-3", "1E+1", "0e0", "-0.001e1"}) texts.push_back(t);
  for (const Case& c : cases) {
    SCOPED_TRACE(c.bounds);
    absl::StatusOr<Grammar> g = Convert(R"({"type":"number",)" + c.bounds + "}");
    ASSERT_TRUE(g.ok()) << g.status();
    int accepted = 0;
    for (const std::string& t : texts) {
      const double v = std::stod(t);
      const bool inside = (c.lo_excl ? v > c.lo : v >= c.lo) && (c.hi_excl ? v < c.hi : v <= c.hi);
      const bool matched = FullMatch(*g, t);
      accepted += matched;
      if (matched) {
        EXPECT_TRUE(inside) << t;  // sound
      }
      const bool canonical = t.find('e') == std::string::npos && t.find('E') == std::string::npos &&
                             (t.find('.') == std::string::npos || t.back() != '0') && t != "-0";
      if (c.complete && inside && canonical) {
        EXPECT_TRUE(matched) << t;
      }
    }
    EXPECT_GT(accepted, 10);
  }
  EXPECT_FALSE(ErrorOf(R"({"type":"number","minimum":0.2,"maximum":0.8})").empty());
}

TEST(JsonSchemaGrammarTest, UnsupportedKeywordsAreNamed) {
  struct Case {
    std::string schema, keyword, pointer;
  };
  const std::vector<Case> cases = {
      {R"({"type":"object","properties":{"tags":{"type":"array","uniqueItems":true}}})", "uniqueItems",
       "/properties/tags"},
      {R"({"not":{"type":"string"}})", "not", "/"},
      {R"({"if":{"type":"string"},"then":{}})", "if", "/"},
      {R"({"type":"object","patternProperties":{"^a":{}}})", "patternProperties", "/"},
      {R"({"type":"object","minProperties":1})", "minProperties", "/"},
      {R"({"type":"array","items":{"type":"number","multipleOf":2}})", "multipleOf", "/items"},
      {R"({"type":"object","dependentRequired":{}})", "dependentRequired", "/"},
      {R"({"type":"array","contains":{}})", "contains", "/"},
      {R"({"type":"object","propertyNames":{}})", "propertyNames", "/"},
      {R"({"$defs":{"a":{"frobnicate":1}},"$ref":"#/$defs/a"})", "frobnicate", "/$defs/a"},
      {R"({"anyOf":[{"type":"string"},{"type":"string","nullable":true}]})", "nullable", "/anyOf/1"},
      {R"({"properties":{"a/b":{"unevaluatedProperties":false}}})", "unevaluatedProperties", "/properties/a~1b"},
  };
  for (const Case& c : cases) {
    const std::string message = ErrorOf(c.schema);
    const std::string expected = "unsupported JSON schema keyword \"" + c.keyword + "\" at " + c.pointer;
    EXPECT_EQ(message, expected) << c.schema;
  }
}

TEST(JsonSchemaGrammarTest, MalformedSchemasAreErrors) {
  const std::vector<std::string> schemas = {
      R"({"type":5})",
      R"({"type":"strin"})",
      R"({"type":[]})",
      R"({"type":"object","required":"a"})",
      R"({"type":"object","required":[1]})",
      R"({"type":"object","properties":[]})",
      R"({"type":"object","properties":{"a":5}})",
      R"({"type":"object","required":["a"]})",
      R"({"type":"object","properties":{"a":false},"required":["a"]})",
      R"({"type":"object","additionalProperties":3})",
      R"({"type":"array","minItems":5,"maxItems":2})",
      R"({"type":"array","minItems":-1})",
      R"({"type":"array","minItems":1.5})",
      R"({"type":"array","maxItems":"3"})",
      R"({"type":"array","maxItems":100000})",
      R"({"type":"array","prefixItems":[{}],"items":false,"minItems":2})",
      R"({"type":"array","items":5})",
      R"({"$ref":"#/$defs/missing"})",
      R"({"$ref":"http://example.com/schema"})",
      R"({"$ref":5})",
      R"({"$defs":{"a":{"type":"string"}},"$ref":"#/$defs/a","type":"integer"})",
      R"({"$defs":[]})",
      R"({"enum":"x"})",
      R"({"enum":[]})",
      R"({"type":"integer","enum":["a"]})",
      R"({"enum":[1],"const":2})",
      R"({"enum":["a"],"maxLength":3})",
      R"({"type":"string","minLength":-1})",
      R"({"type":"string","minLength":5,"maxLength":2})",
      R"x({"type":"string","pattern":"(?=a)"})x",
      R"({"type":"string","pattern":5})",
      R"({"type":"string","pattern":"a","maxLength":3})",
      R"({"type":"string","format":"uri"})",
      R"({"type":"string","format":5})",
      R"({"type":"integer","minimum":"3"})",
      R"({"anyOf":[]})",
      R"({"anyOf":{}})",
      R"({"anyOf":[{}],"type":"string"})",
      R"({"allOf":[{},{}]})",
      R"({"anyOf":[{}],"oneOf":[{}]})",
      "5",
      R"("string")",
      "[]",
      "null",
      "false",
      // Left recursion through references.
      R"({"$defs":{"a":{"$ref":"#/$defs/a"}},"$ref":"#/$defs/a"})",
      R"({"anyOf":[{"$ref":"#"},{"type":"null"}]})",
      R"({"$defs":{"a":{"anyOf":[{"$ref":"#/$defs/b"}]},"b":{"allOf":[{"$ref":"#/$defs/a"}]}},"$ref":"#/$defs/a"})",
  };
  for (const std::string& s : schemas) {
    const std::string message = ErrorOf(s);
    EXPECT_FALSE(message.empty()) << s;
  }
  EXPECT_NE(ErrorOf(R"({"type":"string","format":"uri"})").find("uri"), std::string::npos);
  EXPECT_NE(ErrorOf(R"({"type":"object","properties":{"p":{"type":"strin"}}})").find("/properties/p/type"),
            std::string::npos);
}

TEST(JsonSchemaGrammarTest, DeepNestingIsAnErrorNotACrash) {
  // 100 nested array schemas: past the schema depth limit.
  std::string schema;
  for (int i = 0; i < 100; ++i) schema += R"({"type":"array","items":)";
  schema += "{}";
  for (int i = 0; i < 100; ++i) schema += "}";
  EXPECT_NE(ErrorOf(schema).find("64"), std::string::npos);
  // 30 levels are fine.
  std::string ok;
  for (int i = 0; i < 30; ++i) ok += R"({"type":"array","items":)";
  ok += R"({"type":"integer"})";
  for (int i = 0; i < 30; ++i) ok += "}";
  EXPECT_TRUE(Convert(ok).ok());
  // A pathologically deep document (in an enum) is refused before any recursion over it.
  const std::string deep = R"({"enum":[)" + std::string(50000, '[') + std::string(50000, ']') + "]}";
  EXPECT_FALSE(Convert(deep).ok());
  EXPECT_FALSE(JsonSchemaToGrammar(nlohmann::json::parse(deep)).ok());
  // A long chain of references.
  ordered_json chain = {{"$defs", ordered_json::object()}};
  for (int i = 0; i < 200; ++i) {
    chain["$defs"]["d" + std::to_string(i)] = {{"$ref", "#/$defs/d" + std::to_string(i + 1)}};
  }
  chain["$defs"]["d200"] = {{"type", "integer"}};
  chain["$ref"] = "#/$defs/d0";
  EXPECT_FALSE(JsonSchemaToGrammar(chain).ok());
}

// Subschemas written twice (array items, object members) become shared rules: nesting must not
// double the grammar per level.
TEST(JsonSchemaGrammarTest, GrammarStaysLinearInNesting) {
  std::string arrays;
  for (int i = 0; i < 40; ++i) arrays += R"({"type":"array","minItems":1,"items":)";
  arrays += R"({"type":"integer"})";
  for (int i = 0; i < 40; ++i) arrays += "}";
  absl::StatusOr<Grammar> g = Convert(arrays);
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_LT(g->ToString().size(), 20000u);
  EXPECT_TRUE(FullMatch(*g, std::string(40, '[') + "1" + std::string(40, ']')));

  std::string objects;
  for (int i = 0; i < 30; ++i) {
    objects += R"({"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"string"},"c":)";
  }
  objects += R"({"type":"null"})";
  for (int i = 0; i < 30; ++i) objects += R"(},"additionalProperties":{"type":"boolean"}})";
  g = Convert(objects);
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_LT(g->ToString().size(), 100000u);
  EXPECT_TRUE(FullMatch(*g, R"({"c":{"a":1,"c":{},"x":true},"y":false})"));
  EXPECT_FALSE(FullMatch(*g, R"({"c":{"a":1,"c":{},"x":1}})"));
}

TEST(JsonSchemaGrammarTest, AnnotationsAreIgnoredAndDraft4Works) {
  absl::StatusOr<Grammar> g = Convert(
      R"({"$schema":"https://json-schema.org/draft/2020-12/schema","$id":"x","title":"T","description":"D",
          "$comment":"c","type":"object","strict":true,"examples":[{}],
          "properties":{"a":{"type":"integer","default":1,"deprecated":true,"readOnly":true,"writeOnly":false}},
          "required":["a"]})");
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_TRUE(FullMatch(*g, R"({"a":1})"));
  // Draft-7 tuple form of items.
  g = Convert(R"({"type":"array","items":[{"type":"string"},{"type":"integer"}],"minItems":2})");
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_TRUE(FullMatch(*g, R"(["a",1])"));
  EXPECT_TRUE(FullMatch(*g, R"(["a",1,null])"));  // no additionalItems: any further items
  EXPECT_FALSE(FullMatch(*g, R"(["a"])"));
}

TEST(JsonSchemaGrammarTest, GrammarPrints) {
  absl::StatusOr<Grammar> g = Convert(
      R"({"$defs":{"n":{"type":"object","properties":{"v":{"type":"integer","minimum":1,"maximum":300}},
          "additionalProperties":{"$ref":"#/$defs/n"}}},"$ref":"#/$defs/n"})");
  ASSERT_TRUE(g.ok()) << g.status();
  const std::string text = g->ToString();
  EXPECT_NE(text.find("root"), std::string::npos);
  EXPECT_TRUE(FullMatch(*g, R"({"v":300,"x":{"y":{}}})"));
  EXPECT_FALSE(FullMatch(*g, R"({"v":301})"));
}

}  // namespace
}  // namespace strata::grammar
