#include "runtime/tokenizer/metaspace_bpe_tokenizer.h"

#include <algorithm>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "runtime/base/status.h"
#include "runtime/tokenizer/tokenizer_parts.h"

namespace strata {
namespace {

using json = nlohmann::json;

std::string ReplaceAll(std::string s, const std::string& from, const std::string& to) {
  for (size_t at = 0; (at = s.find(from, at)) != std::string::npos; at += to.size()) s.replace(at, from.size(), to);
  return s;
}

// The steps of a normalizer, pre-tokenizer or decoder, flattened from a Sequence.
std::vector<json> Steps(const json& j, const char* list_key) {
  if (!j.is_object()) return {};
  if (j.value("type", "") == "Sequence" && j.contains(list_key)) return j[list_key].get<std::vector<json>>();
  return {j};
}

}  // namespace

bool MetaspaceBpeTokenizer::Recognizes(const json& j) {
  const json& m = j.value("model", json());
  if (m.is_object() && m.value("byte_fallback", false)) return true;
  for (const json& s : Steps(j.value("pre_tokenizer", json()), "pretokenizers"))
    if (s.value("type", "") == "Metaspace") return true;
  for (const json& s : Steps(j.value("normalizer", json()), "normalizers"))
    if (s.value("type", "") == "Prepend") return true;
  return false;
}

absl::StatusOr<std::unique_ptr<MetaspaceBpeTokenizer>> MetaspaceBpeTokenizer::FromTokenizerJson(const json& j,
                                                                                              const std::string& text) {
  std::unique_ptr<MetaspaceBpeTokenizer> t(new MetaspaceBpeTokenizer());
  t->source_json_ = text;
  try {
    const json& m = j.at("model");
    if (m.value("type", "BPE") != "BPE")
      return absl::UnimplementedError(absl::StrCat("tokenizer.json: model type ", m.value("type", ""),
                                                   " with a Metaspace layout (only BPE is supported)"));
    for (const auto& [piece, id] : m.at("vocab").items()) t->piece_to_id_[piece] = id.get<int>();
    ASSIGN_OR_RETURN(t->merge_rank_, ParseMerges(m.at("merges")));
    t->byte_fallback_ = m.value("byte_fallback", false);
    t->fuse_unk_ = m.value("fuse_unk", false);
    if (m.contains("unk_token") && m["unk_token"].is_string() && t->piece_to_id_.count(m["unk_token"].get<std::string>()))
      t->unk_id_ = t->piece_to_id_[m["unk_token"].get<std::string>()];
    if (j.contains("added_tokens") && j["added_tokens"].is_array())
      for (const json& a : j["added_tokens"]) {
        const std::string content = a.at("content").get<std::string>();
        const int id = a.at("id").get<int>();
        t->piece_to_id_[content] = id;
        t->added_.push_back({content, id});
        t->added_special_[id] = a.value("special", false);
      }
    std::sort(t->added_.begin(), t->added_.end(),
              [](const auto& x, const auto& y) { return x.first.size() > y.first.size(); });
    // Where the U+2581 comes from: a Prepend normalizer (every segment), or Metaspace.
    bool prepend_normalizer = false;
    for (const json& s : Steps(j.value("normalizer", json()), "normalizers")) {
      const std::string type = s.value("type", "");
      if (type == "Prepend") prepend_normalizer = true;
      else if (type == "Replace") {
        const json& pat = s.value("pattern", json());
        if (!pat.is_object() || pat.value("String", "") != " ")
          return absl::UnimplementedError("tokenizer.json: a Replace normalizer other than ' ' -> U+2581");
        t->replacement_ = s.value("content", t->replacement_);
      } else {
        return absl::UnimplementedError(absl::StrCat("tokenizer.json: normalizer '", type, "' is not supported"));
      }
    }
    t->prepend_ = prepend_normalizer ? Prepend::kAlways : Prepend::kNever;
    for (const json& s : Steps(j.value("pre_tokenizer", json()), "pretokenizers")) {
      const std::string type = s.value("type", "");
      if (type != "Metaspace")
        return absl::UnimplementedError(absl::StrCat("tokenizer.json: pre-tokenizer '", type, "' with Metaspace BPE"));
      t->replacement_ = s.value("replacement", t->replacement_);
      const std::string scheme = s.value("prepend_scheme", s.value("add_prefix_space", true) ? "always" : "never");
      t->prepend_ = scheme == "first" ? Prepend::kFirst : scheme == "never" ? Prepend::kNever : Prepend::kAlways;
      if (s.value("split", false))
        return absl::UnimplementedError("tokenizer.json: Metaspace with split = true is not supported");
    }
    t->strip_leading_space_ = t->prepend_ != Prepend::kNever;
    int max_id = -1;
    for (const auto& [piece, id] : t->piece_to_id_) max_id = std::max(max_id, id);
    t->id_to_piece_.assign(max_id + 1, "");
    for (const auto& [piece, id] : t->piece_to_id_) {
      if (id < 0) return absl::InvalidArgumentError(absl::StrCat("tokenizer.json: negative id for '", piece, "'"));
      t->id_to_piece_[id] = piece;
    }
    for (int b = 0; b < 256; ++b) {
      char name[8];
      std::snprintf(name, sizeof(name), "<0x%02X>", b);
      auto it = t->piece_to_id_.find(name);
      t->byte_id_[b] = it == t->piece_to_id_.end() ? -1 : it->second;
    }
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("tokenizer.json: ", e.what()));
  }
  return t;
}

