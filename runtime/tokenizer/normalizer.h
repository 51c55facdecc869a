// File: runtime/tokenizer/normalizer.h
// tokenizer.json's `normalizer`, as Hugging Face tokenizers applies it to each piece of text
// between added tokens: NFC, NFKC, NFD, NFKD, Lowercase, StripAccents (utf8proc), Prepend,
// Replace (String or Regex pattern), Strip, and Sequence of these. Any other type is refused at
// load, by name (Precompiled, BertNormalizer, ByteLevel, ...).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "runtime/tokenizer/pcre_regex.h"

namespace strata {

class Normalizer {
 public:
  // `j` null: no normalizer.
  static absl::StatusOr<Normalizer> FromJson(const nlohmann::json& j);
  // `origin_bytes` (optional): how many leading bytes of the result Hugging Face's offset tracking
  // aligns to the input's first character (a Metaspace pre-tokenizer with prepend_scheme "first"
  // prepends to what starts there): the first character's own normalization ("½" under NFKC:
  // "1⁄2"), text prepended to it, and a Replace's content where the last character it replaces is
  // among them (Replace aligns its content to the last character replaced); stripping the first
  // character (Strip, StripAccents) leaves none.
  std::string Apply(const std::string& s, size_t* origin_bytes = nullptr) const;
  bool empty() const { return steps_.empty(); }

 private:
  struct Step {
    enum class Kind { kUnicode, kLowercase, kStripAccents, kPrepend, kReplace, kStrip } kind;
    int form = 0;              // kUnicode: a UnicodeForm
    std::string text, content;  // kPrepend: text; kReplace: literal pattern (text) -> content
    std::shared_ptr<const PcreRegex> regex;  // kReplace with a Regex pattern
    bool left = false, right = false;        // kStrip
  };
  static absl::Status Add(const nlohmann::json& j, std::vector<Step>* steps);
  std::vector<Step> steps_;
};

}  // namespace strata
