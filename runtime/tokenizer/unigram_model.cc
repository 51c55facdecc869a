#include "runtime/tokenizer/unigram_model.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "runtime/tokenizer/unicode.h"

namespace strata {

using json = nlohmann::json;

absl::StatusOr<std::unique_ptr<UnigramModel>> UnigramModel::FromJson(const json& m) {
  std::unique_ptr<UnigramModel> t(new UnigramModel());
  const json& vocab = m.at("vocab");
  if (!vocab.is_array() || vocab.empty())
    return absl::InvalidArgumentError("tokenizer.json: Unigram vocab is not a non-empty [[piece, score], ...] list");
  double min_score = 0;
  for (size_t id = 0; id < vocab.size(); ++id) {
    const std::string piece = vocab[id].at(0).get<std::string>();
    const double score = vocab[id].at(1).get<double>();
    t->vocab_.emplace(piece, static_cast<int>(id));
    t->score_.push_back(score);
    t->max_piece_bytes_ = std::max(t->max_piece_bytes_, piece.size());
    min_score = std::min(min_score, score);
  }
  constexpr double kUnkPenalty = 10.0;  // SentencePiece's and Hugging Face's
  t->unk_score_ = min_score - kUnkPenalty;
  const json& unk = m.value("unk_id", json());
  if (unk.is_number_integer()) {
    t->unk_id_ = unk.get<int>();
    if (t->unk_id_ < 0 || t->unk_id_ >= static_cast<int>(vocab.size()))
      return absl::InvalidArgumentError(absl::StrCat("tokenizer.json: Unigram unk_id ", t->unk_id_, " is out of range"));
  }
  t->byte_fallback_ = m.value("byte_fallback", false);
  return t;
}

void UnigramModel::Encode(const std::string& s, std::vector<int>* out) const {
  // best[e]: the best path over s[0, e): its score, where its last piece starts, that piece's id.
  struct Node {
    double score = 0;
    int start = -1;
    int id = -1;
  };
  std::vector<Node> best(s.size() + 1);
  best[0].start = 0;
  for (size_t pos = 0; pos < s.size();) {
    size_t char_len = 0;
    DecodeCodepoint(s, pos, &char_len);
    if (best[pos].start < 0) {  // not reachable (only inside a character)
      pos += char_len;
      continue;
    }
    bool single = false;
    auto offer = [&](size_t end, int id, double score) {
      Node& n = best[end];
      const double total = best[pos].score + score;
      if (n.start < 0 || total > n.score) n = {total, static_cast<int>(pos), id};
    };
    for (size_t end = pos + 1; end <= s.size() && end - pos <= max_piece_bytes_; ++end) {
      if (end < s.size() && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80) continue;  // not a boundary
      auto it = vocab_.find(s.substr(pos, end - pos));
      if (it == vocab_.end()) continue;
      offer(end, it->second, score_[it->second]);
      if (end - pos == char_len) single = true;
    }
    if (!single) offer(pos + char_len, unk_id_, unk_score_);
    pos += char_len;
  }
  // Back from the end; consecutive unk nodes become one string.
  std::vector<std::pair<std::string, int>> pieces;  // (text, id), reversed
  for (size_t end = s.size(); end > 0;) {
    const Node& n = best[end];
    const std::string text = s.substr(n.start, end - n.start);
    if (n.id == unk_id_ && !pieces.empty() && pieces.back().second == unk_id_ && unk_id_ >= 0) {
      pieces.back().first = text + pieces.back().first;
    } else {
      pieces.push_back({text, n.id});
    }
    end = n.start;
  }
  std::reverse(pieces.begin(), pieces.end());
  for (const auto& [text, id] : pieces) {
    if (auto it = vocab_.find(text); it != vocab_.end()) {
      out->push_back(it->second);
    } else if (byte_fallback_ && AppendBytePieces(text, out)) {
    } else if (unk_id_ >= 0) {
      out->push_back(unk_id_);
    }
  }
}

}  // namespace strata
