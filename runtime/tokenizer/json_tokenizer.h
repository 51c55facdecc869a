// File: runtime/tokenizer/json_tokenizer.h
// A Hugging Face tokenizer.json as its pipeline: added tokens split out of the raw text
// (added_tokens.h) -> normalizer (normalizer.h) -> added tokens with normalized = true ->
// pre-tokenizer (pre_tokenizer.h) -> model (BPE or Unigram) per word; decoding through the
// decoder (decoder.h) one token at a time. One class for every family: byte-level BPE (GPT-2,
// GPT-NeoX, Llama 3), SentencePiece-derived BPE and Unigram (Llama 2, TinyLlama, Mistral, T5).
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/tokenizer/added_tokens.h"
#include "runtime/tokenizer/decoder.h"
#include "runtime/tokenizer/normalizer.h"
#include "runtime/tokenizer/pre_tokenizer.h"
#include "runtime/tokenizer/tokenizer.h"
#include "runtime/tokenizer/tokenizer_model.h"

namespace strata {

class JsonTokenizer final : public Tokenizer {
 public:
  static absl::StatusOr<std::unique_ptr<JsonTokenizer>> FromJson(const std::string& json_text);
  std::vector<int> Encode(const std::string& text) const override;
  std::string DecodeToken(int id, bool skip_special, bool first) const override;
  bool IsSpecial(int id) const override;
  bool SkippedAsSpecial(int id) const override;
  std::string ToTokenizerJson() const override { return source_json_; }
  int vocab_size() const override { return static_cast<int>(id_to_piece_.size()); }
  int TokenId(const std::string& token) const override;

 private:
  JsonTokenizer() : normalizer_(), pre_tokenizer_(), decoder_() {}

  Normalizer normalizer_;
  PreTokenizer pre_tokenizer_;
  Decoder decoder_;
  std::unique_ptr<TokenizerModel> model_;
  std::vector<AddedToken> raw_added_;         // normalized = false: matched on the input
  std::vector<AddedToken> normalized_added_;  // normalized = true: content normalized, matched after
  std::unordered_map<int, bool> added_special_;  // added token id -> special
  // Hugging Face's string form of an added token: its content, normalized when the token is
  // matched on normalized text ("café" under StripAccents reads "cafe"); decoding uses it.
  std::unordered_map<int, std::string> added_piece_;
  // The special tokens' contents: decoding with skip_special drops a token whose string is one
  // of them (Hugging Face's rule, by string: a normalized special token that reads differently
  // stays).
  std::unordered_set<std::string> special_contents_;
  std::unordered_map<std::string, int> piece_to_id_;
  std::vector<std::string> id_to_piece_;
  std::string source_json_;
};

}  // namespace strata
