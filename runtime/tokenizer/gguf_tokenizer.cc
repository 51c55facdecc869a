#include "runtime/tokenizer/gguf_tokenizer.h"

#include "absl/strings/str_cat.h"
#include "runtime/base/status.h"

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

}  // namespace

absl::StatusOr<GgufTokenizerFiles> TokenizerFilesFromGguf(const GgufModel& m) {
  ASSIGN_OR_RETURN(const std::string kind, m.String("tokenizer.ggml.model"));
  if (kind != "gpt2")
    return absl::UnimplementedError(absl::StrCat(m.path(), ": GGUF tokenizer.ggml.model '", kind,
                                                 "' is not supported yet (gpt2, byte-level BPE, is)"));
  ASSIGN_OR_RETURN(const std::string pre_name, m.StringOr("tokenizer.ggml.pre", "default"));
  ASSIGN_OR_RETURN(const PreTokenizer pre, PreTokenizerFor(pre_name, m.path()));
  ASSIGN_OR_RETURN(const std::vector<std::string> tokens, m.StringArray("tokenizer.ggml.tokens"));
  std::vector<int64_t> types(tokens.size(), 1);
  if (m.Has("tokenizer.ggml.token_type")) {
    ASSIGN_OR_RETURN(types, m.IntArray("tokenizer.ggml.token_type"));
    if (types.size() != tokens.size())
      return absl::InvalidArgumentError(absl::StrCat(m.path(), ": GGUF tokenizer.ggml.token_type has ", types.size(),
                                                     " entries for ", tokens.size(), " tokens"));
  }
  ASSIGN_OR_RETURN(const std::vector<std::string> merges, m.StringArray("tokenizer.ggml.merges"));
  json vocab = json::object();
  json added = json::array();
  for (size_t i = 0; i < tokens.size(); ++i) {
    vocab[tokens[i]] = i;
    if (types[i] == kControl || types[i] == kUserDefined)
      added.push_back({{"id", i}, {"content", tokens[i]}, {"single_word", false}, {"lstrip", false}, {"rstrip", false},
                       {"normalized", false}, {"special", types[i] == kControl}});
  }
  json merge_pairs = json::array();
  for (const std::string& mg : merges) {
    const size_t sp = mg.find(' ', 1);  // llama.cpp's split: the first space after the first byte
    if (sp == std::string::npos)
      return absl::InvalidArgumentError(absl::StrCat(m.path(), ": GGUF tokenizer.ggml.merges entry '", mg, "' has no space"));
    merge_pairs.push_back({mg.substr(0, sp), mg.substr(sp + 1)});
  }
  const json tokenizer = {
      {"version", "1.0"},
      {"added_tokens", added},
      {"normalizer", nullptr},
      {"pre_tokenizer", pre.pre_tokenizer},
      {"post_processor", nullptr},
      {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}}},
      {"model",
       {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr}, {"fuse_unk", false}, {"byte_fallback", false},
        {"ignore_merges", pre.ignore_merges}, {"vocab", vocab}, {"merges", merge_pairs}}},
  };
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
  ASSIGN_OR_RETURN(cfg["add_bos_token"], m.BoolOr("tokenizer.ggml.add_bos_token", pre.add_bos));
  ASSIGN_OR_RETURN(cfg["add_eos_token"], m.BoolOr("tokenizer.ggml.add_eos_token", false));
  if (m.Has("tokenizer.chat_template")) {
    ASSIGN_OR_RETURN(std::string t, m.String("tokenizer.chat_template"));
    cfg["chat_template"] = std::move(t);
  }
  return out;
}

}  // namespace strata
