#include "runtime/tokenizer/tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <climits>
#include <fstream>
#include <mutex>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "runtime/base/status.h"
#include "runtime/tokenizer/metaspace_bpe_tokenizer.h"
#include "runtime/tokenizer/sentencepiece_tokenizer.h"
#include "runtime/tokenizer/tokenizer_parts.h"

namespace strata {
namespace {

using json = nlohmann::json;

// GPT-2's pre-tokenizer (also the ByteLevel pre-tokenizer's with use_regex).
constexpr char kGpt2Pattern[] =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

std::string CodepointToUtf8(uint32_t c) {
  std::string s;
  if (c < 0x80) {
    s += static_cast<char>(c);
  } else if (c < 0x800) {
    s += static_cast<char>(0xC0 | (c >> 6));
    s += static_cast<char>(0x80 | (c & 0x3F));
  } else {
    s += static_cast<char>(0xE0 | (c >> 12));
    s += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (c & 0x3F));
  }
  return s;
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace

struct ByteLevelBpeTokenizer::Regex {
  pcre2_code* code = nullptr;
  ~Regex() {
    if (code) pcre2_code_free(code);
  }
};

Tokenizer::~Tokenizer() = default;
ByteLevelBpeTokenizer::~ByteLevelBpeTokenizer() = default;

absl::Status ByteLevelBpeTokenizer::Init(const std::string& pattern) {
  // GPT-2's byte <-> printable character table.
  std::vector<int> printable;
  for (int b = '!'; b <= '~'; ++b) printable.push_back(b);
  for (int b = 0xA1; b <= 0xAC; ++b) printable.push_back(b);
  for (int b = 0xAE; b <= 0xFF; ++b) printable.push_back(b);
  int extra = 0;
  for (int b = 0; b < 256; ++b) {
    const bool direct = std::find(printable.begin(), printable.end(), b) != printable.end();
    byte_to_char_[b] = CodepointToUtf8(direct ? b : 256 + extra++);
    char_to_byte_[byte_to_char_[b]] = static_cast<uint8_t>(b);
  }
  regex_ = std::make_unique<Regex>();
  int err = 0;
  PCRE2_SIZE offset = 0;
  regex_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.c_str()), pattern.size(),
                               PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &err, &offset, nullptr);
  if (regex_->code == nullptr) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof(msg));
    return absl::InvalidArgumentError(absl::StrCat("pre-tokenizer pattern: ", reinterpret_cast<char*>(msg),
                                                   " at offset ", offset));
  }
  std::sort(added_.begin(), added_.end(),
            [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  cache_mu_ = std::make_unique<std::mutex>();
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromTokenizerJson(const std::string& text) {
  const json j = json::parse(text, nullptr, false);
  if (j.is_object() && MetaspaceBpeTokenizer::Recognizes(j)) {
    ASSIGN_OR_RETURN(std::unique_ptr<MetaspaceBpeTokenizer> m, MetaspaceBpeTokenizer::FromTokenizerJson(j, text));
    return std::unique_ptr<Tokenizer>(std::move(m));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<ByteLevelBpeTokenizer> t, ByteLevelBpeTokenizer::FromTokenizerJson(text));
  return std::unique_ptr<Tokenizer>(std::move(t));
}

absl::StatusOr<std::unique_ptr<ByteLevelBpeTokenizer>> ByteLevelBpeTokenizer::FromTokenizerJson(const std::string& text) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return absl::InvalidArgumentError("tokenizer.json: not a JSON object");
  std::unique_ptr<ByteLevelBpeTokenizer> t(new ByteLevelBpeTokenizer());
  try {
    const json& m = j.at("model");
    if (m.value("type", "BPE") != "BPE")
      return absl::UnimplementedError(absl::StrCat("tokenizer.json: model type ", m.value("type", ""),
                                                   " (only byte-level BPE is supported)"));
    for (const auto& [tok, id] : m.at("vocab").items()) t->token_to_id_[tok] = id.get<int>();
    ASSIGN_OR_RETURN(t->merge_rank_, ParseMerges(m.at("merges")));
    if (j.contains("added_tokens") && j["added_tokens"].is_array())
      for (const json& a : j["added_tokens"]) {
        const std::string content = a.at("content").get<std::string>();
        const int id = a.at("id").get<int>();
        t->token_to_id_[content] = id;
        t->added_.push_back({content, id});
        t->added_special_[id] = a.value("special", false);
      }
    // Pre-tokenizer: ByteLevel (GPT-2 regex when use_regex), or a Sequence with a Split regex.
    std::string pattern = kGpt2Pattern;
    const json& pre = j.value("pre_tokenizer", json());
    auto take_split = [&](const json& p) {
      if (p.value("type", "") == "Split" && p.contains("pattern") && p["pattern"].contains("Regex"))
        pattern = p["pattern"]["Regex"].get<std::string>();
    };
    if (pre.is_object()) {
      take_split(pre);
      if (pre.value("type", "") == "Sequence")
        for (const json& p : pre.at("pretokenizers")) take_split(p);
    }
    int max_id = -1;
    for (const auto& [tok, id] : t->token_to_id_) max_id = std::max(max_id, id);
    t->id_to_token_.assign(max_id + 1, "");
    for (const auto& [tok, id] : t->token_to_id_) {
      if (id < 0) return absl::InvalidArgumentError(absl::StrCat("tokenizer.json: negative id for '", tok, "'"));
      t->id_to_token_[id] = tok;
    }
    RETURN_IF_ERROR(t->Init(pattern));
    t->source_json_ = text;
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("tokenizer.json: ", e.what()));
  }
  return t;
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
  json j = {{"model", {{"type", "BPE"}, {"vocab", v}, {"merges", merges}}}};
  // GPT-2's end of text is an ordinary vocabulary entry there; mark it special.
  if (v.contains("<|endoftext|>"))
    j["added_tokens"] = json::array({{{"id", v["<|endoftext|>"]}, {"content", "<|endoftext|>"}, {"special", true}}});
  return FromTokenizerJson(j.dump());
}

