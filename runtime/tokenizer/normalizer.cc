#include "runtime/tokenizer/normalizer.h"

#include "absl/strings/str_cat.h"
#include "runtime/base/status.h"
#include "runtime/tokenizer/tokenizer_parts.h"
#include "runtime/tokenizer/unicode.h"

namespace strata {

using json = nlohmann::json;

absl::StatusOr<Normalizer> Normalizer::FromJson(const json& j) {
  Normalizer n;
  if (j.is_null()) return n;
  RETURN_IF_ERROR(Add(j, &n.steps_));
  return n;
}

absl::Status Normalizer::Add(const json& j, std::vector<Step>* steps) {
  if (!j.is_object()) return absl::InvalidArgumentError("tokenizer.json: a normalizer is not an object");
  const std::string type = j.value("type", "");
  Step s{};
  if (type == "Sequence") {
    for (const json& child : j.at("normalizers")) RETURN_IF_ERROR(Add(child, steps));
    return absl::OkStatus();
  } else if (type == "NFC" || type == "NFKC" || type == "NFD" || type == "NFKD") {
    s.kind = Step::Kind::kUnicode;
    s.form = static_cast<int>(type == "NFC"    ? UnicodeForm::kNfc
                              : type == "NFKC" ? UnicodeForm::kNfkc
                              : type == "NFD"  ? UnicodeForm::kNfd
                                               : UnicodeForm::kNfkd);
  } else if (type == "Lowercase") {
    s.kind = Step::Kind::kLowercase;
  } else if (type == "StripAccents") {
    s.kind = Step::Kind::kStripAccents;
  } else if (type == "Prepend") {
    s.kind = Step::Kind::kPrepend;
    s.text = j.at("prepend").get<std::string>();
  } else if (type == "Replace") {
    s.kind = Step::Kind::kReplace;
    s.content = j.at("content").get<std::string>();
    const json& pat = j.at("pattern");
    if (pat.contains("String")) {
      s.text = pat["String"].get<std::string>();
    } else if (pat.contains("Regex")) {
      ASSIGN_OR_RETURN(s.regex, PcreRegex::Compile(pat["Regex"].get<std::string>(), "tokenizer.json: Replace normalizer"));
    } else {
      return absl::InvalidArgumentError("tokenizer.json: Replace normalizer without a String or Regex pattern");
    }
  } else if (type == "Strip") {
    s.kind = Step::Kind::kStrip;
    s.left = j.value("strip_left", j.value("left", false));
    s.right = j.value("strip_right", j.value("right", false));
  } else {
    return absl::UnimplementedError(absl::StrCat("tokenizer.json: normalizer '", type, "' is not supported"));
  }
  steps->push_back(std::move(s));
  return absl::OkStatus();
}

std::string Normalizer::Apply(const std::string& in, bool* starts_at_origin) const {
  std::string s = in;
  bool origin = true;  // the first character is aligned to the input's first (see the header)
  for (const Step& st : steps_) {
    switch (st.kind) {
      case Step::Kind::kUnicode: s = NormalizeUnicode(s, static_cast<UnicodeForm>(st.form)); break;
      case Step::Kind::kLowercase: s = LowercaseUnicode(s); break;
      case Step::Kind::kStripAccents: {
        std::string out = StripCombiningMarks(s);
        size_t len = 0;
        if (!s.empty() && (out.empty() || DecodeCodepoint(out, 0, &len) != DecodeCodepoint(s, 0, &len))) origin = false;
        s = std::move(out);
        break;
      }
      case Step::Kind::kPrepend:
        if (!s.empty()) s = st.text + s;  // as Hugging Face: nothing is prepended to empty text
        break;
      case Step::Kind::kReplace: {
        const auto hits = st.regex ? st.regex->FindAll(s) : FindLiteral(s, st.text);
        std::string out;
        size_t at = 0;
        for (const auto& [b, e] : hits) {
          out.append(s, at, b - at);
          out += st.content;
          at = e;
          // Hugging Face aligns the replacement to the last character replaced, so a match at the
          // start longer than one character (or replaced by nothing) moves the start.
          if (b == 0 && (st.content.empty() || Utf8Chars(s.substr(b, e - b)).size() > 1)) origin = false;
        }
        out.append(s, at, std::string::npos);
        s = std::move(out);
        break;
      }
      case Step::Kind::kStrip: {
        size_t b = 0, e = s.size(), len = 0, start = 0;
        while (st.left && b < e && IsUnicodeWhitespace(DecodeCodepoint(s, b, &len))) b += len;
        while (st.right && e > b && IsUnicodeWhitespace(CodepointBefore(s, e, &start))) e = start;
        if (b > 0) origin = false;
        s = s.substr(b, e - b);
        break;
      }
    }
  }
  if (starts_at_origin) *starts_at_origin = origin;
  return s;
}

}  // namespace strata
