// File: runtime/tokenizer/bpe_model.h
// tokenizer.json's BPE model as Hugging Face's bpe/model.rs runs it: a word is split into
// characters (a character outside the vocabulary becomes its <0xNN> byte pieces with
// byte_fallback, else the unk token, consecutive ones fused with fuse_unk, else dropped), then
// adjacent pairs merge by rank, the lowest first (leftmost on ties). ignore_merges: a word that is
// itself in the vocabulary is one token (Llama 3). continuing_subword_prefix, end_of_word_suffix
// and dropout are refused.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "runtime/tokenizer/tokenizer_model.h"

namespace strata {

class BpeModel final : public TokenizerModel {
 public:
  static absl::StatusOr<std::unique_ptr<BpeModel>> FromJson(const nlohmann::json& model);
  void Encode(const std::string& word, std::vector<int>* out) const override;

 private:
  BpeModel() = default;
  std::vector<int> EncodeUncached(const std::string& word) const;

  std::map<std::pair<std::string, std::string>, int> merge_rank_;
  bool byte_fallback_ = false, fuse_unk_ = false, ignore_merges_ = false;
  int unk_id_ = -1;
  mutable std::mutex cache_mu_;  // words seen before (byte-level BPE sees the same words often)
  mutable std::unordered_map<std::string, std::vector<int>> cache_;
};

}  // namespace strata
