// File: runtime/tokenizer/unigram_model.h
// tokenizer.json's Unigram model (SentencePiece Unigram as Hugging Face converts it: vocab as
// [[piece, score], ...], unk_id, byte_fallback), encoded as Hugging Face's unigram/model.rs does:
// Viterbi over every vocabulary piece that starts at each character, a character no piece covers
// being an unk node scored min_score - 10; consecutive unk characters are fused, and an unk
// string becomes its <0xNN> byte pieces with byte_fallback, else the unk id.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "runtime/tokenizer/tokenizer_model.h"

namespace strata {

class UnigramModel final : public TokenizerModel {
 public:
  static absl::StatusOr<std::unique_ptr<UnigramModel>> FromJson(const nlohmann::json& model);
  void Encode(const std::string& word, std::vector<int>* out) const override;

 private:
  UnigramModel() = default;
  std::vector<double> score_;  // by id
  double unk_score_ = 0;
  size_t max_piece_bytes_ = 0;
  int unk_id_ = -1;
  bool byte_fallback_ = false;
};

}  // namespace strata
