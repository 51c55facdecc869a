// ParseEbnf (the GBNF / xgrammar dialect of vLLM's guided_grammar) and ChoiceGrammar: what each
// construct parses to, each error with its line:column, and round trips through
// Grammar::ToString() checked with the naive Earley recognizer.
#include "runtime/grammar/ebnf_parser.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/runtime/grammar/naive_recognizer.h"

namespace strata::grammar {
namespace {

Grammar MustParse(std::string_view text, std::string_view root = "root") {
  absl::StatusOr<Grammar> g = ParseEbnf(text, root);
  EXPECT_TRUE(g.ok()) << g.status() << "\n" << text;
  return g.ok() ? *std::move(g) : Grammar{};
}

// The error for `text`: InvalidArgument, starting with `where` ("line:column"), containing `what`.
void ExpectError(std::string_view text, const std::string& where, const std::string& what) {
  absl::StatusOr<Grammar> g = ParseEbnf(text);
  ASSERT_FALSE(g.ok()) << "parsed:\n" << text;
  EXPECT_EQ(g.status().code(), absl::StatusCode::kInvalidArgument);
  const std::string message(g.status().message());
  EXPECT_EQ(message.substr(0, where.size() + 1), where + ":") << message;
  EXPECT_NE(message.find(what), std::string::npos) << message;
}

const Expr& RootBody(const Grammar& g) { return g.rules[g.root].body; }

std::vector<std::string> AllStrings(const std::string& alphabet, int max_len) {
  std::vector<std::string> out = {""}, layer = {""};
  for (int len = 1; len <= max_len; ++len) {
    std::vector<std::string> next;
    for (const std::string& s : layer)
      for (char c : alphabet) next.push_back(s + c);
    out.insert(out.end(), next.begin(), next.end());
    layer = std::move(next);
  }
  return out;
}

// --- Parsing -----------------------------------------------------------------------------------

TEST(EbnfParserTest, LiteralWithEveryEscape) {
  Grammar g = MustParse(R"(root ::= "\n\r\t\\\"\'\[\]\-\^\x41\u00e9\U0001F600")");
  ASSERT_EQ(RootBody(g).kind, Expr::Kind::kBytes);
  EXPECT_EQ(RootBody(g).bytes, "\n\r\t\\\"'[]-^A\xC3\xA9\xF0\x9F\x98\x80");
}

TEST(EbnfParserTest, LiteralBytesAreKeptAsWritten) {
  // \xHH is one raw byte (even alone: half a character); raw UTF-8 is copied.
  EXPECT_EQ(RootBody(MustParse(R"(root ::= "\xCE\xB1\xff")")).bytes, "\xCE\xB1\xFF");
  EXPECT_EQ(RootBody(MustParse("root ::= \"é α\"")).bytes, "é α");
  EXPECT_EQ(RootBody(MustParse("root ::= \"a#b\"")).bytes, "a#b");  // no comment inside
  const Expr empty = RootBody(MustParse(R"(root ::= "")"));
  EXPECT_EQ(empty.kind, Expr::Kind::kBytes);
  EXPECT_EQ(empty.bytes, "");
}

TEST(EbnfParserTest, CharacterClasses) {
  using Ranges = std::vector<std::pair<uint32_t, uint32_t>>;
  Expr e = RootBody(MustParse("root ::= [a-z0-9_]"));
  ASSERT_EQ(e.kind, Expr::Kind::kCharClass);
  EXPECT_FALSE(e.negated);
  EXPECT_EQ(e.ranges, (Ranges{{'a', 'z'}, {'0', '9'}, {'_', '_'}}));

  e = RootBody(MustParse("root ::= [^a]"));
  EXPECT_TRUE(e.negated);
  EXPECT_EQ(e.ranges, (Ranges{{'a', 'a'}}));

  e = RootBody(MustParse(R"(root ::= [\]\-\^\\\n\[])"));
  EXPECT_EQ(e.ranges, (Ranges{{']', ']'}, {'-', '-'}, {'^', '^'}, {'\\', '\\'}, {'\n', '\n'},
                              {'[', '['}}));

  e = RootBody(MustParse("root ::= [α-ω]"));
  EXPECT_EQ(e.ranges, (Ranges{{0x3B1, 0x3C9}}));

  // In a class \xHH is a code point, not a byte.
  e = RootBody(MustParse(R"(root ::= [\x41-\u00e9\U0001F600])"));
  EXPECT_EQ(e.ranges, (Ranges{{0x41, 0xE9}, {0x1F600, 0x1F600}}));

  // '-' first or last is itself; a '^' not first is itself.
  e = RootBody(MustParse("root ::= [-a^]"));
  EXPECT_EQ(e.ranges, (Ranges{{'-', '-'}, {'a', 'a'}, {'^', '^'}}));
  e = RootBody(MustParse("root ::= [a-]"));
  EXPECT_EQ(e.ranges, (Ranges{{'a', 'a'}, {'-', '-'}}));

  e = RootBody(MustParse("root ::= []"));  // nothing
  EXPECT_TRUE(e.ranges.empty());
  EXPECT_FALSE(e.negated);
  e = RootBody(MustParse("root ::= [^]"));  // anything
  EXPECT_TRUE(e.ranges.empty());
  EXPECT_TRUE(e.negated);

  e = RootBody(MustParse("root ::= ."));
  EXPECT_EQ(e.kind, Expr::Kind::kCharClass);
  EXPECT_TRUE(e.negated);
  EXPECT_TRUE(e.ranges.empty());
}

TEST(EbnfParserTest, Quantifiers) {
  struct Case {
    const char* text;
    int min, max;
  };
  for (const Case& c : {Case{"root ::= \"a\"*", 0, -1}, Case{"root ::= \"a\"+", 1, -1},
                        Case{"root ::= \"a\"?", 0, 1}, Case{"root ::= \"a\"{3}", 3, 3},
                        Case{"root ::= \"a\"{2,}", 2, -1}, Case{"root ::= \"a\"{2,5}", 2, 5},
                        Case{"root ::= \"a\"{ 2 , 5 }", 2, 5}, Case{"root ::= \"a\" *", 0, -1},
                        Case{"root ::= \"a\"{0,10000}", 0, 10000}}) {
    const Expr e = RootBody(MustParse(c.text));
    ASSERT_EQ(e.kind, Expr::Kind::kRepeat) << c.text;
    EXPECT_EQ(e.min, c.min) << c.text;
    EXPECT_EQ(e.max, c.max) << c.text;
    EXPECT_EQ(e.items[0].bytes, "a") << c.text;
  }
  // Quantifiers stack (Grammar::ToString prints a repeat of a repeat so).
  const Expr e = RootBody(MustParse("root ::= \"a\"*?"));
  ASSERT_EQ(e.kind, Expr::Kind::kRepeat);
  EXPECT_EQ(e.max, 1);
  EXPECT_EQ(e.items[0].kind, Expr::Kind::kRepeat);
  EXPECT_EQ(e.items[0].max, -1);
  // A quantifier binds to one element only.
  NaiveRecognizer r(MustParse(R"(root ::= "a" "b"+ ("c" "d"){2})"));
  EXPECT_TRUE(r.IsSentence("abbcdcd"));
  EXPECT_FALSE(r.IsSentence("ababcdcd"));
}

TEST(EbnfParserTest, CommentsAndMultiLineRules) {
  Grammar g = MustParse(R"(# a grammar
root ::= "a"   # trailing comment with "quotes" and [brackets
    item       # the rule goes on
  | "b"
item ::=
  ( "x" |
    "y" )+     # last line without newline)");
  ASSERT_EQ(g.rules.size(), 2u);
  EXPECT_EQ(g.rules[0].name, "root");
  EXPECT_EQ(g.rules[1].name, "item");
  NaiveRecognizer r(g);
  for (const char* s : {"ax", "axyx", "b"}) EXPECT_TRUE(r.IsSentence(s)) << s;
  for (const char* s : {"a", "bx", "x", ""}) EXPECT_FALSE(r.IsSentence(s)) << s;
}

TEST(EbnfParserTest, SequenceBindsTighterThanAlternation) {
  const Expr e = RootBody(MustParse(R"(root ::= "a" "b" | "c")"));
  ASSERT_EQ(e.kind, Expr::Kind::kChoice);
  ASSERT_EQ(e.items.size(), 2u);
  ASSERT_EQ(e.items[0].kind, Expr::Kind::kSequence);
  EXPECT_EQ(e.items[0].items.size(), 2u);
  EXPECT_EQ(e.items[1].bytes, "c");
  NaiveRecognizer r(MustParse(R"(root ::= "a" "b" | "c")"));
  EXPECT_TRUE(r.IsSentence("ab"));
  EXPECT_TRUE(r.IsSentence("c"));
  EXPECT_FALSE(r.IsSentence("ac"));
  EXPECT_FALSE(r.IsSentence("abc"));
  NaiveRecognizer grouped(MustParse(R"(root ::= "a" ("b" | "c"))"));
  EXPECT_TRUE(grouped.IsSentence("ac"));
  EXPECT_FALSE(grouped.IsSentence("c"));
}

TEST(EbnfParserTest, RuleNamesReferencesAndRoot) {
  // Forward references, recursion, names with '.', '-', '_' and digits, and several rules on one
  // line: a rule ends where `name ::=` begins.
  Grammar g = MustParse(R"(
main ::= list.item_2 ("," list.item_2)* list.item_2 ::= my-value
my-value ::= "[" main? "]" | "0"
)", "main");
  ASSERT_EQ(g.rules.size(), 3u);
  EXPECT_EQ(g.rules[g.root].name, "main");
  // Rules are numbered in the order they are written.
  EXPECT_EQ(g.rules[0].name, "main");
  EXPECT_EQ(g.rules[1].name, "list.item_2");
  EXPECT_EQ(g.rules[2].name, "my-value");
  NaiveRecognizer r(g);
  for (const char* s : {"0", "0,0", "[0,[]],0", "[]"}) EXPECT_TRUE(r.IsSentence(s)) << s;
  for (const char* s : {"", "0,", "[0"}) EXPECT_FALSE(r.IsSentence(s)) << s;
  // The same text with another root.
  Grammar other = MustParse("main ::= \"a\" sub\nsub ::= \"b\"", "sub");
  EXPECT_EQ(other.rules[other.root].name, "sub");
  EXPECT_TRUE(IsSentence(other, "b"));
}

TEST(EbnfParserTest, EmptyAlternatives) {
  NaiveRecognizer r(MustParse(R"(root ::= "a" | )"));
  EXPECT_TRUE(r.IsSentence(""));
  EXPECT_TRUE(r.IsSentence("a"));
  NaiveRecognizer group(MustParse(R"(root ::= "x" ( | "y") "z")"));
  EXPECT_TRUE(group.IsSentence("xz"));
  EXPECT_TRUE(group.IsSentence("xyz"));
}

TEST(EbnfParserTest, DeepButAllowedNesting) {
  std::string text = "root ::= " + std::string(100, '(') + "\"a\"" + std::string(100, ')');
  EXPECT_TRUE(IsSentence(MustParse(text), "a"));
}

// --- Errors -------------------------------------------------------------------------------------

TEST(EbnfParserErrorTest, UnknownRule) {
  ExpectError("root ::= \"a\"\n  | foo.bar \"b\"\n", "2:5", "unknown rule 'foo.bar'");
}

TEST(EbnfParserErrorTest, MissingRoot) {
  ExpectError("start ::= \"a\"", "1:14", "missing root rule");
  ExpectError("start ::= \"a\"", "1:14", "'root ::= ...'");
  EXPECT_FALSE(ParseEbnf("root ::= \"a\"", "start").ok());
}

TEST(EbnfParserErrorTest, DuplicateRule) {
  ExpectError("root ::= x\nx ::= \"a\"\n x ::= \"b\"", "3:2", "duplicate definition of rule 'x'");
  ExpectError("root ::= x\nx ::= \"a\"\n x ::= \"b\"", "3:2", "first defined at 2:1");
}

TEST(EbnfParserErrorTest, UnterminatedLiteral) {
  ExpectError("root ::= \"abc", "1:10", "unterminated string literal");
  ExpectError("root ::= \"abc\n\"", "1:10", "unterminated string literal");
  ExpectError("root ::= \"abc\\\"", "1:10", "unterminated string literal");
}

TEST(EbnfParserErrorTest, UnterminatedClass) {
  ExpectError("root ::= \"x\" [a-z", "1:14", "unterminated character class");
  ExpectError("root ::= [a-\n]", "1:10", "unterminated character class");
  ExpectError("root ::= [\\]", "1:10", "unterminated character class");
}

TEST(EbnfParserErrorTest, BadEscapes) {
  ExpectError(R"(root ::= "a\q")", "1:12", "bad escape '\\q'");
  ExpectError(R"(root ::= "\x4")", "1:11", "expects 2 hex digits");
  ExpectError(R"(root ::= "\uZZZZ")", "1:11", "expects 4 hex digits");
  ExpectError(R"(root ::= "\U0001F60")", "1:11", "expects 8 hex digits");
  ExpectError(R"(root ::= "\U00110000")", "1:11", "past the last code point");
  ExpectError(R"(root ::= "\uD800")", "1:11", "surrogate");
  ExpectError(R"(root ::= [\d])", "1:11", "bad escape '\\d'");
}

TEST(EbnfParserErrorTest, ClassContents) {
  ExpectError("root ::= [z-a]", "1:11", "character range out of order");
  ExpectError("root ::= [\xCE]", "1:11", "invalid UTF-8");
}

TEST(EbnfParserErrorTest, RepetitionBounds) {
  ExpectError("root ::= \"a\"{5,2}", "1:13", "repetition bounds out of order");
  ExpectError("root ::= \"a\"{10001}", "1:14", "over the limit of 10000");
  ExpectError("root ::= \"a\"{2,99999999999999999999}", "1:16", "over the limit of 10000");
  ExpectError("root ::= \"a\"{,3}", "1:14", "expected a number");
  ExpectError("root ::= \"a\"{2", "1:15", "expected '}'");
  ExpectError("root ::= \"a\"{2,x}", "1:16", "expected a number");
}

TEST(EbnfParserErrorTest, EmptyInput) {
  ExpectError("", "1:1", "empty grammar");
  ExpectError("  # only a comment\n\n", "3:1", "empty grammar");
}

TEST(EbnfParserErrorTest, Structure) {
  ExpectError("root \"a\"", "1:6", "expected '::=' after rule name 'root'");
  ExpectError("root ::= * \"a\"", "1:10", "nothing to repeat");
  ExpectError("root ::= \"a\" | +", "1:16", "nothing to repeat");
  ExpectError("root ::= \"a\")", "1:13", "unmatched ')'");
  ExpectError("root ::= (\"a\"\n", "2:1", "expected ')' to close the '(' at 1:10");
  ExpectError("root ::= 'a'", "1:10", "unexpected '''");
  ExpectError("root ::= \"a\" ; \"b\"", "1:14", "unexpected ';'");
  ExpectError("::= \"a\"", "1:1", "expected a rule name");
  ExpectError("root ::= (x ::= \"a\")", "1:11", "expected ')'");
}

TEST(EbnfParserErrorTest, NestingDepthGuard) {
  const std::string deep = "root ::= " + std::string(300, '(') + "\"a\"" + std::string(300, ')');
  ExpectError(deep, "1:266", "nested too deeply");
  // Far deeper than any stack could take by recursion: refused, no crash.
  const std::string hostile = "root ::= " + std::string(1000000, '(');
  EXPECT_FALSE(ParseEbnf(hostile).ok());
  ExpectError("root ::= \"a\"" + std::string(300, '?'), "1:268", "nested too deeply");
  // Deep trees built from alternation inside groups count too.
  std::string alternating = "root ::= ";
  for (int i = 0; i < 200; ++i) alternating += "\"a\" (\"b\" | ";
  alternating += "\"c\"" + std::string(200, ')');
  ExpectError(alternating, "1:801", "nested too deeply");
}

// --- Round trips through Grammar::ToString ------------------------------------------------------

// Printed and parsed back, `g` accepts and rejects the same strings, and prints the same again.
void ExpectRoundTrip(const Grammar& g, const std::vector<std::string>& strings) {
  const std::string printed = g.ToString();
  absl::StatusOr<Grammar> parsed = ParseEbnf(printed);
  ASSERT_TRUE(parsed.ok()) << parsed.status() << "\n" << printed;
  EXPECT_EQ(parsed->ToString(), printed);
  NaiveRecognizer before(g), after(*parsed);
  int sentences = 0;
  for (const std::string& s : strings) {
    const bool sentence = before.IsSentence(s);
    sentences += sentence;
    ASSERT_EQ(after.IsSentence(s), sentence) << "'" << s << "' in\n" << printed;
    ASSERT_EQ(after.IsViablePrefix(s), before.IsViablePrefix(s)) << "'" << s << "' in\n" << printed;
  }
  EXPECT_GT(sentences, 0) << printed;
}

TEST(EbnfRoundTripTest, SpecialCharactersInLiteralsAndClasses) {
  Grammar g;
  const int root = g.AddRule("root");
  const int item = g.AddRule("item");
  g.rules[root].body = Star(RuleRef(item));
  g.rules[item].body = Choice({
      Literal("\""), Literal("\\"), Literal("\n\t\r"), Literal(std::string("\x01\x7f", 2)),
      Literal("a-]"), Literal("é"), Literal("\xCE"),  // half of a character: bytes, not text
      CharClass({{']', ']'}, {'-', '-'}, {'^', '^'}, {'\\', '\\'}}),
      CharClass({{0x3B1, 0x3C9}, {0x1F600, 0x1F64F}}),
      CharClass({{'a', 'z'}, {'"', '"'}, {0, 0x1F}}, /*negated=*/true),
  });
  std::vector<std::string> strings = AllStrings(std::string("a-]\"\\^\nb\x01", 9), 3);
  for (const char* s : {"é", "α", "ω", "😀", "\xCE", "\xCE\xB1", "a-]", "\n\t\r", "\x01\x7f", "€", "z"})
    strings.push_back(s);
  ExpectRoundTrip(g, strings);
}

TEST(EbnfRoundTripTest, StructureAndRepeats) {
  Grammar g;
  const int root = g.AddRule("root");
  const int x = g.AddRule("x");
  const int y = g.AddRule("y-name");
  g.rules[root].body = Sequence({RuleRef(x), Optional(Choice({RuleRef(y), Sequence({})})),
                                 Repeat(Repeat(Literal("b"), 0, 1), 2, 3)});
  g.rules[x].body = Choice({Repeat(Sequence({Literal("a"), Literal("b")}), 1, 2),
                            Repeat(Choice({Literal("a"), Char('c')}), 0, 3), Plus(Literal("c"))});
  g.rules[y].body = Sequence({Literal("-"), Star(Choice({})), Optional(RuleRef(y))});
  ExpectRoundTrip(g, AllStrings("abc-", 5));
}

TEST(EbnfRoundTripTest, RootNotFirstAndEmptyLanguageRule) {
  Grammar g;
  const int dead = g.AddRule("dead");
  const int root = g.AddRule("start");
  g.rules[dead].body = Choice({});
  g.rules[root].body = Choice({Literal("a"), Sequence({Literal("b"), RuleRef(dead)})});
  g.root = root;
  ExpectRoundTrip(g, AllStrings("ab", 3));
}

TEST(EbnfRoundTripTest, CollidingAndInvalidRuleNamesPrintUniquely) {
  // "a", "a", "a_1" must not print as a, a_1, a_1 (the printed text is the compile cache's key);
  // names the EBNF cannot hold are made valid.
  Grammar g;
  const int a = g.AddRule("a"), a2 = g.AddRule("a"), a1 = g.AddRule("a_1"), first = g.AddRule("1st"),
            root = g.AddRule("-x");
  g.rules[a].body = Bytes("x");
  g.rules[a2].body = Bytes("y");
  g.rules[a1].body = Bytes("z");
  g.rules[first].body = Bytes("w");
  g.rules[root].body = Sequence({RuleRef(a), RuleRef(a2), RuleRef(a1), RuleRef(first)});
  g.root = root;
  ExpectRoundTrip(g, {"xyzw", "xxzw", "xyz", "yxzw"});
}

TEST(EbnfRoundTripTest, ParsedTextPrintsStably) {
  const char* text = R"(
root ::= ws value ws
value ::= object | array | string | number | "true" | "false" | "null"
object ::= "{" ws (member ("," ws member)*)? "}"
member ::= string ws ":" ws value ws
array ::= "[" ws (value ws ("," ws value ws)*)? "]"
string ::= "\"" ([^"\\\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4}))* "\""
number ::= "-"? ([0-9] | [1-9] [0-9]{1,15}) ("." [0-9]+)? ([eE] [-+]? [0-9]+)?
ws ::= [ \t\n]{0,20}
)";
  Grammar g = MustParse(text);
  NaiveRecognizer r(g);
  for (const char* s : {"{\"a\": [1, 2.5e-3, true, null, \"x\\u00e9\"]}", " \"é\" ", "-0.5", "[]"})
    EXPECT_TRUE(r.IsSentence(s)) << s;
  for (const char* s : {"{\"a\" 1}", "01x", "\"\x01\"", "[1,]"}) EXPECT_FALSE(r.IsSentence(s)) << s;
  EXPECT_TRUE(r.IsViablePrefix("{\"a\": [1, 2"));
  ExpectRoundTrip(g, {"{}", "[1,2]", "\"\\n\"", "{\"k\":\"v\"}", "-12.5E+3", "[", "tru", "x"});
}

// --- ChoiceGrammar ------------------------------------------------------------------------------

TEST(ChoiceGrammarTest, ExactlyOneOfTheChoices) {
  NaiveRecognizer r(ChoiceGrammar({"yes", "no", "maybe", "é\"\\"}));
  for (const char* s : {"yes", "no", "maybe", "é\"\\"}) EXPECT_TRUE(r.IsSentence(s)) << s;
  for (const char* s : {"", "ye", "yesno", "Yes", "maybe "}) EXPECT_FALSE(r.IsSentence(s)) << s;
  EXPECT_TRUE(r.IsViablePrefix("ma"));
  EXPECT_TRUE(r.IsViablePrefix("\xC3"));
  EXPECT_FALSE(r.IsViablePrefix("x"));
  ExpectRoundTrip(ChoiceGrammar({"yes", "no", "a\nb", "\"q\""}), {"yes", "no", "a\nb", "\"q\"", "y"});
}

TEST(ChoiceGrammarTest, OneChoiceAndNone) {
  EXPECT_TRUE(IsSentence(ChoiceGrammar({"only"}), "only"));
  EXPECT_TRUE(IsSentence(ChoiceGrammar({""}), ""));
  const Grammar none = ChoiceGrammar({});
  EXPECT_FALSE(IsViablePrefix(none, ""));
  EXPECT_FALSE(IsSentence(none, ""));
  // Its text parses back to a grammar that still matches nothing.
  absl::StatusOr<Grammar> parsed = ParseEbnf(none.ToString());
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_FALSE(IsViablePrefix(*parsed, ""));
}

}  // namespace
}  // namespace strata::grammar
