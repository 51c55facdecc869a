// File: runtime/tokenizer/tokenizer_parts.h
// Pieces every tokenizer implementation shares: the characters of UTF-8 text, tokenizer.json's
// BPE merge list, and GPT-2's byte-level alphabet.
#pragma once

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

// GPT-2's byte-level alphabet: the printable character (UTF-8) standing for byte `b`, and the
// byte a character stands for (-1: not in the alphabet).
const std::string& ByteLevelChar(unsigned char b);
int ByteLevelByte(const std::string& ch);

}  // namespace strata
