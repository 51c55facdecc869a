#include "runtime/tokenizer/unicode.h"

#include <utf8proc.h>

#include <cstdlib>

namespace strata {
namespace {

std::string Map(const std::string& s, int options) {
  utf8proc_uint8_t* out = nullptr;
  const utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()),
                                          static_cast<utf8proc_ssize_t>(s.size()), &out,
                                          static_cast<utf8proc_option_t>(options));
  if (n < 0) return s;  // invalid UTF-8: left as it is
  std::string r(reinterpret_cast<char*>(out), static_cast<size_t>(n));
  std::free(out);
  return r;
}

std::string Encode(int32_t c) {
  utf8proc_uint8_t buf[4];
  const utf8proc_ssize_t n = utf8proc_encode_char(c, buf);
  return std::string(reinterpret_cast<char*>(buf), static_cast<size_t>(n));
}

}  // namespace

std::string NormalizeUnicode(const std::string& s, UnicodeForm form) {
  switch (form) {
    case UnicodeForm::kNfc: return Map(s, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    case UnicodeForm::kNfkc: return Map(s, UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT);
    case UnicodeForm::kNfd: return Map(s, UTF8PROC_STABLE | UTF8PROC_DECOMPOSE);
    case UnicodeForm::kNfkd: return Map(s, UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT);
  }
  return s;
}

int32_t DecodeCodepoint(const std::string& s, size_t at, size_t* length) {
  utf8proc_int32_t c = -1;
  const utf8proc_ssize_t n = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(s.data()) + at,
                                              static_cast<utf8proc_ssize_t>(s.size() - at), &c);
  *length = n > 0 ? static_cast<size_t>(n) : 1;
  return n > 0 ? c : -1;
}

int32_t CodepointBefore(const std::string& s, size_t end, size_t* start) {
  size_t b = end;
  while (b > 0 && end - b < 4) {
    --b;
    if ((static_cast<unsigned char>(s[b]) & 0xC0) != 0x80) break;
  }
  *start = b;
  size_t len = 0;
  const int32_t c = DecodeCodepoint(s, b, &len);
  return b + len == end ? c : -1;
}

std::string LowercaseUnicode(const std::string& s) {
  std::string out;
  for (size_t at = 0; at < s.size();) {
    size_t len = 0;
    const int32_t c = DecodeCodepoint(s, at, &len);
    // Rust's char::to_lowercase (Hugging Face's Lowercase) takes the full mapping, which differs
    // from the simple one for U+0130 alone: "İ" becomes "i" and a combining dot above.
    out += c < 0 ? s.substr(at, len) : c == 0x130 ? "i\xCC\x87" : Encode(utf8proc_tolower(c));
    at += len;
  }
  return out;
}

std::string StripCombiningMarks(const std::string& s) {
  std::string out;
  for (size_t at = 0; at < s.size();) {
    size_t len = 0;
    const int32_t c = DecodeCodepoint(s, at, &len);
    const utf8proc_category_t cat = c < 0 ? UTF8PROC_CATEGORY_CN : utf8proc_category(c);
    if (cat != UTF8PROC_CATEGORY_MN && cat != UTF8PROC_CATEGORY_MC && cat != UTF8PROC_CATEGORY_ME) out += s.substr(at, len);
    at += len;
  }
  return out;
}

bool IsUnicodeWhitespace(int32_t c) {
  if (c < 0) return false;
  if ((c >= 0x09 && c <= 0x0D) || c == 0x85) return true;
  const utf8proc_category_t cat = utf8proc_category(c);
  return cat == UTF8PROC_CATEGORY_ZS || cat == UTF8PROC_CATEGORY_ZL || cat == UTF8PROC_CATEGORY_ZP;
}

bool IsUnicodeWordChar(int32_t c) {
  if (c < 0) return false;
  // Join controls and the letter-like symbols that are Other_Alphabetic (circled and squared
  // Latin letters).
  if (c == 0x200C || c == 0x200D || (c >= 0x24B6 && c <= 0x24E9) || (c >= 0x1F130 && c <= 0x1F149) ||
      (c >= 0x1F150 && c <= 0x1F169) || (c >= 0x1F170 && c <= 0x1F189))
    return true;
  switch (utf8proc_category(c)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT: case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_PC:
      return true;
    default:
      return false;
  }
}

}  // namespace strata
