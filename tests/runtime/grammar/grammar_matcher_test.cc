// The token mask against brute force: at every step of seeded random walks through a grammar,
// each token is allowed iff output + its bytes is a prefix of a sentence, and the end iff the
// output is a sentence, as an independent Earley recognizer (naive_recognizer.h) decides. Hand
// grammars (recursion, nullable rules, UTF-8 classes, repetition bounds), random grammars, the
// first token's own bytes (SentencePiece), SmolLM2's real vocabulary, and the compile errors.
#include <gtest/gtest.h>

#include <fstream>
#include <random>
#include <sstream>

#include "runtime/grammar/grammar_matcher.h"
#include "runtime/tokenizer/tokenizer.h"
#include "tests/runtime/grammar/naive_recognizer.h"

namespace strata::grammar {
namespace {

constexpr int kEos = 0;

// Every 1- and 2-byte string over `alphabet`, seeded longer concatenations, and UTF-8 pieces
// (whole characters, and lone lead and continuation bytes). Token 0 is the end of sequence.
std::vector<std::string> SmallVocabulary(const std::string& alphabet, uint64_t seed) {
  std::vector<std::string> v = {""};
  for (char a : alphabet) {
    v.push_back(std::string(1, a));
    for (char b : alphabet) v.push_back(std::string(1, a) + b);
  }
  std::mt19937_64 rng(seed);
  for (int i = 0; i < 60; ++i) {
    std::string t;
    const int len = 3 + static_cast<int>(rng() % 5);
    for (int k = 0; k < len; ++k) t += alphabet[rng() % alphabet.size()];
    v.push_back(t);
  }
  for (const char* u : {"\xC3\xA9", "\xC3", "\xA9", "\xCE\xB1", "\xCF\x89", "\xCE\xB1\xCE\xB2", "\xE2\x82\xAC", "\xE2\x82"})
    v.push_back(u);
  return v;
}

// Walks the grammar `walks` times choosing seeded random allowed tokens; at each step checks the
// whole mask against the recognizer.
void CheckWalks(const Grammar& g, const std::vector<std::string>& tokens, int walks, int max_steps, uint64_t seed,
                const std::vector<std::string>& first_tokens = {}) {
  auto vocab = std::make_shared<TokenVocabulary>(tokens, std::vector<int>{kEos}, first_tokens);
  auto compiled = CompileGrammar(g, vocab);
  ASSERT_TRUE(compiled.ok()) << compiled.status() << "\n" << g.ToString();
  NaiveRecognizer oracle(g);
  std::mt19937_64 rng(seed);
  for (int w = 0; w < walks; ++w) {
    GrammarMatcher m(*compiled);
    std::string out;
    for (int step = 0; step < max_steps; ++step) {
      TokenMask mask;
      m.FillNextTokenMask(&mask);
      std::vector<int> allowed;
      for (int id = 0; id < vocab->size(); ++id) {
        const std::string& bytes = step == 0 ? vocab->first_bytes(id) : vocab->bytes(id);
        const bool expect = id == kEos ? oracle.IsSentence(out) : !bytes.empty() && oracle.IsViablePrefix(out + bytes);
        ASSERT_EQ(MaskHas(mask, id), expect) << "walk " << w << " step " << step << " output '" << out
                                             << "' token " << id << " '" << bytes << "'\n" << g.ToString();
        if (expect) allowed.push_back(id);
      }
      ASSERT_EQ(m.CanTerminate(), oracle.IsSentence(out));
      if (allowed.empty()) break;
      const int pick = allowed[rng() % allowed.size()];
      ASSERT_TRUE(m.AcceptToken(pick));
      if (pick == kEos) {
        EXPECT_TRUE(m.IsComplete());
        break;
      }
      out += step == 0 ? vocab->first_bytes(pick) : vocab->bytes(pick);
    }
  }
}

Expr Lit(const char* s) { return Bytes(s); }
Expr Cls(uint32_t lo, uint32_t hi, bool negated = false) { return CharClass({{lo, hi}}, negated); }

TEST(GrammarMatcher, BalancedParentheses) {
  Grammar g;
  const int s = g.AddRule("s");
  g.rules[s].body = Star(Sequence({Lit("("), RuleRef(s), Lit(")")}));
  CheckWalks(g, SmallVocabulary("()x", 1), 8, 20, 1);
}

TEST(GrammarMatcher, RecursiveListWithAParentThatGoesOn) {
  // The callee (`item`) ends inside tokens like "],[": those tokens need the caller's stack.
  Grammar g;
  const int root = g.AddRule("root"), item = g.AddRule("item");
  g.rules[root].body =
      Sequence({Lit("["), Optional(Sequence({RuleRef(item), Star(Sequence({Lit(","), RuleRef(item)}))})), Lit("]")});
  g.rules[item].body = Choice({Plus(Cls('a', 'c')), RuleRef(root)});
  CheckWalks(g, SmallVocabulary("[],ab", 2), 8, 25, 2);
}

TEST(GrammarMatcher, ArithmeticWithMutualRecursion) {
  Grammar g;
  const int expr = g.AddRule("expr"), term = g.AddRule("term");
  g.rules[expr].body = Sequence({RuleRef(term), Star(Sequence({Choice({Lit("+"), Lit("*")}), RuleRef(term)}))});
  g.rules[term].body = Choice({Plus(Cls('0', '9')), Sequence({Lit("("), RuleRef(expr), Lit(")")})});
  CheckWalks(g, SmallVocabulary("0(+)*1", 3), 6, 20, 3);
}

TEST(GrammarMatcher, BoundedRepetitionNullableRulesAndChoice) {
  Grammar g;
  const int root = g.AddRule("root"), b = g.AddRule("b"), c = g.AddRule("c");
  g.rules[b].body = Optional(Lit("x"));
  g.rules[c].body = Choice({Sequence({Lit("y"), RuleRef(b), Lit("z")}), Sequence({})});
  g.rules[root].body = Choice({Sequence({Repeat(Lit("a"), 2, 4), Optional(Lit("b"))}), Sequence({RuleRef(b), RuleRef(c)}),
                               Plus(Lit("yes")), Lit("no")});
  CheckWalks(g, SmallVocabulary("abxyzensoy", 4), 25, 20, 4);
}

TEST(GrammarMatcher, Utf8ClassesMatchWholeCharactersAcrossTokens) {
  Grammar g;
  const int root = g.AddRule("root");
  g.rules[root].body = Choice({Sequence({Plus(Cls(0x3B1, 0x3C9)), Lit("!")}), Repeat(Cls('a', 'z', true), 1, 3),
                               Sequence({Lit("e"), Star(CharClass({{0xE9, 0xE9}, {0x20AC, 0x20AC}}))})});
  CheckWalks(g, SmallVocabulary("a!e", 5), 25, 12, 5);
}

TEST(GrammarMatcher, RightRecursionAndARecursiveRoot) {
  Grammar g;
  const int r = g.AddRule("r");
  g.rules[r].body = Choice({Sequence({Lit("a"), RuleRef(r)}), Lit("b"), Sequence({Lit("<"), RuleRef(r), Lit(">")})});
  CheckWalks(g, SmallVocabulary("ab<>", 6), 15, 40, 6);
}

// Random expressions over a small alphabet and three rules; left-recursive ones must be refused
// by name, the rest must agree with the recognizer.
Expr RandomExpr(std::mt19937_64& rng, int depth, int rules) {
  const int kind = static_cast<int>(rng() % (depth > 3 ? 3 : 7));
  auto sub = [&] { return RandomExpr(rng, depth + 1, rules); };
  switch (kind) {
    case 0: return Lit(std::string(1 + rng() % 2, "abc"[rng() % 3]).c_str());
    case 1: return Cls('a' + rng() % 2, 'b' + rng() % 2, rng() % 4 == 0);
    case 2: return RuleRef(static_cast<int>(rng() % rules));
    case 3: return Sequence({sub(), sub()});
    case 4: return Choice({sub(), sub(), sub()});
    case 5: {
      const int min = static_cast<int>(rng() % 3);
      return Repeat(sub(), min, rng() % 3 == 0 ? -1 : min + static_cast<int>(rng() % 3));
    }
    default: return Sequence({Lit("c"), sub()});
  }
}

TEST(GrammarMatcher, RandomGrammars) {
  std::mt19937_64 rng(77);
  int checked = 0, left_recursive = 0;
  for (int trial = 0; trial < 80 && checked < 25; ++trial) {
    Grammar g;
    for (int r = 0; r < 3; ++r) g.AddRule("r" + std::to_string(r));
    for (int r = 0; r < 3; ++r) g.rules[r].body = RandomExpr(rng, 0, 3);
    auto vocab = std::make_shared<TokenVocabulary>(SmallVocabulary("abc", trial), std::vector<int>{kEos});
    auto compiled = CompileGrammar(g, vocab);
    if (!compiled.ok()) {
      const std::string msg(compiled.status().message());
      if (msg.find("left-recursive") != std::string::npos) ++left_recursive;
      else
        EXPECT_NE(msg.find("matches no text"), std::string::npos) << msg << "\n" << g.ToString();
      continue;
    }
    ++checked;
    CheckWalks(g, SmallVocabulary("abc", trial), 3, 10, trial);
    if (HasFatalFailure()) return;
  }
  EXPECT_GE(checked, 20);
  EXPECT_GE(left_recursive, 1);  // the generator does produce them; they must be refused, not hang
}

TEST(GrammarMatcher, FirstTokenUsesItsFirstBytes) {
  // SentencePiece: "▁a" decodes as " a" mid-text but as "a" first.
  const std::vector<std::string> bytes = {"", " a", "a", " ", "b", " b"};
  const std::vector<std::string> first = {"", "a", "a", "", "b", "b"};
  Grammar g;
  const int root = g.AddRule("root");
  g.rules[root].body = Sequence({Lit("a"), Star(Choice({Lit("b"), Lit(" a")}))});
  CheckWalks(g, bytes, 10, 8, 9, first);
}

TEST(GrammarMatcher, CompileErrorsNameTheProblem) {
  auto vocab = std::make_shared<TokenVocabulary>(SmallVocabulary("ab", 1), std::vector<int>{kEos});
  Grammar left;
  const int l = left.AddRule("list");
  left.rules[l].body = Choice({Sequence({RuleRef(l), Lit("a")}), Lit("b")});
  auto c = CompileGrammar(left, vocab);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("'list' is left-recursive"), std::string::npos) << c.status();

