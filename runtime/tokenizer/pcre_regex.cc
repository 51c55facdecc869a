#include "runtime/tokenizer/pcre_regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "absl/strings/str_cat.h"

namespace strata {

absl::StatusOr<std::shared_ptr<const PcreRegex>> PcreRegex::Compile(const std::string& pattern, const std::string& what) {
  int err = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), PCRE2_UTF | PCRE2_UCP,
                                   &err, &offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof(msg));
    return absl::InvalidArgumentError(
        absl::StrCat(what, " pattern '", pattern, "': ", reinterpret_cast<char*>(msg), " at offset ", offset));
  }
  std::shared_ptr<PcreRegex> r(new PcreRegex());
  r->code_ = code;
  return std::shared_ptr<const PcreRegex>(std::move(r));
}

PcreRegex::~PcreRegex() {
  if (code_) pcre2_code_free(static_cast<pcre2_code*>(code_));
}

std::vector<std::pair<size_t, size_t>> PcreRegex::FindAll(const std::string& s) const {
  std::vector<std::pair<size_t, size_t>> out;
  auto* code = static_cast<pcre2_code*>(code_);
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(code, nullptr);
  size_t start = 0;
  while (start <= s.size()) {
    const int rc = pcre2_match(code, reinterpret_cast<PCRE2_SPTR>(s.data()), s.size(), start, 0, md, nullptr);
    if (rc < 0) break;  // no further match, or invalid UTF-8: the rest is not a match
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    if (ov[1] == ov[0]) {  // an empty match: step one character so the loop ends
      size_t next = ov[0] + 1;
      while (next < s.size() && (static_cast<unsigned char>(s[next]) & 0xC0) == 0x80) ++next;
      start = next;
      continue;
    }
    out.push_back({ov[0], ov[1]});
    start = ov[1];
  }
  pcre2_match_data_free(md);
  return out;
}

std::vector<std::pair<size_t, size_t>> FindLiteral(const std::string& s, const std::string& literal) {
  std::vector<std::pair<size_t, size_t>> out;
  if (literal.empty()) return out;
  for (size_t at = s.find(literal); at != std::string::npos; at = s.find(literal, at + literal.size()))
    out.push_back({at, at + literal.size()});
  return out;
}

}  // namespace strata
