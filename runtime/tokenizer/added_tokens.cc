#include "runtime/tokenizer/added_tokens.h"

#include "runtime/tokenizer/unicode.h"

namespace strata {

AddedToken AddedToken::FromJson(const nlohmann::json& j) {
  AddedToken t;
  t.content = j.at("content").get<std::string>();
  t.id = j.at("id").get<int>();
  t.special = j.value("special", false);
  t.lstrip = j.value("lstrip", false);
  t.rstrip = j.value("rstrip", false);
  t.single_word = j.value("single_word", false);
  t.normalized = j.value("normalized", !t.special);  // Hugging Face's default
  return t;
}

std::vector<TextPart> SplitAddedTokens(const std::string& text, const std::vector<AddedToken>& tokens) {
  std::vector<TextPart> parts;
  size_t plain = 0;  // where the current plain text began
  auto word_before = [&](size_t at) {
    size_t start = 0;
    return at > 0 && IsUnicodeWordChar(CodepointBefore(text, at, &start));
  };
  auto word_at = [&](size_t at) {
    size_t len = 0;
    return at < text.size() && IsUnicodeWordChar(DecodeCodepoint(text, at, &len));
  };
  // As Hugging Face's AddedVocabulary: the leftmost longest occurrences, found without overlap
  // in the text itself (a single_word occurrence that is not a word is skipped whole), then each
  // widened by lstrip (never into the previous part) and rstrip (which may reach into the next
  // occurrence; that one still counts from where it was found).
  for (size_t at = 0; at < text.size();) {
    const AddedToken* hit = nullptr;
    for (const AddedToken& t : tokens) {  // the longest that matches here
      if (t.content.empty() || (hit && t.content.size() <= hit->content.size())) continue;
      if (text.compare(at, t.content.size(), t.content) == 0) hit = &t;
    }
    if (hit == nullptr) {
      ++at;
      continue;
    }
    const size_t end = at + hit->content.size();
    if (hit->single_word && (word_before(at) || word_at(end))) {
      at = end;
      continue;
    }
    size_t start = at, stop = end, len = 0, before = 0;
    while (hit->lstrip && start > plain && IsUnicodeWhitespace(CodepointBefore(text, start, &before))) start = before;
    while (hit->rstrip && stop < text.size() && IsUnicodeWhitespace(DecodeCodepoint(text, stop, &len))) stop += len;
    if (start > plain) parts.push_back({-1, text.substr(plain, start - plain), plain});
    parts.push_back({hit->id, "", start});
    plain = stop;
    at = end;
  }
  if (plain < text.size()) parts.push_back({-1, text.substr(plain), plain});
  return parts;
}

}  // namespace strata
