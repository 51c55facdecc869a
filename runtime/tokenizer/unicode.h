// File: runtime/tokenizer/unicode.h
// The Unicode operations tokenizer.json needs, all from Debian's utf8proc (no table of our own):
// normalization forms, lowercase, accent stripping, and the whitespace / word-character tests
// that Rust's char::is_whitespace and regex \w make in Hugging Face tokenizers.
#pragma once

#include <cstdint>
#include <string>

namespace strata {

enum class UnicodeForm { kNfc, kNfkc, kNfd, kNfkd };
// `s` in the normalization form; invalid UTF-8 is returned unchanged.
std::string NormalizeUnicode(const std::string& s, UnicodeForm form);
// Each character's lowercase mapping, as Rust's char::to_lowercase (full mapping, no context).
std::string LowercaseUnicode(const std::string& s);
// Drops combining marks (categories Mn, Mc and Me: Unicode's Mark), as Hugging Face's StripAccents
// does (after NFD); a Devanagari vowel sign (Mc) goes too.
std::string StripCombiningMarks(const std::string& s);
// Unicode's White_Space property.
bool IsUnicodeWhitespace(int32_t c);
// Oniguruma's Unicode \w, which Hugging Face's single_word test uses: UTS #18's word class
// (Alphabetic, marks, decimal digits, connector punctuation, join controls); not "½" (No).
bool IsUnicodeWordChar(int32_t c);
// The code point at s[at] and its length in bytes (an invalid byte: -1, length 1).
int32_t DecodeCodepoint(const std::string& s, size_t at, size_t* length);
// The code point before s[end] (a position on a character boundary) and its start.
int32_t CodepointBefore(const std::string& s, size_t end, size_t* start);

}  // namespace strata
