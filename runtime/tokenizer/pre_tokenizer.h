// File: runtime/tokenizer/pre_tokenizer.h
// tokenizer.json's `pre_tokenizer`, as Hugging Face tokenizers applies it to each normalized
// piece of text: Metaspace (prepend_scheme always/first/never, split), Split (String or Regex
// pattern, the five behaviours, invert), Digits, ByteLevel (add_prefix_space, use_regex, and the
// byte -> printable character mapping), Whitespace, WhitespaceSplit, CharDelimiterSplit, and
// Sequence of these, in order. Any other type is refused at load, by name.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "runtime/tokenizer/pcre_regex.h"

namespace strata {

// How Split keeps the delimiters it finds (Hugging Face's SplitDelimiterBehavior).
enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

// The pieces of a string of length `size` with delimiter matches `matches` (sorted, disjoint),
// as [begin, end) ranges; empty pieces are dropped. `invert`: the matches are the content.
std::vector<std::pair<size_t, size_t>> SplitRanges(size_t size, const std::vector<std::pair<size_t, size_t>>& matches,
                                                   SplitBehavior behavior, bool invert);

class PreTokenizer {
 public:
  // `j` null: no pre-tokenizer (the whole piece is one word).
  static absl::StatusOr<PreTokenizer> FromJson(const nlohmann::json& j);
  // The words of one normalized piece. `origin_bytes`: how many of its leading bytes Hugging
  // Face aligns to the input's first character (0: none; "½" under NFKC is the three characters
  // "1⁄2", all at offset 0): Metaspace's prepend_scheme "first" prepends to every piece that
  // starts there.
  std::vector<std::string> Split(const std::string& piece, size_t origin_bytes) const;
  // What the decoder does when tokenizer.json has none: undo ByteLevel / Metaspace.
  bool has_byte_level() const;
  const std::string* metaspace_replacement() const;  // null: no Metaspace step
  bool metaspace_prepends() const;

 private:
  struct Piece {
    std::string text;
    size_t origin = 0;  // leading bytes aligned to the input's first character
  };
  struct Step {
    enum class Kind { kSplit, kMetaspace, kByteLevel } kind;
    std::shared_ptr<const PcreRegex> regex;  // kSplit with a regex; kByteLevel with use_regex
    std::string literal;                     // kSplit with a String pattern; kMetaspace: replacement
    SplitBehavior behavior = SplitBehavior::kIsolated;
    bool invert = false;
    enum class Prepend { kNever, kFirst, kAlways } prepend = Prepend::kAlways;  // kMetaspace
    bool split = false;                                                         // kMetaspace
    bool add_prefix_space = false;                                              // kByteLevel
  };
  static absl::Status Add(const nlohmann::json& j, std::vector<Step>* steps);
  static void Apply(const Step& step, const Piece& in, std::vector<Piece>* out);
  std::vector<Step> steps_;
};

}  // namespace strata