namespace {

// The BOS a completion prompt starts with: tokenizer_config.json's add_bos_token and bos_token
// when it says, else the BOS of tokenizer.json's post-processor template, else `fallback`.
int BosToAdd(const std::string& dir, const Tokenizer& t, const json& tokenizer_json, int fallback) {
  if (auto cfg_text = ReadFile(dir + "/tokenizer_config.json"); cfg_text.ok()) {
    const json cfg = json::parse(*cfg_text, nullptr, false);
    if (cfg.is_object() && cfg.contains("add_bos_token") && cfg["add_bos_token"].is_boolean()) {
      if (!cfg["add_bos_token"].get<bool>()) return -1;
      const json& b = cfg.value("bos_token", json());
      const std::string bos = b.is_string() ? b.get<std::string>() : b.is_object() ? b.value("content", "") : "";
      return bos.empty() ? fallback : t.TokenId(bos);
    }
  }
  const json& post = tokenizer_json.is_object() ? tokenizer_json.value("post_processor", json()) : json();
  if (post.is_object() && post.value("type", "") == "TemplateProcessing" && post.contains("single") &&
      post["single"].is_array() && !post["single"].empty() && post["single"][0].contains("SpecialToken"))
    return t.TokenId(post["single"][0]["SpecialToken"].value("id", ""));
  return fallback;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::Load(const std::string& dir) {
  if (auto text = ReadFile(dir + "/tokenizer.json"); text.ok()) {
    auto t = FromTokenizerJson(*text);
    if (!t.ok()) return absl::Status(t.status().code(), absl::StrCat(dir, "/", t.status().message()));
    (*t)->set_bos_to_add(BosToAdd(dir, **t, json::parse(*text, nullptr, false), -1));
    return t;
  }
  if (std::ifstream(dir + "/tokenizer.model").good()) {
    ASSIGN_OR_RETURN(std::unique_ptr<SentencePieceTokenizer> sp, SentencePieceTokenizer::Load(dir + "/tokenizer.model"));
    const int bos = sp->bos_id();
    sp->set_bos_to_add(BosToAdd(dir, *sp, json(), bos));  // Llama's default: add_bos_token true
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


int ByteLevelBpeTokenizer::TokenId(const std::string& token) const {
  auto it = token_to_id_.find(token);
  return it == token_to_id_.end() ? -1 : it->second;
}

void ByteLevelBpeTokenizer::EncodeWord(const std::string& piece, std::vector<int>* out) const {
  {
    std::lock_guard<std::mutex> lock(*cache_mu_);
    auto it = cache_.find(piece);
    if (it != cache_.end()) {
      out->insert(out->end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<std::string> parts;
  for (unsigned char c : piece) parts.push_back(byte_to_char_[c]);
  // Repeatedly merge the adjacent pair of lowest rank.
  for (;;) {
    int best = INT_MAX;
    size_t at = 0;
    for (size_t i = 0; i + 1 < parts.size(); ++i) {
      auto it = merge_rank_.find({parts[i], parts[i + 1]});
      if (it != merge_rank_.end() && it->second < best) {
        best = it->second;
        at = i;
      }
    }
    if (best == INT_MAX) break;
    parts[at] += parts[at + 1];
    parts.erase(parts.begin() + at + 1);
  }
  std::vector<int> ids;
  for (const std::string& p : parts) {
    auto it = token_to_id_.find(p);
    if (it != token_to_id_.end()) {
      ids.push_back(it->second);
    } else {  // not in the vocabulary: fall back to its characters, one byte token each
      for (const std::string& ch : Utf8Chars(p)) {
        auto b = token_to_id_.find(ch);
        if (b != token_to_id_.end()) ids.push_back(b->second);
      }
    }
  }
  std::lock_guard<std::mutex> lock(*cache_mu_);
  if (cache_.size() > 100000) cache_.clear();
  cache_[piece] = ids;
  out->insert(out->end(), ids.begin(), ids.end());
}

std::vector<int> ByteLevelBpeTokenizer::Encode(const std::string& text) const {
  std::vector<int> out;
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(regex_->code, nullptr);
  auto encode_plain = [&](const std::string& s) {
    PCRE2_SIZE start = 0;
    while (start < s.size()) {
      const int rc = pcre2_match(regex_->code, reinterpret_cast<PCRE2_SPTR>(s.data()), s.size(), start, 0, md, nullptr);
      if (rc < 0) {  // no further match (or invalid UTF-8): the rest as one piece
        EncodeWord(s.substr(start), &out);
        break;
      }
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
      if (ov[0] > start) EncodeWord(s.substr(start, ov[0] - start), &out);
      if (ov[1] == ov[0]) {  // an empty match: step one byte so the loop ends
        EncodeWord(s.substr(ov[0], 1), &out);
        start = ov[0] + 1;
        continue;
      }
      EncodeWord(s.substr(ov[0], ov[1] - ov[0]), &out);
      start = ov[1];
    }
  };
  // Added tokens are matched verbatim first (longest first), the text between them is encoded.
  size_t pos = 0, plain_start = 0;
  while (pos < text.size()) {
    bool hit = false;
    for (const auto& [content, id] : added_) {
      if (!content.empty() && text.compare(pos, content.size(), content) == 0) {
        encode_plain(text.substr(plain_start, pos - plain_start));
        out.push_back(id);
        pos += content.size();
        plain_start = pos;
        hit = true;
        break;
      }
    }
    if (!hit) ++pos;
  }
  encode_plain(text.substr(plain_start));
  pcre2_match_data_free(md);
  return out;
}

std::string ByteLevelBpeTokenizer::DecodeToken(int id, bool skip_special, bool) const {
  if (id < 0 || id >= static_cast<int>(id_to_token_.size())) return "";
  if (auto added = added_special_.find(id); added != added_special_.end())  // verbatim text
    return added->second && skip_special ? "" : id_to_token_[id];
  std::string out;
  for (const std::string& ch : Utf8Chars(id_to_token_[id])) {
    auto it = char_to_byte_.find(ch);
    out += it != char_to_byte_.end() ? std::string(1, static_cast<char>(it->second)) : ch;
  }
  return out;
}

std::string Tokenizer::Decode(const std::vector<int>& ids, bool skip_special) const {
  std::string out;
  bool first = true;
  for (int id : ids) {
    out += DecodeToken(id, skip_special, first);
    if (!(skip_special && IsSpecial(id))) first = false;
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
  if (!(skip_special_ && t_->IsSpecial(id))) first_ = false;
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
