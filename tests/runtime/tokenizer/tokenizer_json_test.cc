// tokenizer.json's components against hand-worked cases: every expected value below is written
// by hand from Hugging Face tokenizers' documentation and its own unit tests (normalizers/*.rs,
// pre_tokenizers/{metaspace,split,digits,byte_level}.rs, decoders/*.rs, the
// SplitDelimiterBehavior docstring), not produced by Strata.
#include <gtest/gtest.h>

#include <fstream>

#include "nlohmann/json.hpp"
#include "runtime/tokenizer/decoder.h"
#include "runtime/tokenizer/normalizer.h"
#include "runtime/tokenizer/pre_tokenizer.h"
#include "runtime/tokenizer/tokenizer.h"
#include "tests/shell.h"
#include "tests/test_models.h"

namespace strata::testing {
namespace {

using json = nlohmann::json;
using Strings = std::vector<std::string>;
const std::string kMeta = "\xE2\x96\x81";  // U+2581

std::string Normalize(const json& j, const std::string& s) {
  auto n = Normalizer::FromJson(j);
  EXPECT_TRUE(n.ok()) << n.status();
  return n.ok() ? n->Apply(s) : "";
}

Strings PreTokenize(const json& j, const std::string& s, bool at_origin = true) {
  auto p = PreTokenizer::FromJson(j);
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? p->Split(s, at_origin) : Strings{};
}

std::string DecodePieces(const json& j, const Strings& pieces) {
  auto d = Decoder::FromJson(j);
  EXPECT_TRUE(d.ok()) << d.status();
  std::string out;
  for (size_t i = 0; d.ok() && i < pieces.size(); ++i) out += d->Decode(pieces[i], i == 0);
  return out;
}

json Split(const std::string& literal, const std::string& behavior, bool invert = false) {
  return {{"type", "Split"}, {"pattern", {{"String", literal}}}, {"behavior", behavior}, {"invert", invert}};
}

TEST(Normalizers, UnicodeFormsLowercaseAndAccents) {
  EXPECT_EQ(Normalize({{"type", "NFC"}}, "e\xCC\x81"), "\xC3\xA9");  // e + U+0301 -> é
  EXPECT_EQ(Normalize({{"type", "NFD"}}, "\xC3\xA9"), "e\xCC\x81");
  EXPECT_EQ(Normalize({{"type", "NFKC"}}, "\xEF\xAC\x81 \xE2\x91\xA0"), "fi 1");  // ﬁ ① -> fi 1
  EXPECT_EQ(Normalize({{"type", "NFKD"}}, "\xEF\xAC\x81"), "fi");
  EXPECT_EQ(Normalize({{"type", "NFC"}}, "\xEF\xAC\x81"), "\xEF\xAC\x81");  // NFC keeps compatibility characters
  EXPECT_EQ(Normalize({{"type", "Lowercase"}}, "HeLLo \xC3\x89" "COLE"), "hello \xC3\xA9" "cole");
  EXPECT_EQ(Normalize({{"type", "Sequence"}, {"normalizers", {{{"type", "NFD"}}, {{"type", "StripAccents"}}}}},
                      "caf\xC3\xA9 na\xC3\xAFve"),
            "cafe naive");
}

TEST(Normalizers, PrependReplaceStripSequence) {
  EXPECT_EQ(Normalize({{"type", "Prepend"}, {"prepend", kMeta}}, "hello"), kMeta + "hello");
  EXPECT_EQ(Normalize({{"type", "Prepend"}, {"prepend", kMeta}}, ""), "");  // nothing prepended to empty text
  // The tokenizers documentation's example: Replace("''", "\"").
  EXPECT_EQ(Normalize({{"type", "Replace"}, {"pattern", {{"String", "''"}}}, {"content", "\""}}, "This is ''quoted''"),
            "This is \"quoted\"");
  EXPECT_EQ(Normalize({{"type", "Replace"}, {"pattern", {{"Regex", " {2,}"}}}, {"content", " "}}, "a   b  c d"),
            "a b c d");
  EXPECT_EQ(Normalize({{"type", "Strip"}, {"strip_left", true}, {"strip_right", true}}, "  hi there \t"), "hi there");
  EXPECT_EQ(Normalize({{"type", "Strip"}, {"strip_left", false}, {"strip_right", true}}, "  hi  "), "  hi");
  const json llama = {{"type", "Sequence"},
                      {"normalizers",
                       {{{"type", "Prepend"}, {"prepend", kMeta}},
                        {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", kMeta}}}}};
  EXPECT_EQ(Normalize(llama, "hello world"), kMeta + "hello" + kMeta + "world");
  EXPECT_EQ(Normalize(llama, " hi"), kMeta + kMeta + "hi");  // the legacy layout always prepends
}

TEST(Normalizers, UnknownTypeIsRefusedByName) {
  auto n = Normalizer::FromJson({{"type", "Precompiled"}, {"precompiled_charsmap", "AAAA"}});
  ASSERT_FALSE(n.ok());
  EXPECT_NE(std::string(n.status().message()).find("Precompiled"), std::string::npos);
  EXPECT_FALSE(Normalizer::FromJson({{"type", "Replace"}, {"pattern", {{"Regex", "("}}}, {"content", ""}}).ok());
}

TEST(PreTokenizers, MetaspaceAsMetaspaceRs) {
  const json always = {{"type", "Metaspace"}, {"replacement", kMeta}, {"prepend_scheme", "always"}, {"split", true}};
  EXPECT_EQ(PreTokenize(always, "Hey friend!"), (Strings{kMeta + "Hey", kMeta + "friend!"}));
  // metaspace.rs "multiple_spaces": each extra space is a piece of its own.
  EXPECT_EQ(PreTokenize(always, "Hey   friend!"), (Strings{kMeta + "Hey", kMeta, kMeta, kMeta + "friend!"}));
  // Not prepended when the text already starts with the replacement (a leading space).
  EXPECT_EQ(PreTokenize(always, " hi"), (Strings{kMeta + "hi"}));
  EXPECT_EQ(PreTokenize(always, "Hey friend!", /*at_origin=*/false), (Strings{kMeta + "Hey", kMeta + "friend!"}));
  json no_split = always;
  no_split["split"] = false;
  EXPECT_EQ(PreTokenize(no_split, "Hey friend!"), (Strings{kMeta + "Hey" + kMeta + "friend!"}));
  json first = always;
  first["prepend_scheme"] = "first";
  EXPECT_EQ(PreTokenize(first, "Hey friend!", true), (Strings{kMeta + "Hey", kMeta + "friend!"}));
  EXPECT_EQ(PreTokenize(first, "Hey friend!", false), (Strings{"Hey", kMeta + "friend!"}));
  json never = always;
  never["prepend_scheme"] = "never";
  EXPECT_EQ(PreTokenize(never, "Hey friend!"), (Strings{"Hey", kMeta + "friend!"}));
  // Files older than prepend_scheme: add_prefix_space true is "always".
  EXPECT_EQ(PreTokenize({{"type", "Metaspace"}, {"replacement", kMeta}, {"add_prefix_space", true}}, "a b"),
            (Strings{kMeta + "a", kMeta + "b"}));
}

TEST(PreTokenizers, SplitBehaviorsAsTheirDocstring) {
  // SplitDelimiterBehavior's documentation: "the-final--countdown" with the delimiter "-".
  const std::string s = "the-final--countdown";
  EXPECT_EQ(PreTokenize(Split("-", "Removed"), s), (Strings{"the", "final", "countdown"}));
  EXPECT_EQ(PreTokenize(Split("-", "Isolated"), s), (Strings{"the", "-", "final", "-", "-", "countdown"}));
  EXPECT_EQ(PreTokenize(Split("-", "MergedWithPrevious"), s), (Strings{"the-", "final-", "-", "countdown"}));
  EXPECT_EQ(PreTokenize(Split("-", "MergedWithNext"), s), (Strings{"the", "-final", "-", "-countdown"}));
  EXPECT_EQ(PreTokenize(Split("-", "Contiguous"), s), (Strings{"the", "-", "final", "--", "countdown"}));
  // invert: the matches are the content; Removed then drops what lies between them.
  EXPECT_EQ(PreTokenize(Split("-", "Removed", /*invert=*/true), s), (Strings{"-", "-", "-"}));
  // split.rs's case: \w+|[^\w\s]+ inverted and Removed is the Whitespace pre-tokenizer.
  const json words = {{"type", "Split"}, {"pattern", {{"Regex", R"(\w+|[^\w\s]+)"}}}, {"behavior", "Removed"},
                      {"invert", true}};
  EXPECT_EQ(PreTokenize(words, "How are you doing?"), (Strings{"How", "are", "you", "doing", "?"}));
  EXPECT_EQ(PreTokenize({{"type", "Whitespace"}}, "How are you doing?"), (Strings{"How", "are", "you", "doing", "?"}));
  EXPECT_EQ(PreTokenize({{"type", "WhitespaceSplit"}}, "Hey friend!  ok"), (Strings{"Hey", "friend!", "ok"}));
  EXPECT_EQ(PreTokenize({{"type", "CharDelimiterSplit"}, {"delimiter", "x"}}, "axbxxc"), (Strings{"a", "b", "c"}));
}

TEST(PreTokenizers, DigitsByteLevelAndSequence) {
  // digits.rs: "Hey 123 friend!".
  EXPECT_EQ(PreTokenize({{"type", "Digits"}, {"individual_digits", false}}, "Hey 123 friend!"),
            (Strings{"Hey ", "123", " friend!"}));
  EXPECT_EQ(PreTokenize({{"type", "Digits"}, {"individual_digits", true}}, "Hey 123 friend!"),
            (Strings{"Hey ", "1", "2", "3", " friend!"}));
  // byte_level.rs: GPT-2's regex, spaces shown as Ġ.
  const json bl = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
  EXPECT_EQ(PreTokenize(bl, "Hello my friend, how is your day going?"),
            (Strings{"Hello", "\xC4\xA0my", "\xC4\xA0" "friend", ",", "\xC4\xA0how", "\xC4\xA0is", "\xC4\xA0your",
                     "\xC4\xA0" "day", "\xC4\xA0going", "?"}));
  json prefix = bl;
  prefix["add_prefix_space"] = true;
  EXPECT_EQ(PreTokenize(prefix, "Hello my"), (Strings{"\xC4\xA0Hello", "\xC4\xA0my"}));
  EXPECT_EQ(PreTokenize({{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}, "a b\n"),
            (Strings{"a\xC4\xA0" "b\xC4\x8A"}));  // one piece; space -> Ġ, newline -> Ċ
  // A Sequence applies each step to every piece of the one before.
  EXPECT_EQ(PreTokenize({{"type", "Sequence"},
                         {"pretokenizers", {Split(" ", "Removed"), {{"type", "Digits"}, {"individual_digits", true}}}}},
                        "ab12 c3"),
            (Strings{"ab", "1", "2", "c", "3"}));
  auto bad = PreTokenizer::FromJson({{"type", "BertPreTokenizer"}});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(std::string(bad.status().message()).find("BertPreTokenizer"), std::string::npos);
}

TEST(Decoders, AsTheirUnitTests) {
  // Llama's decoder: Replace ▁ -> space, ByteFallback, Fuse, Strip one leading space.
  const json llama = {{"type", "Sequence"},
                      {"decoders",
                       {{{"type", "Replace"}, {"pattern", {{"String", kMeta}}}, {"content", " "}},
                        {{"type", "ByteFallback"}},
                        {{"type", "Fuse"}},
                        {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}};
  EXPECT_EQ(DecodePieces(llama, {kMeta + "Hey", kMeta + "friend", "<0x21>"}), "Hey friend!");
  EXPECT_EQ(DecodePieces(llama, {kMeta + kMeta + "x"}), " x");  // only one space is stripped
  // byte_fallback.rs: bytes become their characters; other tokens are untouched.
  EXPECT_EQ(DecodePieces({{"type", "ByteFallback"}}, {"<0x61>"}), "a");
  EXPECT_EQ(DecodePieces({{"type", "ByteFallback"}}, {"Hey", "friend!"}), "Heyfriend!");
  EXPECT_EQ(DecodePieces({{"type", "ByteFallback"}}, {"<0xE5>", "<0x8f>", "<0xab>"}), "\xE5\x8F\xAB");  // 叫
  // strip.rs: per token without a Fuse before it.
  EXPECT_EQ(DecodePieces({{"type", "Strip"}, {"content", "H"}, {"start", 1}, {"stop", 0}}, {"Hey", " friend!", "HHH"}),
            "ey friend!HH");
  EXPECT_EQ(DecodePieces({{"type", "Strip"}, {"content", "y"}, {"start", 0}, {"stop", 1}}, {"Hey", " friend!"}),
            "He friend!");
  // metaspace.rs: the first token loses its replacement characters, the rest become spaces.
  const json meta = {{"type", "Metaspace"}, {"replacement", kMeta}, {"prepend_scheme", "always"}};
  EXPECT_EQ(DecodePieces(meta, {kMeta + "Hey", kMeta + "friend!"}), "Hey friend!");
  json never = meta;
  never["prepend_scheme"] = "never";
  EXPECT_EQ(DecodePieces(never, {kMeta + "Hey", kMeta + "friend!"}), " Hey friend!");
  // byte_level.rs.
  EXPECT_EQ(DecodePieces({{"type", "ByteLevel"}}, {"Hello", "\xC4\xA0my", "\xC4\xA0" "friend", ","}), "Hello my friend,");
  EXPECT_EQ(DecodePieces({{"type", "Replace"}, {"pattern", {{"Regex", "_+"}}}, {"content", " "}}, {"a__b", "_c"}),
            "a b c");
}

TEST(Decoders, RefusedByName) {
  auto d = Decoder::FromJson({{"type", "WordPiece"}, {"prefix", "##"}});
  ASSERT_FALSE(d.ok());
  EXPECT_NE(std::string(d.status().message()).find("WordPiece"), std::string::npos);
  EXPECT_FALSE(Decoder::FromJson({{"type", "Sequence"},
                                  {"decoders", {{{"type", "Fuse"}}, {{"type", "Strip"}, {"content", " "}, {"start", 0}, {"stop", 1}}}}})
                   .ok());
}

// A SentencePiece-style BPE tokenizer.json over single characters plus a few merges.
json MetaspaceBpe(const json& pre_tokenizer, bool byte_fallback, bool fuse_unk) {
  json vocab = {{"<unk>", 0}, {"<s>", 1}, {"</s>", 2}, {kMeta, 3}, {"H", 4}, {"e", 5}, {"y", 6}, {kMeta + "H", 7},
                {kMeta + "He", 8}, {kMeta + "Hey", 9}, {"<0x21>", 10}, {"a", 11}};
  return {{"added_tokens",
           {{{"id", 1}, {"content", "<s>"}, {"special", true}, {"normalized", false}},
            {{"id", 2}, {"content", "</s>"}, {"special", true}, {"normalized", false}}}},
          {"pre_tokenizer", pre_tokenizer},
          {"decoder", {{"type", "Metaspace"}, {"replacement", kMeta}, {"prepend_scheme", "first"}}},
          {"model",
           {{"type", "BPE"}, {"unk_token", "<unk>"}, {"byte_fallback", byte_fallback}, {"fuse_unk", fuse_unk},
            {"vocab", vocab}, {"merges", {kMeta + " H", kMeta + "H e", kMeta + "He y"}}}}};
}

TEST(TokenizerJson, MetaspaceFirstOnlyAtTheStartOfTheInput) {
  const json first = {{"type", "Metaspace"}, {"replacement", kMeta}, {"prepend_scheme", "first"}, {"split", false}};
  auto t = Tokenizer::FromTokenizerJson(MetaspaceBpe(first, false, true).dump());
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ((*t)->Encode("Hey"), (std::vector<int>{9}));
  // After an added token the text is not at offset 0: no ▁ is prepended.
  EXPECT_EQ((*t)->Encode("<s>Hey"), (std::vector<int>{1, 4, 5, 6}));
  EXPECT_EQ((*t)->Encode("Hey</s>Hey"), (std::vector<int>{9, 2, 4, 5, 6}));
  EXPECT_EQ((*t)->Encode(" Hey"), (std::vector<int>{9}));  // already starts with ▁
  EXPECT_EQ((*t)->Decode({9, 3, 4}), "Hey H");
  const json always = {{"type", "Metaspace"}, {"replacement", kMeta}, {"prepend_scheme", "always"}, {"split", true}};
  auto a = Tokenizer::FromTokenizerJson(MetaspaceBpe(always, false, true).dump());
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ((*a)->Encode("<s>Hey Hey"), (std::vector<int>{1, 9, 9}));
}

TEST(TokenizerJson, UnkAndFuseUnkWithoutByteFallback) {
  const json never = {{"type", "Metaspace"}, {"replacement", kMeta}, {"prepend_scheme", "never"}, {"split", false}};
  auto fused = Tokenizer::FromTokenizerJson(MetaspaceBpe(never, false, true).dump());
  auto unfused = Tokenizer::FromTokenizerJson(MetaspaceBpe(never, false, false).dump());
  auto bytes = Tokenizer::FromTokenizerJson(MetaspaceBpe(never, true, true).dump());
  ASSERT_TRUE(fused.ok() && unfused.ok() && bytes.ok());
  // "a☃☃!a": ☃ is not in the vocabulary; "!" is only a byte piece.
  const std::string text = "a\xE2\x98\x83\xE2\x98\x83!a";
  EXPECT_EQ((*fused)->Encode(text), (std::vector<int>{11, 0, 11}));
  EXPECT_EQ((*unfused)->Encode(text), (std::vector<int>{11, 0, 0, 0, 11}));
  // With byte_fallback, "!" is <0x21>; ☃'s bytes are not all in the vocabulary: unk.
  EXPECT_EQ((*bytes)->Encode(text), (std::vector<int>{11, 0, 10, 11}));
}

TEST(TokenizerJson, UnigramViterbiUnkAndByteFallback) {
  const json model = {{"type", "Unigram"},
                      {"unk_id", 0},
                      {"byte_fallback", false},
                      {"vocab", json::array({json::array({"<unk>", 0.0}), json::array({kMeta, -2.0}),
                                             json::array({"a", -3.0}), json::array({"b", -3.0}),
                                             json::array({"ab", -4.0}), json::array({kMeta + "ab", -10.0}),
                                             json::array({"<0x63>", 0.0})})}};
  json j = {{"pre_tokenizer", {{"type", "Metaspace"}, {"replacement", kMeta}, {"prepend_scheme", "always"}, {"split", true}}},
            {"decoder", {{"type", "Metaspace"}, {"replacement", kMeta}, {"prepend_scheme", "always"}}},
            {"model", model}};
  auto t = Tokenizer::FromTokenizerJson(j.dump());
  ASSERT_TRUE(t.ok()) << t.status();
  // "▁ab": ▁ + ab scores -6, ▁ + a + b -8, ▁ab -10.
  EXPECT_EQ((*t)->Encode("ab"), (std::vector<int>{1, 4}));
  // "ddd": no piece covers d; its unk nodes (score -10 - 10 each) fuse into one unk.
  EXPECT_EQ((*t)->Encode("ab ddd"), (std::vector<int>{1, 4, 1, 0}));
  EXPECT_EQ((*t)->Decode({1, 4, 1, 2}), "ab a");
  j["model"]["byte_fallback"] = true;
  auto b = Tokenizer::FromTokenizerJson(j.dump());
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ((*b)->Encode("c"), (std::vector<int>{1, 6}));  // c: its byte piece
  EXPECT_EQ((*b)->Encode("d"), (std::vector<int>{1, 0}));  // no <0x64>: unk
}

// Plain characters, no pre-tokenizer, and one added token with the given flags.
json CharsWithAddedToken(const json& flags, const json& normalizer = nullptr) {
  json vocab = json::object();
  int id = 0;
  for (const char* c : {" ", "a", "b", "<", "m", ">", "h", "i"}) vocab[c] = id++;
  json added = {{"id", 50}, {"content", "<m>"}};
  added.update(flags);
  return {{"normalizer", normalizer}, {"added_tokens", {added}},
          {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array()}}}};
}

TEST(TokenizerJson, AddedTokenFlags) {
  auto plain = Tokenizer::FromTokenizerJson(CharsWithAddedToken({{"special", true}}).dump());
  auto l = Tokenizer::FromTokenizerJson(CharsWithAddedToken({{"special", true}, {"lstrip", true}}).dump());
  auto r = Tokenizer::FromTokenizerJson(CharsWithAddedToken({{"special", true}, {"rstrip", true}}).dump());
  auto w = Tokenizer::FromTokenizerJson(CharsWithAddedToken({{"special", true}, {"single_word", true}}).dump());
  ASSERT_TRUE(plain.ok() && l.ok() && r.ok() && w.ok());
  EXPECT_EQ((*plain)->Encode("a  <m> b"), (std::vector<int>{1, 0, 0, 50, 0, 2}));
  EXPECT_EQ((*l)->Encode("a  <m> b"), (std::vector<int>{1, 50, 0, 2}));  // both spaces on the left go
  EXPECT_EQ((*r)->Encode("a  <m> b"), (std::vector<int>{1, 0, 0, 50, 2}));
  EXPECT_EQ((*w)->Encode("a <m> b"), (std::vector<int>{1, 0, 50, 0, 2}));
  EXPECT_EQ((*w)->Encode("a<m>"), (std::vector<int>{1, 3, 4, 5}));  // touches a word character: no match
  // normalized: matched on the normalized text (and the content normalized too), or on the raw
  // input when false.
  const json lower = {{"type", "Lowercase"}};
  auto n = Tokenizer::FromTokenizerJson(CharsWithAddedToken({{"content", "<M>"}, {"normalized", true}}, lower).dump());
  auto raw = Tokenizer::FromTokenizerJson(CharsWithAddedToken({{"content", "<M>"}, {"normalized", false}}, lower).dump());
  ASSERT_TRUE(n.ok() && raw.ok());
  EXPECT_EQ((*n)->Encode("hi<M>"), (std::vector<int>{6, 7, 50}));
  EXPECT_EQ((*n)->Encode("hi<m>"), (std::vector<int>{6, 7, 50}));
  EXPECT_EQ((*raw)->Encode("hi<m>"), (std::vector<int>{6, 7, 3, 4, 5}));
  EXPECT_EQ((*raw)->Encode("HI<M>"), (std::vector<int>{6, 7, 50}));
}

TEST(TokenizerJson, NfkcBeforeByteLevel) {
  json vocab = json::object();
  for (int c = 'a'; c <= 'z'; ++c) vocab[std::string(1, static_cast<char>(c))] = c - 'a';
  const json j = {{"normalizer", {{"type", "NFKC"}}},
                  {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
                  {"decoder", {{"type", "ByteLevel"}}},
                  {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array()}}}};
  auto t = Tokenizer::FromTokenizerJson(j.dump());
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ((*t)->Encode("\xEF\xAC\x81"), (std::vector<int>{'f' - 'a', 'i' - 'a'}));  // ﬁ -> f i
}

TEST(TokenizerJson, PostProcessorTemplateAndAddEosToken) {
  const std::string dir = TempDir("tokenizer-template");
  json j = MetaspaceBpe({{"type", "Metaspace"}, {"replacement", kMeta}, {"prepend_scheme", "first"}}, true, true);
  j["post_processor"] = {{"type", "TemplateProcessing"},
                         {"single",
                          {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                           {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                           {{"SpecialToken", {{"id", "</s>"}, {"type_id", 0}}}}}},
                         {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {1}}}}, {"</s>", {{"id", "</s>"}, {"ids", {2}}}}}}};
  std::ofstream(dir + "/tokenizer.json") << j.dump();
  auto t = Tokenizer::Load(dir);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ((*t)->bos_to_add(), 1);
  EXPECT_EQ((*t)->eos_to_add(), 2);
  EXPECT_EQ((*t)->WithSpecialTokens((*t)->Encode("Hey")), (std::vector<int>{1, 9, 2}));
  // tokenizer_config.json's settings override the template (as transformers' LlamaTokenizerFast).
  std::ofstream(dir + "/tokenizer_config.json")
      << json{{"add_bos_token", false}, {"add_eos_token", true}, {"eos_token", "</s>"}}.dump();
  t = Tokenizer::Load(dir);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ((*t)->bos_to_add(), -1);
  EXPECT_EQ((*t)->eos_to_add(), 2);
}

}  // namespace
}  // namespace strata::testing
