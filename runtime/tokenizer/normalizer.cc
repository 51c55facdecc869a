#include "runtime/tokenizer/normalizer.h"

#include <algorithm>

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

std::string Normalizer::Apply(const std::string& in, size_t* origin_bytes) const {
  std::string s = in;
  // Leading bytes of `s` aligned to the input's first character (see the header).
  size_t origin = 0;
  if (!s.empty()) DecodeCodepoint(s, 0, &origin);
  for (const Step& st : steps_) {
    switch (st.kind) {
      case Step::Kind::kUnicode:
        origin = NormalizeUnicode(s.substr(0, origin), static_cast<UnicodeForm>(st.form)).size();
        s = NormalizeUnicode(s, static_cast<UnicodeForm>(st.form));
        origin = std::min(origin, s.size());
        break;
      case Step::Kind::kLowercase:
        origin = LowercaseUnicode(s.substr(0, origin)).size();
        s = LowercaseUnicode(s);
        break;
      case Step::Kind::kStripAccents:
        origin = StripCombiningMarks(s.substr(0, origin)).size();
        s = StripCombiningMarks(s);
        break;
      case Step::Kind::kPrepend:
        if (!s.empty()) {  // as Hugging Face: nothing is prepended to empty text
          s = st.text + s;
          if (origin > 0) origin += st.text.size();  // aligned with the first character
        }
        break;
      case Step::Kind::kReplace: {
        const auto hits = st.regex ? st.regex->FindAll(s) : FindLiteral(s, st.text);
        std::string out;
        size_t at = 0, new_origin = 0;
        for (const auto& [b, e] : hits) {
          if (at < origin) new_origin = out.size() + (std::min(b, origin) - at);
          out.append(s, at, b - at);
          out += st.content;
          // Hugging Face aligns the content to the last character replaced.
          if (e <= origin) new_origin = out.size();
          at = e;
        }
        if (at < origin) new_origin = out.size() + (origin - at);
        out.append(s, at, std::string::npos);
        s = std::move(out);
        origin = new_origin;
        break;
      }
      case Step::Kind::kStrip: {
        size_t b = 0, e = s.size(), len = 0, start = 0;
        while (st.left && b < e && IsUnicodeWhitespace(DecodeCodepoint(s, b, &len))) b += len;
        while (st.right && e > b && IsUnicodeWhitespace(CodepointBefore(s, e, &start))) e = start;
        origin = origin > b ? std::min(origin - b, e - b) : 0;
        s = s.substr(b, e - b);
        break;
      }
    }
  }
  if (origin_bytes) *origin_bytes = origin;
  return s;
}

}  // namespace strata
