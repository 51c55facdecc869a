#include <algorithm>
#include <numeric>

#include "runtime/grammar/grammar_matcher.h"
#include "runtime/tokenizer/tokenizer.h"

namespace strata::grammar {

std::shared_ptr<const TokenVocabulary> TokenVocabulary::FromTokenizer(const Tokenizer& t, int model_vocab,
                                                                      std::vector<int> eos_ids) {
  std::vector<std::string> bytes(model_vocab), first(model_vocab);
  bool first_differs = false;
  for (int id = 0; id < model_vocab && id < t.vocab_size(); ++id) {
    if (t.IsSpecial(id)) continue;
    bytes[id] = t.DecodeToken(id, /*skip_special=*/false, /*first=*/false);
    first[id] = t.DecodeToken(id, /*skip_special=*/false, /*first=*/true);
    first_differs |= first[id] != bytes[id];
  }
  if (!first_differs) first.clear();
  return std::make_shared<TokenVocabulary>(std::move(bytes), std::move(eos_ids), std::move(first));
}

TokenVocabulary::TokenVocabulary(std::vector<std::string> bytes, std::vector<int> eos_ids,
                                 std::vector<std::string> first_bytes)
    : bytes_(std::move(bytes)), first_bytes_(std::move(first_bytes)), eos_ids_(std::move(eos_ids)) {
  for (int id : eos_ids_) {  // an end-of-sequence id is never text
    if (id >= 0 && id < size()) bytes_[id].clear();
    if (id >= 0 && id < static_cast<int>(first_bytes_.size())) first_bytes_[id].clear();
  }
  for (int id = 0; id < size(); ++id)
    if (!bytes_[id].empty()) sorted_.push_back(id);
  std::sort(sorted_.begin(), sorted_.end(), [&](int a, int b) { return bytes_[a] < bytes_[b]; });
  // The trie in preorder: a token opens nodes for the bytes past the prefix it shares with the
  // token before it; nodes deeper than that prefix close first.
  std::vector<int> open;  // trie node per depth - 1 along the current path
  const std::string* prev = nullptr;
  for (size_t i = 0; i < sorted_.size(); ++i) {
    const std::string& b = bytes_[sorted_[i]];
    size_t lcp = 0;
    while (prev && lcp < prev->size() && lcp < b.size() && (*prev)[lcp] == b[lcp]) ++lcp;
    while (open.size() > lcp) {
      trie_[open.back()].skip = static_cast<int32_t>(trie_.size());
      trie_[open.back()].last = static_cast<int32_t>(i);
      open.pop_back();
    }
    for (size_t d = lcp; d < b.size(); ++d) {
      open.push_back(static_cast<int>(trie_.size()));
      trie_.push_back({static_cast<uint8_t>(b[d]), static_cast<int32_t>(d + 1), 0, 0, static_cast<int32_t>(i), 0});
    }
    ++trie_[open.back()].ends;  // a token with the same bytes as the one before shares its node
    prev = &b;
    max_len_ = std::max(max_len_, static_cast<int>(b.size()));
  }
  for (int k : open) {
    trie_[k].skip = static_cast<int32_t>(trie_.size());
    trie_[k].last = static_cast<int32_t>(sorted_.size());
  }
}

}  // namespace strata::grammar
