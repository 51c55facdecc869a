#include "runtime/tokenizer/tokenizer_parts.h"

#include <algorithm>

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

std::vector<int> EncodeAroundAddedTokens(const std::string& text, const std::vector<std::pair<std::string, int>>& added,
                                         const std::function<void(const std::string&, bool, std::vector<int>*)>& segment) {
  std::vector<int> out;
  size_t at = 0, plain = 0;
  bool first = true;
  auto flush = [&](size_t end) {
    if (end <= plain) return;
    segment(text.substr(plain, end - plain), first, &out);
    first = false;
  };
  while (at < text.size()) {
    const auto hit = std::find_if(added.begin(), added.end(),
                                  [&](const auto& a) { return text.compare(at, a.first.size(), a.first) == 0; });
    if (hit == added.end()) {
      ++at;
      continue;
    }
    flush(at);
    out.push_back(hit->second);
    at += hit->first.size();
    plain = at;
  }
  flush(text.size());
  return out;
}

}  // namespace strata
