// File: runtime/tokenizer/tokenizer.h
// The tokenizer interface, its loaders (a model directory's tokenizer.json, SentencePiece
// tokenizer.model, or GPT-2's vocab.json + merges.txt) and streaming detokenization.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace strata {

// A model's tokenizer. Implementations: JsonTokenizer (json_tokenizer.h: any tokenizer.json with a
// BPE or Unigram model: GPT-2, GPT-NeoX, Llama 2/3, TinyLlama, Mistral) and SentencePiece
// (sentencepiece_tokenizer.h: a tokenizer.model read directly).
class Tokenizer {
 public:
  // From a model directory: tokenizer.json, else SentencePiece's tokenizer.model, else
  // vocab.json + merges.txt (or GPT-2's encoder.json + vocab.bpe). tokenizer_config.json's
  // add_bos_token / add_eos_token are honoured, else tokenizer.json's post-processor template.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> Load(const std::string& dir);
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromTokenizerJson(const std::string& json_text);
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromVocabAndMerges(const std::string& vocab_json,
                                                                       const std::string& merges_txt);
  virtual ~Tokenizer();

  // The ids of `text`: added and special tokens found verbatim, the rest through the model. No
  // BOS (see bos_to_add).
  virtual std::vector<int> Encode(const std::string& text) const = 0;
  // The bytes of one token where it stands; `first` when it is the first token decoded (skipped
  // special tokens do not count): SentencePiece drops its dummy-prefix space there, as Hugging
  // Face's Strip decoder does. May end inside a UTF-8 character.
  virtual std::string DecodeToken(int id, bool skip_special, bool first) const = 0;
  // A special token.
  virtual bool IsSpecial(int id) const = 0;
  // Whether decoding with skip_special drops this token: a special token, except where a
  // tokenizer's own rule says otherwise (tokenizer.json: by the token's string, as Hugging Face).
  virtual bool SkippedAsSpecial(int id) const { return IsSpecial(id); }
  // The bytes of the tokens (added tokens as their text, special ones skipped if asked).
  std::string Decode(const std::vector<int>& ids, bool skip_special = false) const;
  // The tokenizer as a Hugging Face tokenizer.json ("" when it has none: a SentencePiece model).
  virtual std::string ToTokenizerJson() const = 0;
  virtual int vocab_size() const = 0;
  // The id of a special/added token's text, or -1.
  virtual int TokenId(const std::string& token) const = 0;
  // The BOS id a completion prompt starts with (-1: none), from add_bos_token.
  int bos_to_add() const { return bos_to_add_; }
  void set_bos_to_add(int id) { bos_to_add_ = id; }
  // The EOS id a completion prompt ends with (-1: none), from add_eos_token or the template.
  int eos_to_add() const { return eos_to_add_; }
  void set_eos_to_add(int id) { eos_to_add_ = id; }
  // `ids` with bos_to_add before and eos_to_add after (those that are set): Hugging Face's
  // encode(text, add_special_tokens=True).
  std::vector<int> WithSpecialTokens(std::vector<int> ids) const;

 private:
  int bos_to_add_ = -1;
  int eos_to_add_ = -1;
};

// Streaming detokenization: feed ids one at a time, get the text that is complete so far; never
// splits a UTF-8 character (held back until its last byte arrives).
class IncrementalDecoder {
 public:
  explicit IncrementalDecoder(const Tokenizer* t, bool skip_special = true) : t_(t), skip_special_(skip_special) {}
  std::string Add(int id);
  std::string Flush();  // whatever is left (invalid trailing bytes become U+FFFD)

 private:
  const Tokenizer* t_;
  bool skip_special_;
  bool first_ = true;
  std::string pending_;
};

// The end of `s` that may be the start of an incomplete UTF-8 sequence: its length (0..3).
size_t IncompleteUtf8Tail(const std::string& s);

}  // namespace strata
