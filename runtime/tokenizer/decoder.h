// File: runtime/tokenizer/decoder.h
// tokenizer.json's `decoder`, applied one token at a time so that streaming and whole decoding
// agree: Replace (String or Regex pattern), ByteFallback (<0xNN> -> the byte), Fuse, Strip
// (content, start, stop), Metaspace, ByteLevel, and Sequence of these. Hugging Face decodes a
// whole list; per token, the only position that matters is the first token (Metaspace drops its
// replacement characters there; Strip after Fuse or ByteLevel strips the start of the joined
// text, which is the start of the first token). Strip's `stop` after a Fuse would need the last
// token and is refused; so is any other decoder type, by name.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "runtime/tokenizer/pcre_regex.h"

namespace strata {

class Decoder {
 public:
  // `j` null: no decoder (pieces are their own text).
  static absl::StatusOr<Decoder> FromJson(const nlohmann::json& j);
  // The defaults when tokenizer.json has no decoder but its pre-tokenizer needs undoing.
  static Decoder ByteLevel();
  static Decoder Metaspace(const std::string& replacement, bool prepends);
  // The text of one token; `first` when it is the first token decoded.
  std::string Decode(const std::string& piece, bool first) const;
  bool empty() const { return steps_.empty(); }

 private:
  struct Step {
    enum class Kind { kReplace, kByteFallback, kFuse, kStrip, kMetaspace, kByteLevel } kind;
    std::string from, to;                    // kReplace (from: a literal); kMetaspace: from
    std::shared_ptr<const PcreRegex> regex;  // kReplace with a Regex pattern
    std::string content;                     // kStrip: the character stripped
    int start = 0, stop = 0;                 // kStrip
    bool prepends = true;                    // kMetaspace: prepend_scheme is not "never"
    bool after_fuse = false;                 // kStrip: the tokens are joined by then
  };
  static absl::Status Add(const nlohmann::json& j, bool* fused, std::vector<Step>* steps);
  std::vector<Step> steps_;
};

}  // namespace strata
