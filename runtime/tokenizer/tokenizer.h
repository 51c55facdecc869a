// File: runtime/tokenizer/tokenizer.h
// The tokenizer interface, and byte-level BPE as GPT-2, GPT-NeoX and Llama 3 use it: text ->
// added/special tokens split out
// verbatim -> pre-tokenizer regex (PCRE2, Unicode classes) -> bytes mapped to printable
// characters -> merges by rank. Loaded from Hugging Face `tokenizer.json` or from
// `vocab.json` + `merges.txt`.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"

namespace strata {

// A model's tokenizer. Implementations: byte-level BPE (this file's ByteLevelBpeTokenizer:
// GPT-2, GPT-NeoX, Llama 3 tokenizer.json) and SentencePiece (sentencepiece_tokenizer.h: Llama 2,
// TinyLlama, Mistral tokenizer.model).
class Tokenizer {
 public:
  // From a model directory: tokenizer.json, else SentencePiece's tokenizer.model, else
  // vocab.json + merges.txt (or GPT-2's encoder.json + vocab.bpe). tokenizer_config.json's
  // add_bos_token is honoured.
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
  // A special token (skipped when decoding with skip_special).
  virtual bool IsSpecial(int id) const = 0;
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

 private:
  int bos_to_add_ = -1;
};

class ByteLevelBpeTokenizer final : public Tokenizer {
 public:
  static absl::StatusOr<std::unique_ptr<ByteLevelBpeTokenizer>> FromTokenizerJson(const std::string& json_text);
  ~ByteLevelBpeTokenizer() override;
  std::vector<int> Encode(const std::string& text) const override;
  std::string DecodeToken(int id, bool skip_special, bool first) const override;
  bool IsSpecial(int id) const override {
    auto it = added_special_.find(id);
    return it != added_special_.end() && it->second;
  }
  std::string ToTokenizerJson() const override { return source_json_; }
  int vocab_size() const override { return static_cast<int>(id_to_token_.size()); }
  int TokenId(const std::string& token) const override;

 private:
  ByteLevelBpeTokenizer() = default;
  absl::Status Init(const std::string& pattern);
  void EncodeWord(const std::string& piece, std::vector<int>* out) const;

  std::unordered_map<std::string, int> token_to_id_;
  std::vector<std::string> id_to_token_;  // byte-level strings
  std::map<std::pair<std::string, std::string>, int> merge_rank_;
  std::vector<std::pair<std::string, int>> added_;  // (content, id), longest first, for Encode
  std::unordered_map<int, bool> added_special_;     // added token id -> special, for Decode
  std::string byte_to_char_[256];
  std::unordered_map<std::string, uint8_t> char_to_byte_;
  struct Regex;
  std::unique_ptr<Regex> regex_;
  std::string source_json_;  // the tokenizer.json this was built from
  mutable std::unordered_map<std::string, std::vector<int>> cache_;
  mutable std::unique_ptr<std::mutex> cache_mu_;
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
