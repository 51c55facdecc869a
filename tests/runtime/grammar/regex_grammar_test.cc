#include "runtime/grammar/regex_grammar.h"

#include <gtest/gtest.h>

#include <random>
#include <regex>
#include <string>
#include <vector>

#include "runtime/grammar/grammar_automaton.h"
#include "tests/runtime/grammar/naive_matcher_for_tests.h"

namespace strata::grammar {
namespace {

using testing::FullMatch;

bool Matches(std::string_view pattern, std::string_view text, const RegexOptions& o = {}) {
  absl::StatusOr<Expr> e = RegexToExpr(pattern, o);
  EXPECT_TRUE(e.ok()) << pattern << ": " << e.status();
  return e.ok() && FullMatch(*e, text);
}

std::string ErrorOf(std::string_view pattern) {
  absl::StatusOr<Expr> e = RegexToExpr(pattern);
  EXPECT_FALSE(e.ok()) << "expected an error for " << pattern;
  if (e.ok()) return "";
  EXPECT_EQ(e.status().code(), absl::StatusCode::kInvalidArgument) << pattern;
  return std::string(e.status().message());
}

// Strings over `alphabet` of length 0..max_len: all of them up to `exhaustive_len`, random beyond.
std::vector<std::string> Candidates(const std::string& alphabet, int exhaustive_len, int random_count,
                                    int max_len, unsigned seed) {
  std::vector<std::string> out = {""};
  std::vector<std::string> layer = {""};
  for (int len = 1; len <= exhaustive_len; ++len) {
    std::vector<std::string> next;
    for (const std::string& s : layer)
      for (char c : alphabet) next.push_back(s + c);
    out.insert(out.end(), next.begin(), next.end());
    layer = std::move(next);
  }
  std::mt19937 rng(seed);
  for (int i = 0; i < random_count; ++i) {
    const int len = static_cast<int>(rng() % (max_len + 1));
    std::string s;
    for (int k = 0; k < len; ++k) s += alphabet[rng() % alphabet.size()];
    out.push_back(s);
  }
  return out;
}

struct StdRegexCase {
  std::string pattern;
  std::string alphabet;
  std::vector<std::string> extra;  // hand-written strings worth checking
};

// Every pattern here is read the same by std::regex (ECMAScript) and by RegexToExpr.
TEST(RegexGrammarTest, AgreesWithStdRegex) {
  const std::vector<StdRegexCase> cases = {
      {"abc", "abc", {"abc", "ab", "abcc"}},
      {"a|b|", "abc", {}},
      {"a*", "ab", {}},
      {"a+b?", "ab", {}},
      {"(ab)*c", "abc", {"ababc", "abac"}},
      {"(?:ab|cd)+", "abcd", {"abcdab", "abc"}},
      {"a{3}", "a", {}},
      {"a{2,}", "ab", {}},
      {"a{1,3}b{0,2}", "ab", {}},
      {"(a|bc){2,3}", "abc", {"abcbc", "bcbcbc", "aaaa"}},
      {"[abc]+", "abcd", {}},
      {"[^abc]+", "abcd-", {}},
      {"[a-c]x[0-2]", "abcdx0123", {"cx2", "dx0"}},
      {"[-a]+", "-ab", {}},
      {"[a-]+", "-ab", {}},
      {"\\d+", "0a9 ", {"123", "12a"}},
      {"\\D\\w\\W", "a0_ -", {}},
      {"\\s*x\\S", "x \t\ny", {}},
      {"[\\d_]+", "0_a", {}},
      {"[^\\d\\s]", "0 a_", {}},
      {"a.c", "ab\nc", {"a\nc", "abc"}},
      {".*", "ab\n", {}},
      {"\\.\\*\\+\\?\\(\\)\\[\\]\\{\\}\\|\\^\\$\\/\\-\\\"\\\\", ".*+?()[]{}|^$/-\"\\",
       {".*+?()[]{}|^$/-\"\\"}},
      {"\\x41\\u0042", "ABC", {"AB"}},
      {"a\\tb\\nc", "abc\t\n", {"a\tb\nc"}},
      {"^ab$", "ab", {}},
      {"^(a|b)*$", "abc", {}},
      {"a*?b+?c??", "abc", {}},
      {"(a*)*b", "ab", {}},
      {"(|a)+", "a", {}},
      {"((a|b)c?){1,2}d", "abcd", {}},
      {"-?(0|[1-9][0-9]{0,2})(\\.[0-9]{1,2})?", "-0159.", {"-0.5", "100.25", "01", "1000"}},
      {"[A-Z][a-z]{1,4}( [A-Z][a-z]{1,4})?", "Aab Z", {"Abc Def", "A", "Ab cd"}},
      {"(yes|no|maybe)", "yesnomaybe", {"yes", "no", "maybe", "yesno"}},
      {"[0-9]{4}-[0-9]{2}-[0-9]{2}", "019-", {"2024-01-31", "2024-1-31"}},
      {"\\w+@\\w+\\.com", "a@.com", {"a@b.com", "ab@cd.com", "@b.com"}},
  };
  int checked = 0;
  unsigned seed = 1;
  for (const StdRegexCase& c : cases) {
    absl::StatusOr<Expr> e = RegexToExpr(c.pattern);
    ASSERT_TRUE(e.ok()) << c.pattern << ": " << e.status();
    const std::regex re(c.pattern, std::regex::ECMAScript);
    std::vector<std::string> strings = Candidates(c.alphabet, 4, 300, 10, seed++);
    strings.insert(strings.end(), c.extra.begin(), c.extra.end());
    for (const std::string& s : strings) {
      EXPECT_EQ(FullMatch(*e, s), std::regex_match(s, re)) << "pattern " << c.pattern << " text \"" << s << "\"";
      ++checked;
    }
  }
  EXPECT_GT(checked, 10000);
}

TEST(RegexGrammarTest, Unicode) {
  EXPECT_TRUE(Matches("é+", "ééé"));
  EXPECT_FALSE(Matches("é+", "e"));
  EXPECT_TRUE(Matches("[α-ω]{2}", "λμ"));
  EXPECT_FALSE(Matches("[α-ω]{2}", "λA"));
  EXPECT_TRUE(Matches(".", "😀"));
  EXPECT_TRUE(Matches("[^a]", "😀"));
  EXPECT_FALSE(Matches(".", "\xF0\x9F"));  // half a character
  EXPECT_TRUE(Matches("\\u00e9", "é"));
  EXPECT_TRUE(Matches("\\uD83D\\uDE00", "😀"));
  EXPECT_TRUE(Matches("日本+", "日本本"));
  EXPECT_TRUE(Matches("\\s", "\u3000"));
  EXPECT_FALSE(Matches("\\S", "\u3000"));
  EXPECT_TRUE(Matches("\\W", "é"));
}

TEST(RegexGrammarTest, GroupsAnchorsAndBraces) {
  EXPECT_TRUE(Matches("(?<year>[0-9]{2})-(?P<m>[a-z])", "24-x"));
  EXPECT_FALSE(Matches("(?<year>[0-9]{2})-(?P<m>[a-z])", "24-"));
  EXPECT_TRUE(Matches("^$", ""));
  EXPECT_TRUE(Matches("a{", "a{"));
  EXPECT_TRUE(Matches("a{x}", "a{x}"));
  EXPECT_TRUE(Matches("a{,2}", "aa"));
  EXPECT_TRUE(Matches("a{,2}", ""));
  EXPECT_FALSE(Matches("a{,2}", "aaa"));
  EXPECT_TRUE(Matches("a{2}+", "aa"));   // possessive
  EXPECT_TRUE(Matches("a{2,}?", "aaa"));  // lazy
  EXPECT_TRUE(Matches("a++b", "aab"));
  EXPECT_TRUE(Matches("a{1000}", std::string(1000, 'a')));
  EXPECT_TRUE(Matches("\\0", std::string(1, '\0')));
  EXPECT_TRUE(Matches("[\\]\\[]+", "][]"));
  EXPECT_TRUE(Matches("a\\ b\\#\\:", "a b#:"));
}

TEST(RegexGrammarTest, JsonStringContent) {
  RegexOptions o;
  o.json_string_content = true;
  // Literals that JSON must escape come out escaped.
  EXPECT_TRUE(Matches("a\"b", "a\\\"b", o));
  EXPECT_FALSE(Matches("a\"b", "a\"b", o));
  EXPECT_TRUE(Matches("a\\\\b", "a\\\\b", o));
  EXPECT_TRUE(Matches("x\\ny", "x\\ny", o));
  EXPECT_TRUE(Matches("\\x01", "\\u0001", o));
  EXPECT_TRUE(Matches("\\t", "\\t", o));
  // Classes leave out what would need an escape.
  EXPECT_TRUE(Matches(".+", "ab c", o));
  EXPECT_FALSE(Matches(".", "\"", o));
  EXPECT_FALSE(Matches(".", "\\", o));
  EXPECT_FALSE(Matches(".", "\t", o));
  EXPECT_FALSE(Matches("[^a]", "\"", o));
  EXPECT_TRUE(Matches("[^a]", "b", o));
  EXPECT_FALSE(Matches("\\s", "\n", o));
  EXPECT_TRUE(Matches("\\s", " ", o));
  EXPECT_TRUE(Matches("[\"a]", "a", o));
  EXPECT_FALSE(Matches("[\"a]", "\"", o));
  EXPECT_FALSE(Matches("[\\n]", "\n", o));  // an empty class: matches nothing
  // Without the option the same patterns match raw characters.
  EXPECT_TRUE(Matches("a\"b", "a\"b"));
  EXPECT_TRUE(Matches(".", "\""));
}

TEST(RegexGrammarTest, UnsupportedConstructsAreNamed) {
  struct Case {
    std::string pattern, needle;
  };
  const std::vector<Case> cases = {
      {"(a)\\1", "\\1"},         {"(?=a)a", "(?="},        {"(?!a)b", "(?!"},
      {"(?<=a)b", "(?<="},       {"(?<!a)b", "(?<!"},      {"\\bword", "\\b"},
      {"a\\B", "\\B"},           {"(?i)abc", "(?i"},       {"a^b", "^"},
      {"a$b", "$"},              {"(^a)", "^"},            {"\\p{L}", "\\p"},
      {"\\P{L}", "\\P"},         {"(?P=x)", "(?P="},       {"\\k<x>", "\\k"},
      {"(?>a)", "(?>"},          {"\\A", "\\A"},           {"\\Z", "\\Z"},
      {"[[:alpha:]]", "[:"},     {"\\q", "\\q"},           {"\\012", "\\01"},
      {"\\u{1F600}", "\\u{"},
  };
  for (const Case& c : cases) {
    const std::string message = ErrorOf(c.pattern);
    EXPECT_NE(message.find(c.needle), std::string::npos) << c.pattern << " -> " << message;
    EXPECT_NE(message.find("offset"), std::string::npos) << c.pattern << " -> " << message;
  }
  EXPECT_NE(ErrorOf("a(?=b)").find("offset 1"), std::string::npos);
}

TEST(RegexGrammarTest, MalformedPatterns) {
  for (const char* p : {"(", ")", "a)", "(a", "[a", "[]", "[^]", "*a", "a**", "a{2}{3}", "+", "?",
                        "{3}", "a{1001}", "a{2,1}", "a{0,5000}", "[z-a]", "[\\d-z]", "\\", "\\x4",
                        "\\u12", "\\uD800", "\xC3", "\xFF", "a|*"}) {
    absl::StatusOr<Expr> e = RegexToExpr(p);
    EXPECT_FALSE(e.ok()) << "pattern \"" << p << "\" should be rejected";
    if (!e.ok()) {
      EXPECT_EQ(e.status().code(), absl::StatusCode::kInvalidArgument) << p;
    }
  }
  EXPECT_NE(ErrorOf("a{1001}").find("1000"), std::string::npos);
  // Deep nesting is an error, not a stack overflow.
  EXPECT_FALSE(RegexToExpr(std::string(100000, '(') + std::string(100000, ')')).ok());
  EXPECT_TRUE(RegexToExpr(std::string(50, '(') + "a" + std::string(50, ')')).ok());
}

TEST(RegexGrammarTest, RegexToGrammarIsOneRule) {
  absl::StatusOr<Grammar> g = RegexToGrammar("[a-z]+(-[a-z]+)*");
  ASSERT_TRUE(g.ok()) << g.status();
  ASSERT_EQ(g->rules.size(), 1u);
  EXPECT_EQ(g->root, 0);
  EXPECT_TRUE(FullMatch(*g, "foo-bar"));
  EXPECT_FALSE(FullMatch(*g, "foo-"));
  EXPECT_FALSE(g->ToString().empty());
  EXPECT_FALSE(RegexToGrammar("(?=x)").ok());
}

}  // namespace
}  // namespace strata::grammar

// Patterns whose deterministic automaton is exponential are refused with the limit named, not
// built for minutes (fuzz_grammar found the second one taking 40 s under the sanitizers).
TEST(RegexGrammarTest, ExponentialPatternsAreRefused) {
  const std::string many_dots(34, '.');
  for (const std::string& pattern :
       {std::string("(a|b)*a(a|b){24}"),
        "[A\x01-Z]{3}-[0-9.]......+" + many_dots + "\x01][A-Z]\x01" + std::string(20, '.') + "]{1,4}(x|yz)*"}) {
    SCOPED_TRACE(pattern);
    auto g = strata::grammar::RegexToGrammar(pattern);
    ASSERT_TRUE(g.ok()) << g.status();
    auto a = strata::grammar::BuildAutomaton(*g);
    ASSERT_FALSE(a.ok());
    EXPECT_NE(a.status().message().find("too large"), std::string::npos) << a.status();
  }
  // The same shapes with a short tail are fine.
  EXPECT_TRUE(strata::grammar::BuildAutomaton(*strata::grammar::RegexToGrammar("(a|b)*a(a|b){4}")).ok());
}
