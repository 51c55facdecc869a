// File: runtime/tokenizer/tokenizer_model.h
// tokenizer.json's `model`: turns one pre-tokenized word into ids. Implementations: BpeModel
// (bpe_model.h) and UnigramModel (unigram_model.h).
#pragma once

#include <string>
#include <unordered_map>
#include <vector>

namespace strata {

class TokenizerModel {
 public:
  virtual ~TokenizerModel() = default;
  virtual void Encode(const std::string& word, std::vector<int>* out) const = 0;
  // The model's pieces and their ids.
  const std::unordered_map<std::string, int>& vocab() const { return vocab_; }

 protected:
  // byte_fallback: the <0xNN> ids of every byte of `s`, appended, if the vocabulary has them all.
  bool AppendBytePieces(const std::string& s, std::vector<int>* out) const;
  std::unordered_map<std::string, int> vocab_;
};

}  // namespace strata
