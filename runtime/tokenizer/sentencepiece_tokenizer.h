// File: runtime/tokenizer/sentencepiece_tokenizer.h
// A SentencePiece `tokenizer.model` (Llama 2, TinyLlama, Mistral; BPE or Unigram), through
// Debian's libsentencepiece: its control and unknown pieces (<s>, </s>, <unk>) are split out of
// the text verbatim first, as Hugging Face does; the rest is the library's own segmentation.
// Decoding is per piece: U+2581 is a space, <0xNN> pieces are bytes, and the dummy-prefix space
// is dropped at the start of the text.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/tokenizer/added_tokens.h"
#include "runtime/tokenizer/sentencepiece_library.h"
#include "runtime/tokenizer/tokenizer.h"

namespace strata {

class SentencePieceTokenizer final : public Tokenizer {
 public:
  static absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> Load(const std::string& model_path);
  ~SentencePieceTokenizer() override;
  std::vector<int> Encode(const std::string& text) const override;
  std::string DecodeToken(int id, bool skip_special, bool first) const override;
  bool IsSpecial(int id) const override;
  std::string ToTokenizerJson() const override { return ""; }
  int vocab_size() const override;
  int TokenId(const std::string& token) const override;
  int bos_id() const;

 private:
  SentencePieceTokenizer();
  std::unique_ptr<SentencePieceLibrary> sp_;
  std::vector<AddedToken> special_;  // control and unknown pieces, matched verbatim
  bool dummy_prefix_ = true;
};

}  // namespace strata
