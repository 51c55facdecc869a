#include "runtime/tokenizer/tokenizer_parts.h"

#include <algorithm>
#include <cstdint>
#include <unordered_map>

#include "absl/strings/str_cat.h"

namespace strata {

std::vector<std::string> Utf8Chars(const std::string& s) {
  std::vector<std::string> out;
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
    if (i + n > s.size()) n = 1;
    out.push_back(s.substr(i, n));
    i += n;
  }
  return out;
}

absl::StatusOr<std::map<std::pair<std::string, std::string>, int>> ParseMerges(const nlohmann::json& merges) {
  std::map<std::pair<std::string, std::string>, int> rank;
  int next = 0;
  for (const nlohmann::json& mg : merges) {
    std::string a, b;
    if (mg.is_string()) {
      const std::string s = mg.get<std::string>();
      const size_t sp = s.find(' ');
      if (sp == std::string::npos) return absl::InvalidArgumentError(absl::StrCat("tokenizer.json: merge '", s, "'"));
      a = s.substr(0, sp);
      b = s.substr(sp + 1);
    } else {  // newer files: ["a", "b"]
      a = mg.at(0).get<std::string>();
      b = mg.at(1).get<std::string>();
    }
    rank.emplace(std::make_pair(a, b), next++);
  }
  return rank;
}

namespace {

struct ByteLevelTable {
  std::string chars[256];
  std::unordered_map<std::string, int> bytes;
  ByteLevelTable() {
    // Printable Latin-1 bytes stand for themselves; the others map to U+0100 upwards in order.
    int extra = 0;
    for (int b = 0; b < 256; ++b) {
      const bool direct = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      const uint32_t c = direct ? b : 256 + extra++;
      std::string s;
      if (c < 0x80) {
        s += static_cast<char>(c);
      } else {
        s += static_cast<char>(0xC0 | (c >> 6));
        s += static_cast<char>(0x80 | (c & 0x3F));
      }
      chars[b] = s;
      bytes[s] = b;
    }
  }
};

const ByteLevelTable& Table() {
  static const ByteLevelTable t;
  return t;
}

}  // namespace

const std::string& ByteLevelChar(unsigned char b) { return Table().chars[b]; }

int ByteLevelByte(const std::string& ch) {
  auto it = Table().bytes.find(ch);
  return it == Table().bytes.end() ? -1 : it->second;
}

}  // namespace strata
