// File: runtime/tokenizer/metaspace_bpe_tokenizer.h
// The tokenizer.json of SentencePiece-derived BPE models as Hugging Face writes them (Llama 2,
// TinyLlama, Mistral): spaces become U+2581 (normalizer Prepend + Replace, or pre-tokenizer
// Metaspace with prepend_scheme "first" or "always"), the BPE model merges by rank over the whole
// segment, characters outside the vocabulary fall back to <0xNN> byte pieces (byte_fallback) or
// the unk token (fused when fuse_unk), and the decoder turns U+2581 back into spaces, bytes into
// bytes and strips the one leading space. Added tokens are split out of the text first.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "runtime/tokenizer/tokenizer.h"

namespace strata {

class MetaspaceBpeTokenizer final : public Tokenizer {
 public:
  // Whether `j` is this kind of tokenizer.json (BPE with byte_fallback or a Metaspace step).
  static bool Recognizes(const nlohmann::json& j);
  static absl::StatusOr<std::unique_ptr<MetaspaceBpeTokenizer>> FromTokenizerJson(const nlohmann::json& j,
                                                                                  const std::string& text);
  std::vector<int> Encode(const std::string& text) const override;
  std::string DecodeToken(int id, bool skip_special, bool first) const override;
  bool IsSpecial(int id) const override {
    auto it = added_special_.find(id);
    return it != added_special_.end() && it->second;
  }
  std::string ToTokenizerJson() const override { return source_json_; }
  int vocab_size() const override { return static_cast<int>(id_to_piece_.size()); }
  int TokenId(const std::string& token) const override;

 private:
  MetaspaceBpeTokenizer() = default;
  void EncodeSegment(const std::string& segment, bool first, std::vector<int>* out) const;

  std::unordered_map<std::string, int> piece_to_id_;
  std::vector<std::string> id_to_piece_;
  std::map<std::pair<std::string, std::string>, int> merge_rank_;
  std::vector<std::pair<std::string, int>> added_;  // (content, id), longest first
  std::unordered_map<int, bool> added_special_;
  std::string replacement_ = "\xE2\x96\x81";  // U+2581
  enum class Prepend { kNever, kFirst, kAlways } prepend_ = Prepend::kAlways;
  bool byte_fallback_ = false, fuse_unk_ = false, strip_leading_space_ = true;
  int unk_id_ = -1;
  int byte_id_[256];
  std::string source_json_;
};

}  // namespace strata
