#include "runtime/tokenizer/tokenizer.h"

#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "runtime/base/status.h"
#include "runtime/model/gguf_file.h"
#include "runtime/tokenizer/gguf_tokenizer.h"
#include "runtime/tokenizer/json_tokenizer.h"
#include "runtime/tokenizer/sentencepiece_tokenizer.h"

namespace strata {
namespace {

using json = nlohmann::json;

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace

Tokenizer::~Tokenizer() = default;

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromTokenizerJson(const std::string& text) {
  ASSIGN_OR_RETURN(std::unique_ptr<JsonTokenizer> t, JsonTokenizer::FromJson(text));
  return std::unique_ptr<Tokenizer>(std::move(t));
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromVocabAndMerges(const std::string& vocab_json,
                                                                         const std::string& merges_txt) {
  json v = json::parse(vocab_json, nullptr, false);
  if (v.is_discarded() || !v.is_object()) return absl::InvalidArgumentError("vocab.json: not a JSON object");
  json merges = json::array();
  std::istringstream in(merges_txt);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line.rfind("#version", 0) == 0) continue;
    merges.push_back(line);
  }
  // GPT-2's layout: the ByteLevel pre-tokenizer (its regex, no prefix space) and decoder.
  const json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
  json j = {{"model", {{"type", "BPE"}, {"vocab", v}, {"merges", merges}}},
            {"pre_tokenizer", byte_level},
            {"decoder", byte_level}};
  // GPT-2's end of text is an ordinary vocabulary entry there; mark it special.
  if (v.contains("<|endoftext|>"))
    j["added_tokens"] = json::array({{{"id", v["<|endoftext|>"]}, {"content", "<|endoftext|>"}, {"special", true}}});
  return FromTokenizerJson(j.dump());
}

namespace {

// The special tokens a completion prompt gets, {BOS, EOS} (-1: none): tokenizer_config.json's
// add_bos_token / add_eos_token with bos_token / eos_token where it says, else the special tokens
// before and after $A in tokenizer.json's TemplateProcessing `single` (also inside a Sequence
// post-processor), else `fallback`.
std::pair<int, int> SpecialTokensToAdd(const json& cfg, const Tokenizer& t, const json& tokenizer_json,
                                       std::pair<int, int> fallback) {
  std::pair<int, int> out = fallback;
  // The template first, so that tokenizer_config.json's explicit settings override it.
  std::vector<json> processors;
  const json& post = tokenizer_json.is_object() ? tokenizer_json.value("post_processor", json()) : json();
  if (post.is_object() && post.value("type", "") == "Sequence" && post.contains("processors"))
    for (const json& p : post["processors"]) processors.push_back(p);
  else if (post.is_object())
    processors.push_back(post);
  for (const json& p : processors) {
    if (p.value("type", "") != "TemplateProcessing" || !p.contains("single") || !p["single"].is_array()) continue;
    out = {-1, -1};
    bool after = false;
    for (const json& piece : p["single"]) {
      if (piece.contains("Sequence")) {
        after = true;
      } else if (piece.contains("SpecialToken")) {
        const std::string name = piece["SpecialToken"].value("id", "");
        int id = t.TokenId(name);
        const json& st = p.value("special_tokens", json());  // its ids, where the file lists them
        if (st.is_object() && st.contains(name) && st[name].contains("ids") && st[name]["ids"].size() == 1)
          id = st[name]["ids"][0].get<int>();
        (after ? out.second : out.first) = id;
      }
    }
  }
  {
    auto setting = [&](const char* add_key, const char* token_key, int fallback_id, int* id) {
      if (!cfg.is_object() || !cfg.contains(add_key) || !cfg[add_key].is_boolean()) return;
      if (!cfg[add_key].get<bool>()) {
        *id = -1;
        return;
      }
      const json& b = cfg.value(token_key, json());
      const std::string name = b.is_string() ? b.get<std::string>() : b.is_object() ? b.value("content", "") : "";
      *id = name.empty() ? fallback_id : t.TokenId(name);
    };
    setting("add_bos_token", "bos_token", fallback.first, &out.first);
    setting("add_eos_token", "eos_token", fallback.second, &out.second);
  }
  return out;
}

// The directory's tokenizer_config.json, parsed (null when absent or not JSON).
json TokenizerConfig(const std::string& dir) {
  auto text = ReadFile(dir + "/tokenizer_config.json");
  return text.ok() ? json::parse(*text, nullptr, false) : json();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::Load(const std::string& dir) {
  if (IsGgufPath(dir)) {  // a GGUF model: the tokenizer its metadata describes
    ASSIGN_OR_RETURN(const GgufModel model, GgufModel::Open(dir));
    ASSIGN_OR_RETURN(const GgufTokenizerFiles files, TokenizerFilesFromGguf(model));
    ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> t, FromTokenizerJson(files.tokenizer_json));
    const auto [bos, eos] = SpecialTokensToAdd(files.tokenizer_config, *t, json(), {-1, -1});
    t->set_bos_to_add(bos);
    t->set_eos_to_add(eos);
    return t;
  }
  if (auto text = ReadFile(dir + "/tokenizer.json"); text.ok()) {
    auto t = FromTokenizerJson(*text);
    if (!t.ok()) return absl::Status(t.status().code(), absl::StrCat(dir, "/", t.status().message()));
    const auto [bos, eos] = SpecialTokensToAdd(TokenizerConfig(dir), **t, json::parse(*text, nullptr, false), {-1, -1});
    (*t)->set_bos_to_add(bos);
    (*t)->set_eos_to_add(eos);
    return t;
  }
  if (std::ifstream(dir + "/tokenizer.model").good()) {
    ASSIGN_OR_RETURN(std::unique_ptr<SentencePieceTokenizer> sp, SentencePieceTokenizer::Load(dir + "/tokenizer.model"));
    // Llama's defaults: add_bos_token true, add_eos_token false.
    const auto [bos, eos] = SpecialTokensToAdd(TokenizerConfig(dir), *sp, json(), {sp->bos_id(), -1});
    sp->set_bos_to_add(bos);
    sp->set_eos_to_add(eos);
    return std::unique_ptr<Tokenizer>(std::move(sp));
  }
  auto vocab = ReadFile(dir + "/vocab.json");
  auto merges = ReadFile(dir + "/merges.txt");
  if (!vocab.ok() || !merges.ok()) {  // GPT-2's original release names them differently
    vocab = ReadFile(dir + "/encoder.json");
    merges = ReadFile(dir + "/vocab.bpe");
  }
  if (!vocab.ok() || !merges.ok())
    return absl::NotFoundError(
        absl::StrCat(dir, ": no tokenizer.json, nor vocab.json and merges.txt (or encoder.json and vocab.bpe)"));
  return FromVocabAndMerges(*vocab, *merges);
}

std::vector<int> Tokenizer::WithSpecialTokens(std::vector<int> ids) const {
  // As Hugging Face's encode(add_special_tokens=True) and vLLM: a prompt that already spells the
  // token out (a BOS written as "<s>") gets a second one.
  if (bos_to_add_ >= 0) ids.insert(ids.begin(), bos_to_add_);
  if (eos_to_add_ >= 0) ids.push_back(eos_to_add_);
  return ids;
}

std::string Tokenizer::Decode(const std::vector<int>& ids, bool skip_special) const {
  std::string out;
  bool first = true;
  for (int id : ids) {
    out += DecodeToken(id, skip_special, first);
    if (!(skip_special && SkippedAsSpecial(id))) first = false;
  }
  return out;
}

size_t IncompleteUtf8Tail(const std::string& s) {
  // Look back at most 3 bytes for a lead byte whose sequence is not complete yet.
  for (size_t back = 1; back <= 3 && back <= s.size(); ++back) {
    const unsigned char c = static_cast<unsigned char>(s[s.size() - back]);
    if ((c & 0xC0) == 0x80) continue;  // a continuation byte: keep looking for the lead
    const size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    return need > back ? back : 0;
  }
  return 0;
}

std::string IncrementalDecoder::Add(int id) {
  pending_ += t_->DecodeToken(id, skip_special_, first_);
  if (!(skip_special_ && t_->SkippedAsSpecial(id))) first_ = false;
  const size_t hold = IncompleteUtf8Tail(pending_);
  std::string ready = pending_.substr(0, pending_.size() - hold);
  pending_.erase(0, pending_.size() - hold);
  return ready;
}

std::string IncrementalDecoder::Flush() {
  std::string out;
  for (size_t i = 0; i < pending_.size(); ++i) out += "\xEF\xBF\xBD";  // U+FFFD per stray byte
  pending_.clear();
  return out;
}

}  // namespace strata
