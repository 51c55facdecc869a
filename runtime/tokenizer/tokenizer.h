// File: runtime/tokenizer/tokenizer.h
// Byte-level BPE, as GPT-2, GPT-NeoX and Llama 3 use it: text -> added/special tokens split out
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

class Tokenizer {
 public:
  // From a directory: tokenizer.json, else vocab.json + merges.txt (or GPT-2's encoder.json +
  // vocab.bpe).
  static absl::StatusOr<std::unique_ptr<Tokenizer>> Load(const std::string& dir);
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromTokenizerJson(const std::string& json_text);
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromVocabAndMerges(const std::string& vocab_json,
                                                                       const std::string& merges_txt);
  ~Tokenizer();

  std::vector<int> Encode(const std::string& text) const;
  // Bytes of the tokens (added tokens as their text, special ones skipped if asked); may end
  // inside a UTF-8 character.
  std::string Decode(const std::vector<int>& ids, bool skip_special = false) const;
  // The tokenizer as a Hugging Face tokenizer.json (what make-model --tokenizer writes).
  std::string ToTokenizerJson() const;
  int vocab_size() const { return static_cast<int>(id_to_token_.size()); }
  // The id of a special/added token's text, or -1.
  int TokenId(const std::string& token) const;

 private:
  Tokenizer() = default;
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
  std::string pending_;
};

// The end of `s` that may be the start of an incomplete UTF-8 sequence: its length (0..3).
size_t IncompleteUtf8Tail(const std::string& s);

}  // namespace strata