int MetaspaceBpeTokenizer::TokenId(const std::string& token) const {
  auto it = piece_to_id_.find(token);
  return it == piece_to_id_.end() ? -1 : it->second;
}

void MetaspaceBpeTokenizer::EncodeSegment(const std::string& segment, bool first, std::vector<int>* out) const {
  std::string s = ReplaceAll(segment, " ", replacement_);
  if (prepend_ == Prepend::kAlways || (prepend_ == Prepend::kFirst && first)) s = replacement_ + s;
  std::vector<std::string> sym = Utf8Chars(s);
  // Merges by rank, the lowest first (leftmost on ties), until none applies.
  for (;;) {
    int best = -1, best_rank = 0;
    for (size_t i = 0; i + 1 < sym.size(); ++i) {
      auto it = merge_rank_.find({sym[i], sym[i + 1]});
      if (it != merge_rank_.end() && (best < 0 || it->second < best_rank)) {
        best = static_cast<int>(i);
        best_rank = it->second;
      }
    }
    if (best < 0) break;
    sym[best] += sym[best + 1];
    sym.erase(sym.begin() + best + 1);
  }
  bool last_unk = false;
  for (const std::string& piece : sym) {
    if (auto it = piece_to_id_.find(piece); it != piece_to_id_.end()) {
      out->push_back(it->second);
      last_unk = false;
      continue;
    }
    bool bytes = byte_fallback_;
    for (unsigned char c : piece) bytes = bytes && byte_id_[c] >= 0;
    if (bytes) {
      for (unsigned char c : piece) out->push_back(byte_id_[c]);
      last_unk = false;
    } else if (unk_id_ >= 0 && !(fuse_unk_ && last_unk)) {
      out->push_back(unk_id_);
      last_unk = true;
    }
  }
}

std::vector<int> MetaspaceBpeTokenizer::Encode(const std::string& text) const {
  return EncodeAroundAddedTokens(text, added_, [this](const std::string& segment, bool first, std::vector<int>* out) {
    EncodeSegment(segment, first, out);
  });
}

std::string MetaspaceBpeTokenizer::DecodeToken(int id, bool skip_special, bool first) const {
  if (id < 0 || id >= static_cast<int>(id_to_piece_.size())) return "";
  if (auto a = added_special_.find(id); a != added_special_.end()) return a->second && skip_special ? "" : id_to_piece_[id];
  const std::string& piece = id_to_piece_[id];
  if (piece.size() == 6 && piece.rfind("<0x", 0) == 0 && piece.back() == '>')
    return std::string(1, static_cast<char>(std::stoi(piece.substr(3, 2), nullptr, 16)));
  std::string out = ReplaceAll(piece, replacement_, " ");
  if (first && strip_leading_space_ && !out.empty() && out[0] == ' ') out.erase(0, 1);
  return out;
}

}  // namespace strata