  Grammar bad_ref;
  bad_ref.AddRule("root");
  bad_ref.rules[0].body = RuleRef(7);
  EXPECT_FALSE(CompileGrammar(bad_ref, vocab).ok());

  Grammar empty;
  empty.AddRule("root");
  empty.rules[0].body = Choice({});
  c = CompileGrammar(empty, vocab);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("matches no text"), std::string::npos);

  Grammar huge;
  huge.AddRule("root");
  huge.rules[0].body = Repeat(Lit("ab"), 0, 300000);
  c = CompileGrammar(huge, vocab);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("too large"), std::string::npos);
}

TEST(GrammarMatcher, EndOfSequenceOnlyWhereTheGrammarAccepts) {
  Grammar g;
  g.AddRule("root");
  g.rules[0].body = Sequence({Lit("ab"), Optional(Lit("c"))});
  auto vocab = std::make_shared<TokenVocabulary>(std::vector<std::string>{"", "a", "b", "c", "ab"}, std::vector<int>{0});
  auto compiled = CompileGrammar(g, vocab);
  ASSERT_TRUE(compiled.ok());
  GrammarMatcher m(*compiled);
  EXPECT_FALSE(m.AcceptToken(0));  // not yet a sentence
  EXPECT_FALSE(m.AcceptToken(3));  // "c" cannot start it
  ASSERT_TRUE(m.AcceptToken(1));
  ASSERT_TRUE(m.AcceptToken(2));
  EXPECT_TRUE(m.CanTerminate());
  EXPECT_FALSE(m.IsComplete());  // "c" may follow
  ASSERT_TRUE(m.AcceptToken(3));
  EXPECT_TRUE(m.IsComplete());
  TokenMask mask;
  m.FillNextTokenMask(&mask);
  EXPECT_TRUE(MaskHas(mask, 0));
  for (int id = 1; id < 5; ++id) EXPECT_FALSE(MaskHas(mask, id));
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// SmolLM2's 49,152 tokens (a real byte-level BPE vocabulary, its tokenizer.json written by
// scripts/python_env.sh) on a JSON-shaped grammar with bounded strings, whitespace and digits: the
// mask at each step of random walks, checked on every allowed token and a seeded sample of the
// rest.
TEST(GrammarMatcher, RealVocabularyOnAJsonShapedGrammar) {
  const std::string dir = std::getenv("STRATA_SMOLLM2_TOKENIZER_DIR") ? std::getenv("STRATA_SMOLLM2_TOKENIZER_DIR")
                                                                       : STRATA_SMOLLM2_TOKENIZER_DIR;
  ASSERT_TRUE(std::ifstream(dir + "/tokenizer.json")) << dir << " is missing: scripts/python_env.sh writes it";
  auto tok = Tokenizer::Load(dir);
  ASSERT_TRUE(tok.ok()) << tok.status();
  constexpr int kVocab = 49152, kEos = 2;  // <|im_end|>
  auto vocab = TokenVocabulary::FromTokenizer(**tok, kVocab, {kEos});
  Grammar g;
  const int root = g.AddRule("root"), value = g.AddRule("value");
  const Expr ws = Repeat(CharClass({{' ', ' '}, {'\n', '\n'}}), 0, 3);
  const Expr str = Sequence({Lit("\""), Repeat(CharClass({{'"', '"'}, {'\\', '\\'}, {0, 0x1F}}, true), 0, 6), Lit("\"")});
  const Expr num = Sequence({Optional(Lit("-")), Cls('1', '9'), Repeat(Cls('0', '9'), 0, 4)});
  // value is recursive (lists of values), so its ends meet the caller's stack inside tokens.
  g.rules[value].body = Choice({str, num, Sequence({Lit("["), ws, Optional(Sequence({RuleRef(value),
                                Repeat(Sequence({ws, Lit(","), ws, RuleRef(value)}), 0, 2)})), ws, Lit("]")})});
  g.rules[root].body = Sequence({Lit("{"), ws, Lit("\"k\""), ws, Lit(":"), ws, RuleRef(value), ws, Lit("}")});
  auto compiled = CompileGrammar(g, vocab);
  ASSERT_TRUE(compiled.ok()) << compiled.status();
  NaiveRecognizer oracle(g);
  std::mt19937_64 rng(5);
  for (int walk = 0; walk < 3; ++walk) {
    GrammarMatcher m(*compiled);
    std::string out;
    for (int step = 0; step < 40 && !m.IsComplete(); ++step) {
      TokenMask mask;
      m.FillNextTokenMask(&mask);
      std::vector<int> allowed;
      for (int id = 0; id < vocab->size(); ++id)
        if (MaskHas(mask, id)) allowed.push_back(id);
      for (int k = 0; k < 300; ++k) {  // allowed ones, and a sample of all
        const int id = k % 2 == 0 && !allowed.empty() ? allowed[rng() % allowed.size()] : static_cast<int>(rng() % kVocab);
        const std::string& b = vocab->bytes(id);
        const bool expect = id == kEos ? oracle.IsSentence(out) : !b.empty() && oracle.IsViablePrefix(out + b);
        ASSERT_EQ(MaskHas(mask, id), expect) << "output '" << out << "' token " << id << " '" << b << "'";
      }
      ASSERT_FALSE(allowed.empty()) << out;
      const int pick = allowed[rng() % allowed.size()];
      ASSERT_TRUE(m.AcceptToken(pick));
      if (pick == kEos) break;
      out += vocab->bytes(pick);
    }
  }
}

}  // namespace
}  // namespace strata::grammar
