#include "runtime/tokenizer/json_tokenizer.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "runtime/base/status.h"
#include "runtime/tokenizer/bpe_model.h"
#include "runtime/tokenizer/unigram_model.h"

namespace strata {

using json = nlohmann::json;

absl::StatusOr<std::unique_ptr<JsonTokenizer>> JsonTokenizer::FromJson(const std::string& text) {
  const json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return absl::InvalidArgumentError("tokenizer.json: not a JSON object");
  std::unique_ptr<JsonTokenizer> t(new JsonTokenizer());
  t->source_json_ = text;
  try {
    const json& m = j.at("model");
    const std::string type = m.value("type", m.contains("merges") ? "BPE" : "");
    if (type == "BPE") {
      ASSIGN_OR_RETURN(t->model_, BpeModel::FromJson(m));
    } else if (type == "Unigram") {
      ASSIGN_OR_RETURN(t->model_, UnigramModel::FromJson(m));
    } else {
      return absl::UnimplementedError(
          absl::StrCat("tokenizer.json: model type '", type, "' is not supported (BPE and Unigram are)"));
    }
    ASSIGN_OR_RETURN(t->normalizer_, Normalizer::FromJson(j.value("normalizer", json())));
    ASSIGN_OR_RETURN(t->pre_tokenizer_, PreTokenizer::FromJson(j.value("pre_tokenizer", json())));
    ASSIGN_OR_RETURN(t->decoder_, Decoder::FromJson(j.value("decoder", json())));
    // No decoder but a pre-tokenizer that changes the text: undo it (Hugging Face would join the
    // pieces with spaces, which no published tokenizer relies on).
    if (t->decoder_.empty() && t->pre_tokenizer_.has_byte_level()) t->decoder_ = Decoder::ByteLevel();
    if (t->decoder_.empty() && t->pre_tokenizer_.metaspace_replacement())
      t->decoder_ = Decoder::Metaspace(*t->pre_tokenizer_.metaspace_replacement(), t->pre_tokenizer_.metaspace_prepends());
    t->piece_to_id_ = t->model_->vocab();
    if (j.contains("added_tokens") && j["added_tokens"].is_array())
      for (const json& a : j["added_tokens"]) {
        AddedToken tok = AddedToken::FromJson(a);
        if (tok.id < 0) return absl::InvalidArgumentError(absl::StrCat("tokenizer.json: negative id for '", tok.content, "'"));
        t->piece_to_id_[tok.content] = tok.id;
        t->added_special_[tok.id] = tok.special;
        if (tok.special) t->special_contents_.insert(tok.content);
        if (tok.normalized) {
          tok.content = t->normalizer_.Apply(tok.content);  // as Hugging Face matches it
          t->normalized_added_.push_back(tok);
          t->added_piece_[tok.id] = tok.content;
        } else {
          t->added_piece_[tok.id] = tok.content;
          t->raw_added_.push_back(tok);
        }
      }
    int max_id = -1;
    for (const auto& [piece, id] : t->piece_to_id_) {
      if (id < 0) return absl::InvalidArgumentError(absl::StrCat("tokenizer.json: negative id for '", piece, "'"));
      max_id = std::max(max_id, id);
    }
    t->id_to_piece_.assign(max_id + 1, "");
    for (const auto& [piece, id] : t->model_->vocab()) t->id_to_piece_[id] = piece;
    for (const auto& [id, piece] : t->added_piece_) t->id_to_piece_[id] = piece;  // over a model piece's id
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("tokenizer.json: ", e.what()));
  }
  return t;
}

int JsonTokenizer::TokenId(const std::string& token) const {
  auto it = piece_to_id_.find(token);
  return it == piece_to_id_.end() ? -1 : it->second;
}

bool JsonTokenizer::IsSpecial(int id) const {
  auto it = added_special_.find(id);
  return it != added_special_.end() && it->second;
}

bool JsonTokenizer::SkippedAsSpecial(int id) const {
  return id >= 0 && id < static_cast<int>(id_to_piece_.size()) && special_contents_.count(id_to_piece_[id]) > 0;
}

std::vector<int> JsonTokenizer::Encode(const std::string& text) const {
  std::vector<int> out;
  for (const TextPart& raw : SplitAddedTokens(text, raw_added_)) {
    if (raw.id >= 0) {
      out.push_back(raw.id);
      continue;
    }
    size_t origin = 0;  // normalized bytes aligned to the text's first character (raw part at 0 only)
    const std::string normalized = normalizer_.Apply(raw.text, &origin);
    if (raw.offset != 0) origin = 0;
    for (const TextPart& part : SplitAddedTokens(normalized, normalized_added_)) {
      if (part.id >= 0) {
        out.push_back(part.id);
        continue;
      }
      const size_t part_origin = part.offset < origin ? origin - part.offset : 0;
      for (const std::string& word : pre_tokenizer_.Split(part.text, part_origin)) model_->Encode(word, &out);
    }
  }
  return out;
}

std::string JsonTokenizer::DecodeToken(int id, bool skip_special, bool first) const {
  if (id < 0 || id >= static_cast<int>(id_to_piece_.size())) return "";
  if (skip_special && SkippedAsSpecial(id)) return "";
  const std::string& piece = id_to_piece_[id];
  // As Hugging Face: every token, added ones included, goes through the decoder (a ByteLevel
  // decoder turns an added "café" into the bytes c a f 0xE9, which transformers shows as
  // "caf\uFFFD"); with no decoder at all the tokens are joined with spaces.
  if (decoder_.empty()) return first ? piece : " " + piece;
  return decoder_.Decode(piece, first);
}

}  // namespace strata
