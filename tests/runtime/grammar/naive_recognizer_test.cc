// The test-only Earley recognizer against hand-written expectations (recursive grammars, bounded
// repeats, UTF-8 classes, empty languages) and against std::regex on every short string over a
// small alphabet for regular grammars.
#include "tests/runtime/grammar/naive_recognizer.h"

#include <gtest/gtest.h>

#include <regex>
#include <string>
#include <vector>

namespace strata::grammar {
namespace {

// All strings over `alphabet` of length at most `max_len`.
std::vector<std::string> AllStrings(const std::string& alphabet, int max_len) {
  std::vector<std::string> out = {""};
  std::vector<std::string> layer = {""};
  for (int len = 1; len <= max_len; ++len) {
    std::vector<std::string> next;
    for (const std::string& s : layer)
      for (char c : alphabet) next.push_back(s + c);
    out.insert(out.end(), next.begin(), next.end());
    layer = std::move(next);
  }
  return out;
}

// root ::= "(" root ")" root | ""
Grammar BalancedParens() {
  Grammar g;
  const int root = g.AddRule("root");
  g.rules[root].body = Choice({Sequence({Literal("("), RuleRef(root), Literal(")"), RuleRef(root)}),
                               Sequence({})});
  return g;
}

TEST(NaiveRecognizerTest, BalancedParentheses) {
  NaiveRecognizer r(BalancedParens());
  for (std::string s : {"", "()", "(())", "()()", "(()())()"}) EXPECT_TRUE(r.IsSentence(s)) << s;
  for (std::string s : {"(", ")", "(()", "())", ")(", "(a)"}) EXPECT_FALSE(r.IsSentence(s)) << s;
  for (std::string s : {"", "(", "((", "(()", "()(", "()"}) EXPECT_TRUE(r.IsViablePrefix(s)) << s;
  for (std::string s : {")", "())", "()())", "(x"}) EXPECT_FALSE(r.IsViablePrefix(s)) << s;
}

// expr ::= term ("+" term)* ; term ::= factor ("*" factor)* ; factor ::= [0-9]+ | "(" expr ")"
Grammar Arithmetic() {
  Grammar g;
  const int expr = g.AddRule("expr");
  const int term = g.AddRule("term");
  const int factor = g.AddRule("factor");
  g.rules[expr].body = Sequence({RuleRef(term), Star(Sequence({Literal("+"), RuleRef(term)}))});
  g.rules[term].body = Sequence({RuleRef(factor), Star(Sequence({Literal("*"), RuleRef(factor)}))});
  g.rules[factor].body = Choice({Plus(CharClass({{'0', '9'}})),
                                 Sequence({Literal("("), RuleRef(expr), Literal(")")})});
  g.root = expr;
  return g;
}

TEST(NaiveRecognizerTest, ArithmeticExpressions) {
  NaiveRecognizer r(Arithmetic());
  for (std::string s : {"1", "12+3", "1*2+3*4", "(1+2)*3", "((7))", "1+(2*(3+4))"})
    EXPECT_TRUE(r.IsSentence(s)) << s;
  for (std::string s : {"", "+", "1+", "(1", "1)", "1**2", "()", "1 + 2"})
    EXPECT_FALSE(r.IsSentence(s)) << s;
  for (std::string s : {"", "1+", "(", "((1+", "1*(2"}) EXPECT_TRUE(r.IsViablePrefix(s)) << s;
  for (std::string s : {"+", "1++", "()", "1)", "a"}) EXPECT_FALSE(r.IsViablePrefix(s)) << s;
}

// value ::= "[" (value ("," value)*)? "]" | [0-9]
TEST(NaiveRecognizerTest, JsonLikeNestedLists) {
  Grammar g;
  const int value = g.AddRule("value");
  g.rules[value].body = Choice(
      {Sequence({Literal("["),
                 Optional(Sequence({RuleRef(value), Star(Sequence({Literal(","), RuleRef(value)}))})),
                 Literal("]")}),
       Char('0'), Char('1')});
  NaiveRecognizer r(g);
  for (std::string s : {"0", "[]", "[0]", "[0,1]", "[[],[0,[1]]]", "[[[[]]]]"})
    EXPECT_TRUE(r.IsSentence(s)) << s;
  for (std::string s : {"", "[", "[0,]", "[,0]", "[]]", "[0 1]", "2"})
    EXPECT_FALSE(r.IsSentence(s)) << s;
  EXPECT_TRUE(r.IsViablePrefix("[[0,[1"));
  EXPECT_FALSE(r.IsViablePrefix("[0,,"));
  EXPECT_FALSE(r.IsViablePrefix("[]]"));
}

TEST(NaiveRecognizerTest, BoundedRepeat) {
  Grammar g;
  g.rules.push_back({"root", Repeat(Literal("a"), 2, 4)});
  NaiveRecognizer r(g);
  EXPECT_FALSE(r.IsSentence(""));
  EXPECT_FALSE(r.IsSentence("a"));
  EXPECT_TRUE(r.IsSentence("aa"));
  EXPECT_TRUE(r.IsSentence("aaa"));
  EXPECT_TRUE(r.IsSentence("aaaa"));
  EXPECT_FALSE(r.IsSentence("aaaaa"));
  EXPECT_TRUE(r.IsViablePrefix("a"));
  EXPECT_TRUE(r.IsViablePrefix("aaaa"));
  EXPECT_FALSE(r.IsViablePrefix("aaaaa"));
  EXPECT_FALSE(r.IsViablePrefix("b"));
}

TEST(NaiveRecognizerTest, ExactAndUnboundedRepeatWithMinimum) {
  Grammar g;
  const int root = g.AddRule("root");
  g.rules[root].body = Sequence({Repeat(Literal("ab"), 3, 3), Repeat(Literal("c"), 2, -1)});
  NaiveRecognizer r(g);
  EXPECT_TRUE(r.IsSentence("abababcc"));
  EXPECT_TRUE(r.IsSentence("abababccccc"));
  EXPECT_FALSE(r.IsSentence("ababcc"));
  EXPECT_FALSE(r.IsSentence("abababc"));
  EXPECT_FALSE(r.IsSentence("ababababcc"));
  EXPECT_TRUE(r.IsViablePrefix("ababa"));
  EXPECT_FALSE(r.IsViablePrefix("ababab" "ccb"));
}

TEST(NaiveRecognizerTest, Utf8GreekClass) {
  Grammar g;
  g.rules.push_back({"root", Plus(CharClass({{0x3B1, 0x3C9}}))});  // [α-ω]+
  NaiveRecognizer r(g);
  EXPECT_TRUE(r.IsSentence("α"));
  EXPECT_TRUE(r.IsSentence("αβγω"));
  EXPECT_FALSE(r.IsSentence("a"));
  EXPECT_FALSE(r.IsSentence("Α"));  // capital alpha, U+0391
  EXPECT_FALSE(r.IsSentence(""));
  // A code point's bytes one at a time: α is CE B1, ω is CF 89.
  EXPECT_TRUE(r.IsViablePrefix("\xCE"));
  EXPECT_TRUE(r.IsViablePrefix("\xCF"));
  EXPECT_TRUE(r.IsViablePrefix("α\xCF"));
  EXPECT_FALSE(r.IsSentence("\xCE"));
  EXPECT_FALSE(r.IsViablePrefix("\xCE\x80"));  // U+0380, just below α
  EXPECT_FALSE(r.IsViablePrefix("\xD0"));      // Cyrillic block
  EXPECT_FALSE(r.IsViablePrefix("\xCE\xB1\xB1"));  // stray continuation byte
}

TEST(NaiveRecognizerTest, NegatedClassCoversMultiByteCodePoints) {
  Grammar g;
  g.rules.push_back({"root", CharClass({{'a', 'a'}}, /*negated=*/true)});  // [^a]
  NaiveRecognizer r(g);
  for (std::string s : std::vector<std::string>{"b", "\n", "é", "€", "😀", std::string("\0", 1)})
    EXPECT_TRUE(r.IsSentence(s)) << s;
  EXPECT_FALSE(r.IsSentence("a"));
  EXPECT_FALSE(r.IsSentence("bb"));
  EXPECT_FALSE(r.IsSentence(""));
  EXPECT_TRUE(r.IsViablePrefix("\xF0\x9F"));      // first half of 😀
  EXPECT_FALSE(r.IsSentence("\xF0\x9F"));
  EXPECT_FALSE(r.IsViablePrefix("\xED\xA0"));     // would be a surrogate
  EXPECT_FALSE(r.IsViablePrefix("\xE0\x80"));     // only overlong encodings start so
  EXPECT_FALSE(r.IsViablePrefix("\xC0"));         // never valid
  EXPECT_FALSE(r.IsViablePrefix("\xF4\x90"));     // past U+10FFFF
  EXPECT_FALSE(r.IsViablePrefix("\xFF"));
  EXPECT_TRUE(r.IsViablePrefix("\xF4\x8F\xBF"));  // U+10FFFF minus its last byte
  EXPECT_FALSE(r.IsSentence("\xED\xA0\x80"));     // an encoded surrogate is not a code point
}

TEST(NaiveRecognizerTest, AnyCharAndLiteralBytes) {
  Grammar g;
  g.rules.push_back({"root", Sequence({Literal("\xCE"), AnyChar()})});
  NaiveRecognizer r(g);
  // The literal's raw byte is matched as a byte; the class then needs a whole code point.
  EXPECT_TRUE(r.IsSentence("\xCE" "x"));
  EXPECT_FALSE(r.IsSentence("\xCE\xB1"));  // B1 alone is no code point
  EXPECT_TRUE(r.IsViablePrefix("\xCE"));
}

TEST(NaiveRecognizerTest, EmptyLanguageRules) {
  {
    Grammar g;  // root ::= <nothing>
    g.rules.push_back({"root", Choice({})});
    NaiveRecognizer r(g);
    EXPECT_FALSE(r.IsSentence(""));
    EXPECT_FALSE(r.IsViablePrefix(""));
  }
  {
    Grammar g;  // root ::= "a" dead | "b" ; dead ::= "x" dead  (never finishes)
    const int root = g.AddRule("root");
    const int dead = g.AddRule("dead");
    g.rules[root].body = Choice({Sequence({Literal("a"), RuleRef(dead)}), Literal("b")});
    g.rules[dead].body = Sequence({Literal("x"), RuleRef(dead)});
    NaiveRecognizer r(g);
    EXPECT_TRUE(r.IsSentence("b"));
    EXPECT_TRUE(r.IsViablePrefix(""));
    EXPECT_FALSE(r.IsViablePrefix("a"));
    EXPECT_FALSE(r.IsViablePrefix("ax"));
  }
  {
    Grammar g;  // root ::= "a" [] | "c" [^\x00-\U0010FFFF]
    g.rules.push_back({"root", Choice({Sequence({Literal("a"), CharClass({})}),
                                       Sequence({Literal("c"), CharClass({{0, 0x10FFFF}}, true)})})});
    NaiveRecognizer r(g);
    EXPECT_FALSE(r.IsViablePrefix(""));
    EXPECT_FALSE(r.IsViablePrefix("a"));
    EXPECT_FALSE(r.IsViablePrefix("c"));
  }
  {
    Grammar g;  // a dangling reference, a bad root and reversed bounds: all empty
    g.rules.push_back({"root", Choice({RuleRef(7), Repeat(Literal("a"), 3, 2)})});
    EXPECT_FALSE(IsViablePrefix(g, ""));
    EXPECT_FALSE(IsViablePrefix(g, "a"));
    g.rules[0].body = Literal("a");
    g.root = 3;
    EXPECT_FALSE(IsViablePrefix(g, ""));
    EXPECT_FALSE(IsSentence(g, "a"));
  }
}

TEST(NaiveRecognizerTest, NullableRulesInTheMiddle) {
  // root ::= e e "a" e ; e ::= "" | e2 ; e2 ::= e   (nullable through a cycle, and ambiguous)
  Grammar g;
  const int root = g.AddRule("root");
  const int e = g.AddRule("e");
  const int e2 = g.AddRule("e2");
  g.rules[root].body = Sequence({RuleRef(e), RuleRef(e), Literal("a"), RuleRef(e)});
  g.rules[e].body = Choice({Sequence({}), RuleRef(e2)});
  g.rules[e2].body = RuleRef(e);
  NaiveRecognizer r(g);
  EXPECT_TRUE(r.IsSentence("a"));
  EXPECT_FALSE(r.IsSentence(""));
  EXPECT_FALSE(r.IsSentence("aa"));
  EXPECT_TRUE(r.IsViablePrefix(""));
}

struct RegularCase {
  Grammar grammar;
  std::string regex;
};

// Regular grammars next to equal regexes, each of whose viable prefixes is at most 3 bytes short
// of a sentence.
std::vector<RegularCase> RegularCases() {
  auto single = [](Expr body) {
    Grammar g;
    g.rules.push_back({"root", std::move(body)});
    return g;
  };
  const Expr a = Literal("a"), b = Literal("b"), c = Literal("c");
  std::vector<RegularCase> cases;
  cases.push_back({single(Sequence({Star(a), b})), "a*b"});
  cases.push_back({single(Plus(Choice({Sequence({a, b}), c}))), "(ab|c)+"});
  cases.push_back({single(Repeat(a, 2, 4)), "a{2,4}"});
  cases.push_back({single(Sequence({Star(Choice({a, b})), c, Optional(Choice({a, b}))})), "[ab]*c[ab]?"});
  cases.push_back({single(Repeat(Sequence({Optional(Sequence({a, b})), c}), 1, 2)), "((ab)?c){1,2}"});
  cases.push_back({single(Sequence({Plus(CharClass({{'a', 'b'}})), Star(c)})), "[ab]+c*"});
  cases.push_back({single(Sequence({CharClass({{'a', 'a'}}, true), Optional(b)})), "[^a]b?"});
  cases.push_back({single(Repeat(Repeat(a, 0, 1), 2, -1)), "(a?){2,}"});
  cases.push_back({single(Sequence({})), ""});
  cases.push_back({single(Repeat(Choice({a, Sequence({b, b})}), 3, 3)), "(a|bb){3}"});
  // Two rules, non-recursive: root ::= x "c" x ; x ::= ("a" | "b")?
  {
    Grammar g;
    const int root = g.AddRule("root");
    const int x = g.AddRule("x");
    g.rules[root].body = Sequence({RuleRef(x), c, RuleRef(x)});
    g.rules[x].body = Optional(Choice({a, b}));
    cases.push_back({std::move(g), "[ab]?c[ab]?"});
  }
  // Right recursion is regular too: root ::= "a" root | "b"
  {
    Grammar g;
    const int root = g.AddRule("root");
    g.rules[root].body = Choice({Sequence({a, RuleRef(root)}), b});
    cases.push_back({std::move(g), "a*b"});
  }
  return cases;
}

TEST(NaiveRecognizerTest, RegularGrammarsMatchStdRegexExhaustively) {
  const std::vector<std::string> strings = AllStrings("abc", 6);
  for (const RegularCase& rc : RegularCases()) {
    const std::regex re(rc.regex);
    NaiveRecognizer r(rc.grammar);
    int sentences = 0;
    for (const std::string& s : strings) {
      const bool expected = std::regex_match(s, re);
      sentences += expected;
      ASSERT_EQ(r.IsSentence(s), expected) << rc.regex << " on '" << s << "'";
    }
    EXPECT_GT(sentences, 0) << rc.regex;
  }
}

TEST(NaiveRecognizerTest, ViablePrefixesMatchStdRegexExhaustively) {
  const std::vector<std::string> prefixes = AllStrings("abc", 4);
  const std::vector<std::string> suffixes = AllStrings("abc", 3);
  for (const RegularCase& rc : RegularCases()) {
    const std::regex re(rc.regex);
    NaiveRecognizer r(rc.grammar);
    for (const std::string& p : prefixes) {
      bool expected = false;
      for (const std::string& s : suffixes) expected = expected || std::regex_match(p + s, re);
      ASSERT_EQ(r.IsViablePrefix(p), expected) << rc.regex << " on '" << p << "'";
    }
  }
}

}  // namespace
}  // namespace strata::grammar
