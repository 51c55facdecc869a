// Hand-worked tokenizer cases: merges, added tokens, the split pattern, broken files and
// streaming detokenization. The comparison with Hugging Face `tokenizers` on random pipelines and
// SmolLM2's real vocabulary is hf_tokenizers_oracle_test.py.
#include <gtest/gtest.h>

#include <algorithm>

#include "nlohmann/json.hpp"
#include "runtime/tokenizer/tokenizer.h"

namespace strata::testing {
namespace {

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
