#include "runtime/tokenizer/bpe_model.h"

#include <climits>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <queue>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "runtime/base/status.h"
#include "runtime/tokenizer/tokenizer_parts.h"

namespace strata {

using json = nlohmann::json;

bool TokenizerModel::AppendBytePieces(const std::string& s, std::vector<int>* out) const {
  std::vector<int> ids;
  for (unsigned char c : s) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", c);
    auto it = vocab_.find(name);
    if (it == vocab_.end()) return false;
    ids.push_back(it->second);
  }
  out->insert(out->end(), ids.begin(), ids.end());
  return true;
}

absl::StatusOr<std::unique_ptr<BpeModel>> BpeModel::FromJson(const json& m) {
  std::unique_ptr<BpeModel> t(new BpeModel());
  for (const auto& [piece, id] : m.at("vocab").items()) t->vocab_[piece] = id.get<int>();
  ASSIGN_OR_RETURN(t->merge_rank_, ParseMerges(m.at("merges")));
  t->byte_fallback_ = m.value("byte_fallback", false);
  t->fuse_unk_ = m.value("fuse_unk", false);
  t->ignore_merges_ = m.value("ignore_merges", false);
  const json& unk = m.value("unk_token", json());
  if (unk.is_string()) {
    auto it = t->vocab_.find(unk.get<std::string>());
    if (it == t->vocab_.end())
      return absl::InvalidArgumentError(absl::StrCat("tokenizer.json: unk_token '", unk.get<std::string>(), "' is not in the vocabulary"));
    t->unk_id_ = it->second;
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    const json& v = m.value(key, json());
    if (v.is_string() && !v.get<std::string>().empty())
      return absl::UnimplementedError(absl::StrCat("tokenizer.json: BPE ", key, " is not supported"));
  }
  const json& dropout = m.value("dropout", json());
  if (dropout.is_number() && dropout.get<double>() > 0)
    return absl::UnimplementedError("tokenizer.json: BPE dropout is not supported (it makes encoding random)");
  return t;
}

void BpeModel::Encode(const std::string& word, std::vector<int>* out) const {
  constexpr size_t kCachedWordBytes = 64;  // long words (whole Metaspace segments) are not kept
  if (word.size() <= kCachedWordBytes) {
    std::lock_guard<std::mutex> lock(cache_mu_);
    if (auto it = cache_.find(word); it != cache_.end()) {
      out->insert(out->end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int> ids = EncodeUncached(word);
  out->insert(out->end(), ids.begin(), ids.end());
  if (word.size() <= kCachedWordBytes) {
    std::lock_guard<std::mutex> lock(cache_mu_);
    if (cache_.size() > 100000) cache_.clear();
    cache_[word] = std::move(ids);
  }
}

std::vector<int> BpeModel::EncodeUncached(const std::string& word) const {
  std::vector<int> ids;
  if (ignore_merges_) {
    if (auto it = vocab_.find(word); it != vocab_.end()) return {it->second};
  }
  // Symbols in a linked list; `id` < 0 for byte-fallback and unk symbols, which never merge.
  struct Symbol {
    std::string text;
    int id;
    int prev, next;
  };
  std::vector<Symbol> sym;
  for (const std::string& ch : Utf8Chars(word)) {
    if (auto it = vocab_.find(ch); it != vocab_.end()) {
      sym.push_back({ch, it->second, 0, 0});
      continue;
    }
    std::vector<int> bytes;
    if (byte_fallback_ && AppendBytePieces(ch, &bytes)) {
      for (int b : bytes) sym.push_back({"", -1 - b, 0, 0});  // a byte piece: -1 - its id
      continue;
    }
    if (unk_id_ < 0) continue;  // no unk token: Hugging Face drops the character
    if (fuse_unk_ && !sym.empty() && sym.back().id == -1 - unk_id_ && sym.back().text.empty()) continue;
    sym.push_back({"", -1 - unk_id_, 0, 0});
  }
  const int n = static_cast<int>(sym.size());
  for (int i = 0; i < n; ++i) {
    sym[i].prev = i - 1;
    sym[i].next = i + 1 < n ? i + 1 : -1;
  }
  // (rank, left position) pairs, the lowest first; stale entries are skipped when popped.
  using Entry = std::pair<int, int>;
  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> queue;
  auto rank_of = [&](int left) -> int {
    const int right = sym[left].next;
    if (right < 0 || sym[left].id < 0 || sym[right].id < 0) return -1;
    auto it = merge_rank_.find({sym[left].text, sym[right].text});
    return it == merge_rank_.end() ? -1 : it->second;
  };
  for (int i = 0; i < n; ++i)
    if (int r = rank_of(i); r >= 0) queue.push({r, i});
  while (!queue.empty()) {
    const auto [rank, left] = queue.top();
    queue.pop();
    if (sym[left].id == INT32_MIN || rank_of(left) != rank) continue;  // merged away or changed
    const int right = sym[left].next;
    const std::string merged = sym[left].text + sym[right].text;
    auto it = vocab_.find(merged);
    if (it == vocab_.end()) continue;  // a merge whose result is not a piece
    sym[left].text = merged;
    sym[left].id = it->second;
    sym[left].next = sym[right].next;
    if (sym[right].next >= 0) sym[sym[right].next].prev = left;
    sym[right].id = INT32_MIN;
    if (sym[left].prev >= 0)
      if (int r = rank_of(sym[left].prev); r >= 0) queue.push({r, sym[left].prev});
    if (int r = rank_of(left); r >= 0) queue.push({r, left});
  }
  for (int i = n > 0 ? 0 : -1; i >= 0; i = sym[i].next) ids.push_back(sym[i].id >= 0 ? sym[i].id : -1 - sym[i].id);
  return ids;
}

}  // namespace strata
