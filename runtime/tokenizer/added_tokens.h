// File: runtime/tokenizer/added_tokens.h
// tokenizer.json's added_tokens, split out of the text before the model as Hugging Face's
// added_vocabulary.rs does: leftmost-longest match of their content; `lstrip` / `rstrip` take the
// whitespace on that side of the token into the match; `single_word` matches only where no word
// character touches the token; `normalized` false (the usual case for special tokens) matches on
// the raw input, true matches on the normalized text (the token's content normalized too).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"

namespace strata {

struct AddedToken {
  std::string content;
  int id = -1;
  bool special = false, lstrip = false, rstrip = false, normalized = false, single_word = false;
  static AddedToken FromJson(const nlohmann::json& j);
};

// One part of a split text: an added token's id, or plain text starting at byte `offset`.
struct TextPart {
  int id = -1;  // -1: plain text
  std::string text;
  size_t offset = 0;
};

// The parts of `text` around the occurrences of `tokens` (their content as matched).
std::vector<TextPart> SplitAddedTokens(const std::string& text, const std::vector<AddedToken>& tokens);

}  // namespace strata
