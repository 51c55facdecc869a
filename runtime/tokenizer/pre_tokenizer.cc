#include "runtime/tokenizer/pre_tokenizer.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "runtime/base/status.h"
#include "runtime/tokenizer/tokenizer_parts.h"

namespace strata {

using json = nlohmann::json;

namespace {

// GPT-2's pre-tokenizer, which the ByteLevel pre-tokenizer uses with use_regex.
constexpr char kGpt2Pattern[] =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

}  // namespace

std::vector<std::pair<size_t, size_t>> SplitRanges(size_t size, const std::vector<std::pair<size_t, size_t>>& matches,
                                                   SplitBehavior behavior, bool invert) {
  // Every byte of the string in one range, flagged whether it is a delimiter (Hugging Face's
  // find_matches), then folded the way the behaviour says (NormalizedString::split).
  struct R {
    size_t b, e;
    bool match;
  };
  std::vector<R> all;
  size_t prev = 0;
  for (const auto& [b, e] : matches) {
    if (b > prev) all.push_back({prev, b, invert});
    all.push_back({b, e, !invert});
    prev = e;
  }
  if (prev < size) all.push_back({prev, size, invert});
  std::vector<R> folded;  // .match now means "remove"
  bool previous_match = false;
  switch (behavior) {
    case SplitBehavior::kRemoved:
      folded = all;
      break;
    case SplitBehavior::kIsolated:
      for (const R& r : all) folded.push_back({r.b, r.e, false});
      break;
    case SplitBehavior::kContiguous:
      for (const R& r : all) {
        if (r.match == previous_match && !folded.empty()) folded.back().e = r.e;
        else folded.push_back({r.b, r.e, false});
        previous_match = r.match;
      }
      break;
    case SplitBehavior::kMergedWithPrevious:
      for (const R& r : all) {
        if (r.match && !previous_match && !folded.empty()) folded.back().e = r.e;
        else folded.push_back({r.b, r.e, false});
        previous_match = r.match;
      }
      break;
    case SplitBehavior::kMergedWithNext:
      for (auto it = all.rbegin(); it != all.rend(); ++it) {
        if (it->match && !previous_match && !folded.empty()) folded.back().b = it->b;
        else folded.push_back({it->b, it->e, false});
        previous_match = it->match;
      }
      std::reverse(folded.begin(), folded.end());
      break;
  }
  std::vector<std::pair<size_t, size_t>> out;
  for (const R& r : folded)
    if (!r.match && r.e > r.b) out.push_back({r.b, r.e});
  return out;
}

absl::StatusOr<PreTokenizer> PreTokenizer::FromJson(const json& j) {
  PreTokenizer p;
  if (j.is_null()) return p;
  RETURN_IF_ERROR(Add(j, &p.steps_));
  return p;
}

absl::Status PreTokenizer::Add(const json& j, std::vector<Step>* steps) {
  if (!j.is_object()) return absl::InvalidArgumentError("tokenizer.json: a pre-tokenizer is not an object");
  const std::string type = j.value("type", "");
  Step s{};
  if (type == "Sequence") {
    for (const json& child : j.at("pretokenizers")) RETURN_IF_ERROR(Add(child, steps));
    return absl::OkStatus();
  } else if (type == "Split") {
    s.kind = Step::Kind::kSplit;
    const json& pat = j.at("pattern");
    if (pat.contains("String")) {
      s.literal = pat["String"].get<std::string>();
    } else if (pat.contains("Regex")) {
      ASSIGN_OR_RETURN(s.regex, PcreRegex::Compile(pat["Regex"].get<std::string>(), "tokenizer.json: Split"));
    } else {
      return absl::InvalidArgumentError("tokenizer.json: Split pre-tokenizer without a String or Regex pattern");
    }
    const std::string b = j.value("behavior", "Isolated");
    if (b == "Removed") s.behavior = SplitBehavior::kRemoved;
    else if (b == "Isolated") s.behavior = SplitBehavior::kIsolated;
    else if (b == "MergedWithPrevious") s.behavior = SplitBehavior::kMergedWithPrevious;
    else if (b == "MergedWithNext") s.behavior = SplitBehavior::kMergedWithNext;
    else if (b == "Contiguous") s.behavior = SplitBehavior::kContiguous;
    else return absl::InvalidArgumentError(absl::StrCat("tokenizer.json: Split behavior '", b, "'"));
    s.invert = j.value("invert", false);
  } else if (type == "Digits") {
    // Rust's char::is_numeric is \p{N}; individual digits are isolated one by one, otherwise
    // runs of digits are kept together (Contiguous).
    s.kind = Step::Kind::kSplit;
    ASSIGN_OR_RETURN(s.regex, PcreRegex::Compile(R"(\p{N})", "Digits"));
    s.behavior = j.value("individual_digits", false) ? SplitBehavior::kIsolated : SplitBehavior::kContiguous;
  } else if (type == "Whitespace") {  // Hugging Face's pattern \w+|[^\w\s]+, the rest removed
    // Hugging Face runs it in Oniguruma, whose Unicode \w is UTS #18's word class (Alphabetic,
    // marks, decimal digits, connector punctuation, joiners); PCRE2's \w lacks the marks (a
    // decomposed "nai\u0308ve" would split at its diaeresis), so the class is spelled out.
    constexpr char kWord[] =
        R"(\p{L}\p{M}\p{Nd}\p{Nl}\p{Pc}\x{200C}\x{200D}\x{24B6}-\x{24E9}\x{1F130}-\x{1F149}\x{1F150}-\x{1F169})"
        R"(\x{1F170}-\x{1F189})";
    s.kind = Step::Kind::kSplit;
    ASSIGN_OR_RETURN(s.regex, PcreRegex::Compile(absl::StrCat("[", kWord, "]+|[^", kWord, "\\s]+"), "Whitespace"));
    s.behavior = SplitBehavior::kRemoved;
    s.invert = true;
  } else if (type == "WhitespaceSplit") {
    s.kind = Step::Kind::kSplit;
    ASSIGN_OR_RETURN(s.regex, PcreRegex::Compile(R"(\s)", "WhitespaceSplit"));
    s.behavior = SplitBehavior::kRemoved;
  } else if (type == "CharDelimiterSplit") {
    s.kind = Step::Kind::kSplit;
    s.literal = j.at("delimiter").get<std::string>();
    s.behavior = SplitBehavior::kRemoved;
  } else if (type == "Metaspace") {
    s.kind = Step::Kind::kMetaspace;
    s.literal = j.value("replacement", "\xE2\x96\x81");
    // Files before prepend_scheme existed say add_prefix_space (true: "always").
    const std::string scheme = j.value("prepend_scheme", j.value("add_prefix_space", true) ? "always" : "never");
    if (scheme == "always") s.prepend = Step::Prepend::kAlways;
    else if (scheme == "first") s.prepend = Step::Prepend::kFirst;
    else if (scheme == "never") s.prepend = Step::Prepend::kNever;
    else return absl::InvalidArgumentError(absl::StrCat("tokenizer.json: Metaspace prepend_scheme '", scheme, "'"));
    s.split = j.value("split", true);  // Hugging Face's default
  } else if (type == "ByteLevel") {
    s.kind = Step::Kind::kByteLevel;
    s.add_prefix_space = j.value("add_prefix_space", true);
    if (j.value("use_regex", true)) {
      ASSIGN_OR_RETURN(s.regex, PcreRegex::Compile(kGpt2Pattern, "ByteLevel"));
    }
  } else {
    return absl::UnimplementedError(absl::StrCat("tokenizer.json: pre-tokenizer '", type, "' is not supported"));
  }
  steps->push_back(std::move(s));
  return absl::OkStatus();
}

void PreTokenizer::Apply(const Step& st, const Piece& in, std::vector<Piece>* out) {
  // A piece [b, e) of `text` whose first `origin` bytes are aligned to the input's first character.
  auto emit = [&](const std::string& text, size_t origin, const std::vector<std::pair<size_t, size_t>>& ranges) {
    for (const auto& [b, e] : ranges) out->push_back({text.substr(b, e - b), b < origin ? std::min(e, origin) - b : 0});
  };
  switch (st.kind) {
    case Step::Kind::kSplit: {
      const auto hits = st.regex ? st.regex->FindAll(in.text) : FindLiteral(in.text, st.literal);
      emit(in.text, in.origin, SplitRanges(in.text.size(), hits, st.behavior, st.invert));
      return;
    }
    case Step::Kind::kMetaspace: {
      // Hugging Face's metaspace.rs: spaces become the replacement; it is prepended unless the
      // piece already starts with it ("first": only to a piece aligned to the input's start).
      std::string t;
      size_t origin = 0;
      for (const auto& [b, e] : SplitRanges(in.text.size(), FindLiteral(in.text, " "), SplitBehavior::kIsolated, false)) {
        t += in.text.compare(b, e - b, " ") == 0 ? st.literal : in.text.substr(b, e - b);
        if (b < in.origin) origin = t.size();  // spans are single spaces or space-free runs
      }
      const bool starts = t.compare(0, st.literal.size(), st.literal) == 0;
      if (!starts && (st.prepend == Step::Prepend::kAlways || (st.prepend == Step::Prepend::kFirst && in.origin > 0))) {
        t = st.literal + t;
        if (origin > 0) origin += st.literal.size();  // prepended text aligns with the first character
      }
      if (st.split) emit(t, origin, SplitRanges(t.size(), FindLiteral(t, st.literal), SplitBehavior::kMergedWithNext, false));
      else out->push_back({t, origin});
      return;
    }
    case Step::Kind::kByteLevel: {
      std::string t = in.text;
      size_t origin = in.origin;
      if (st.add_prefix_space && t.compare(0, 1, " ") != 0) {
        t = " " + t;
        if (origin > 0) ++origin;
      }
      std::vector<std::pair<size_t, size_t>> ranges = {{0, t.size()}};
      if (st.regex) ranges = SplitRanges(t.size(), st.regex->FindAll(t), SplitBehavior::kIsolated, false);
      for (const auto& [b, e] : ranges) {
        std::string mapped;
        size_t mapped_origin = 0;
        for (size_t i = b; i < e; ++i) {
          mapped += ByteLevelChar(static_cast<unsigned char>(t[i]));
          if (i < origin) mapped_origin = mapped.size();
        }
        out->push_back({mapped, mapped_origin});
      }
      return;
    }
  }
}

std::vector<std::string> PreTokenizer::Split(const std::string& piece, size_t origin_bytes) const {
  std::vector<Piece> pieces = {{piece, origin_bytes}};
  for (const Step& st : steps_) {
    std::vector<Piece> next;
    for (const Piece& p : pieces) Apply(st, p, &next);
    pieces = std::move(next);
  }
  std::vector<std::string> out;
  for (Piece& p : pieces)
    if (!p.text.empty()) out.push_back(std::move(p.text));
  return out;
}

bool PreTokenizer::has_byte_level() const {
  for (const Step& s : steps_)
    if (s.kind == Step::Kind::kByteLevel) return true;
  return false;
}

const std::string* PreTokenizer::metaspace_replacement() const {
  for (const Step& s : steps_)
    if (s.kind == Step::Kind::kMetaspace) return &s.literal;
  return nullptr;
}

bool PreTokenizer::metaspace_prepends() const {
  for (const Step& s : steps_)
    if (s.kind == Step::Kind::kMetaspace) return s.prepend != Step::Prepend::kNever;
  return false;
}

}  // namespace strata
