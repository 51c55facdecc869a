// File: runtime/tokenizer/pcre_regex.h
// A compiled PCRE2 pattern (UTF-8, Unicode classes) for the regex parts of tokenizer.json: Split
// and Replace patterns, the ByteLevel pre-tokenizer's GPT-2 pattern, Digits.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace strata {

class PcreRegex {
 public:
  // `what` names the pattern in the error message.
  static absl::StatusOr<std::shared_ptr<const PcreRegex>> Compile(const std::string& pattern, const std::string& what);
  ~PcreRegex();
  // The non-empty matches in `s`, left to right, as [begin, end) byte ranges.
  std::vector<std::pair<size_t, size_t>> FindAll(const std::string& s) const;

 private:
  PcreRegex() = default;
  void* code_ = nullptr;  // pcre2_code*, kept out of this header so pcre2.h stays in one file
};

// The non-overlapping occurrences of `literal` in `s`, left to right ([begin, end) byte ranges).
std::vector<std::pair<size_t, size_t>> FindLiteral(const std::string& s, const std::string& literal);

}  // namespace strata
