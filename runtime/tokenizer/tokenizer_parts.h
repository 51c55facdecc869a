// File: runtime/tokenizer/tokenizer_parts.h
// Pieces every tokenizer implementation shares: the characters of UTF-8 text, tokenizer.json's
// BPE merge list, and the split of text around added (special) tokens.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace strata {

// The characters of a UTF-8 string (invalid bytes stand alone).
std::vector<std::string> Utf8Chars(const std::string& s);

// tokenizer.json's model.merges ("a b" strings, or ["a", "b"] pairs in newer files) -> rank.
absl::StatusOr<std::map<std::pair<std::string, std::string>, int>> ParseMerges(const nlohmann::json& merges);

// Encodes `text`: every occurrence of an added token's content (`added`, longest first) becomes
// its id; the text between them goes to `segment(text, first)`, `first` for the first one.
std::vector<int> EncodeAroundAddedTokens(const std::string& text, const std::vector<std::pair<std::string, int>>& added,
                                         const std::function<void(const std::string&, bool, std::vector<int>*)>& segment);

}  // namespace strata
