#include "runtime/tokenizer/gguf_tokenizer.h"

#include <algorithm>
#include <map>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "runtime/base/status.h"
#include "runtime/tokenizer/tokenizer_parts.h"

namespace strata {
namespace {

using json = nlohmann::json;

constexpr int64_t kControl = 3, kUserDefined = 4;  // llama.cpp's token types

// GPT-2's split pattern (llama.cpp's, with Hugging Face's final \s+: the same pieces).
constexpr char kGpt2Pattern[] = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
constexpr char kLlama3Pattern[] =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr char kQwen2Pattern[] =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

json Split(const std::string& pattern) {
  return {{"type", "Split"}, {"pattern", {{"Regex", pattern}}}, {"behavior", "Isolated"}, {"invert", false}};
}
json ByteLevel(bool use_regex) {
  return {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", use_regex}};
}

struct PreTokenizer {
  json pre_tokenizer;
  bool ignore_merges = false;
  bool add_bos = false;  // llama.cpp's default for the type, when the file does not say
};

// llama.cpp's regex lists per tokenizer.ggml.pre (llm_tokenizer_bpe), as Split steps (each
// splits every piece into matches and the gaps between them, as llama.cpp's do).
absl::StatusOr<PreTokenizer> PreTokenizerFor(const std::string& pre, const std::string& path) {
  for (const char* name : {"gpt-2", "phi-2", "roberta-bpe", "jina-es", "jina-de", "jina-v1-en", "jina-v2-es",
                           "jina-v2-de", "jina-v2-code", "gigachat", "mpt", "olmo", "jais"})
    if (pre == name) return PreTokenizer{ByteLevel(true)};
  for (const char* name : {"smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva-7b"})
    if (pre == name)
      return PreTokenizer{{{"type", "Sequence"},
                           {"pretokenizers", {{{"type", "Digits"}, {"individual_digits", true}}, ByteLevel(true)}}}};
  // llama.cpp sets ignore_merges and add_bos for the llama3 family only; dbrx and smaug-bpe
  // share its regex.
  for (const char* name : {"llama3", "llama-v3", "llama-bpe", "falcon3", "dbrx", "smaug-bpe"})
    if (pre == name) {
      const bool llama3 = pre != "dbrx" && pre != "smaug-bpe";
      return PreTokenizer{{{"type", "Sequence"}, {"pretokenizers", {Split(kLlama3Pattern), ByteLevel(false)}}}, llama3, llama3};
    }
  for (const char* name : {"qwen2", "deepseek-r1-qwen", "stablelm2", "megrez"})
    if (pre == name) return PreTokenizer{{{"type", "Sequence"}, {"pretokenizers", {Split(kQwen2Pattern), ByteLevel(false)}}}};
  if (pre == "default")
    return PreTokenizer{{{"type", "Sequence"},
                         {"pretokenizers", {Split(R"([\p{P}\$\+<=>\^~\|]+)"), Split(kGpt2Pattern), Split(R"(\p{N}+)"),
                                            Split("[0-9][0-9][0-9]"), ByteLevel(false)}}}};
  return absl::UnimplementedError(absl::StrCat(path, ": GGUF tokenizer.ggml.pre '", pre,
                                               "' is not supported (gpt-2, smollm, llama3/llama-bpe, qwen2, default "
                                               "and their aliases are)"));
}

// SentencePiece's BPE as tokenizers runs it (transformers' LlamaConverter): merges derived from
// the scores (SentencePieceExtractor: every split of a piece into two pieces of the vocabulary,
// ranked by the piece's score, highest first, ties by the parts' ids), byte fallback, "▁" for
// spaces and a prepended one where add_space_prefix says.
absl::StatusOr<json> SentencePieceBpe(const GgufModel& m, const std::vector<std::string>& tokens,
                                      const std::vector<int64_t>& types, json* added) {
  ASSIGN_OR_RETURN(const std::vector<double> scores, m.FloatArray("tokenizer.ggml.scores"));
  if (scores.size() != tokens.size())
    return absl::InvalidArgumentError(absl::StrCat(m.path(), ": GGUF tokenizer.ggml.scores has ", scores.size(),
                                                   " entries for ", tokens.size(), " tokens"));
  std::map<std::string, int64_t> id;
  for (size_t i = 0; i < tokens.size(); ++i) id.emplace(tokens[i], static_cast<int64_t>(i));
  struct Merge {
    double score;
    int64_t left, right;
  };
  std::vector<Merge> merges;
  for (size_t i = 0; i < tokens.size(); ++i) {
    const std::vector<std::string> chars = Utf8Chars(tokens[i]);
    std::vector<Merge> local;
    std::string left;
    for (size_t k = 1; k < chars.size(); ++k) {
      left += chars[k - 1];
      const std::string right = tokens[i].substr(left.size());
      auto l = id.find(left), r = id.find(right);
      if (l != id.end() && r != id.end()) local.push_back({scores[i], l->second, r->second});
    }
    std::sort(local.begin(), local.end(),
              [](const Merge& a, const Merge& b) { return std::tie(a.left, a.right) < std::tie(b.left, b.right); });
    merges.insert(merges.end(), local.begin(), local.end());
  }
  // Stable: equal scores keep the order above (by piece id, then by the parts' ids).
  std::stable_sort(merges.begin(), merges.end(), [](const Merge& a, const Merge& b) { return a.score > b.score; });
  json pairs = json::array();
  for (const Merge& mg : merges) pairs.push_back({tokens[mg.left], tokens[mg.right]});
  json vocab = json::object();
  for (size_t i = 0; i < tokens.size(); ++i) vocab[tokens[i]] = i;
  constexpr int64_t kUnknown = 2;
  std::string unk;
  for (size_t i = 0; i < tokens.size(); ++i)
    if (types[i] == kUnknown) {
      unk = tokens[i];
      added->push_back({{"id", i}, {"content", tokens[i]}, {"single_word", false}, {"lstrip", false},
                        {"rstrip", false}, {"normalized", false}, {"special", true}});
    }
  ASSIGN_OR_RETURN(const bool prefix, m.BoolOr("tokenizer.ggml.add_space_prefix", true));
  const json prepend = {{"type", "Prepend"}, {"prepend", "\u2581"}};
  const json replace = {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\u2581"}};
  json normalizer = prefix ? json{{"type", "Sequence"}, {"normalizers", {prepend, replace}}} : replace;
  return json{{"normalizer", normalizer},
              {"pre_tokenizer", nullptr},
              {"decoder",
               {{"type", "Sequence"},
                {"decoders",
                 {{{"type", "Replace"}, {"pattern", {{"String", "\u2581"}}}, {"content", " "}},
                  {{"type", "ByteFallback"}},
                  {{"type", "Fuse"}},
                  {{"type", "Strip"}, {"content", " "}, {"start", prefix ? 1 : 0}, {"stop", 0}}}}}},
              {"model",
               {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", unk.empty() ? json() : json(unk)},
                {"continuing_subword_prefix", nullptr}, {"end_of_word_suffix", nullptr}, {"fuse_unk", true},
                {"byte_fallback", true}, {"ignore_merges", false}, {"vocab", vocab}, {"merges", pairs}}}};
}

}  // namespace

absl::StatusOr<GgufTokenizerFiles> TokenizerFilesFromGguf(const GgufModel& m) {
  ASSIGN_OR_RETURN(const std::string kind, m.String("tokenizer.ggml.model"));
  if (kind != "gpt2" && kind != "llama")
    return absl::UnimplementedError(absl::StrCat(m.path(), ": GGUF tokenizer.ggml.model '", kind,
                                                 "' is not supported (gpt2, byte-level BPE, and llama, "
                                                 "SentencePiece BPE, are)"));
  ASSIGN_OR_RETURN(const std::vector<std::string> tokens, m.StringArray("tokenizer.ggml.tokens"));
  std::vector<int64_t> types(tokens.size(), 1);
  if (m.Has("tokenizer.ggml.token_type")) {
    ASSIGN_OR_RETURN(types, m.IntArray("tokenizer.ggml.token_type"));
    if (types.size() != tokens.size())
      return absl::InvalidArgumentError(absl::StrCat(m.path(), ": GGUF tokenizer.ggml.token_type has ", types.size(),
                                                     " entries for ", tokens.size(), " tokens"));
  }
  json added = json::array();
  for (size_t i = 0; i < tokens.size(); ++i)
    if (types[i] == kControl || types[i] == kUserDefined)
      added.push_back({{"id", i}, {"content", tokens[i]}, {"single_word", false}, {"lstrip", false}, {"rstrip", false},
                       {"normalized", false}, {"special", types[i] == kControl}});
  json tokenizer = {{"version", "1.0"}, {"post_processor", nullptr}};
  bool add_bos = true;  // llama.cpp's default for SentencePiece vocabularies
  if (kind == "llama") {
    ASSIGN_OR_RETURN(const json parts, SentencePieceBpe(m, tokens, types, &added));
    tokenizer.update(parts);
  } else {
    ASSIGN_OR_RETURN(const std::string pre_name, m.StringOr("tokenizer.ggml.pre", "default"));
    ASSIGN_OR_RETURN(const PreTokenizer pre, PreTokenizerFor(pre_name, m.path()));
    add_bos = pre.add_bos;
    ASSIGN_OR_RETURN(const std::vector<std::string> merges, m.StringArray("tokenizer.ggml.merges"));
    json vocab = json::object();
    for (size_t i = 0; i < tokens.size(); ++i) vocab[tokens[i]] = i;
    json merge_pairs = json::array();
    for (const std::string& mg : merges) {
      const size_t sp = mg.find(' ', 1);  // llama.cpp's split: the first space after the first byte
      if (sp == std::string::npos)
        return absl::InvalidArgumentError(absl::StrCat(m.path(), ": GGUF tokenizer.ggml.merges entry '", mg, "' has no space"));
      merge_pairs.push_back({mg.substr(0, sp), mg.substr(sp + 1)});
    }
    tokenizer["normalizer"] = nullptr;
    tokenizer["pre_tokenizer"] = pre.pre_tokenizer;
    tokenizer["decoder"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}};
    tokenizer["model"] = {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr},
                          {"continuing_subword_prefix", nullptr}, {"end_of_word_suffix", nullptr}, {"fuse_unk", false},
                          {"byte_fallback", false}, {"ignore_merges", pre.ignore_merges}, {"vocab", vocab},
                          {"merges", merge_pairs}};
  }
  tokenizer["added_tokens"] = added;
  GgufTokenizerFiles out;
  out.tokenizer_json = tokenizer.dump(-1, ' ', false, json::error_handler_t::replace);
  json& cfg = out.tokenizer_config;
  for (const auto& [key, field] : {std::pair<const char*, const char*>{"bos_token", "tokenizer.ggml.bos_token_id"},
                                   {"eos_token", "tokenizer.ggml.eos_token_id"},
                                   {"unk_token", "tokenizer.ggml.unknown_token_id"},
                                   {"pad_token", "tokenizer.ggml.padding_token_id"}}) {
    if (!m.Has(field)) continue;
    ASSIGN_OR_RETURN(const int64_t id, m.Int(field));
    if (id < 0 || id >= static_cast<int64_t>(tokens.size()))
      return absl::InvalidArgumentError(absl::StrCat(m.path(), ": GGUF ", field, " is ", id, ", outside the ",
                                                     tokens.size(), "-token vocabulary"));
    cfg[key] = tokens[id];
  }
  ASSIGN_OR_RETURN(cfg["add_bos_token"], m.BoolOr("tokenizer.ggml.add_bos_token", add_bos));
  ASSIGN_OR_RETURN(cfg["add_eos_token"], m.BoolOr("tokenizer.ggml.add_eos_token", false));
  if (m.Has("tokenizer.chat_template")) {
    ASSIGN_OR_RETURN(std::string t, m.String("tokenizer.chat_template"));
    cfg["chat_template"] = std::move(t);
  }
  return out;
}

}  // namespace strata
