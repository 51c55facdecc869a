// libFuzzer target: the grammar front ends and compiler on hostile text. The first byte picks the
// front end (EBNF, regex, JSON schema), the rest is its input; a grammar that converts is compiled
// against a small fixed vocabulary and walked a few steps, every mask checked against the
// matcher's own byte-by-byte acceptance. Errors are fine; crashes, sanitizer reports, hangs and
// a mask that disagrees with the matcher are not.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "nlohmann/json.hpp"
#include "runtime/grammar/ebnf_parser.h"
#include "runtime/grammar/grammar_matcher.h"
#include "runtime/grammar/json_schema_grammar.h"
#include "runtime/grammar/regex_grammar.h"

namespace {

std::shared_ptr<const strata::grammar::TokenVocabulary> Vocabulary() {
  static const auto v = [] {
    std::vector<std::string> tokens = {""};  // 0: end of sequence
    for (const char* t : {"{", "}", "[", "]", "\"", ":", ",", " ", "\n", "a", "b", "ab", "0", "1", "12", "-", ".",
                          "e", "true", "false", "null", "\"a", "\":", "\",", "},", "\\", "\\n", "u", "é", "\xC3",
                          "\xA9", "x", "yes", "no", "(", ")", "*", "+", "?", "|"})
      tokens.push_back(t);
    return std::make_shared<strata::grammar::TokenVocabulary>(tokens, std::vector<int>{0});
  }();
  return v;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1 || size > 4096) return 0;
  const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  absl::StatusOr<strata::grammar::Grammar> g = absl::InvalidArgumentError("");
  switch (data[0] % 3) {
    case 0: g = strata::grammar::ParseEbnf(text); break;
    case 1: g = strata::grammar::RegexToGrammar(text); break;
    default: {
      const auto schema = nlohmann::ordered_json::parse(text, nullptr, /*allow_exceptions=*/false);
      if (schema.is_discarded()) return 0;
      g = strata::grammar::JsonSchemaToGrammar(schema);
    }
  }
  if (!g.ok()) return 0;
  auto compiled = strata::grammar::CompileGrammar(*g, Vocabulary());
  if (!compiled.ok()) return 0;
  const auto& v = *Vocabulary();
  strata::grammar::GrammarMatcher m(*compiled);
  strata::grammar::TokenMask mask;
  uint64_t pick = size;
  for (int step = 0; step < 8 && !m.IsComplete(); ++step) {
    m.FillNextTokenMask(&mask);
    std::vector<int> allowed;
    for (int id = 1; id < v.size(); ++id) {
      if (strata::grammar::MaskHas(mask, id) != m.AcceptsBytes(v.bytes(id))) std::abort();
      if (strata::grammar::MaskHas(mask, id)) allowed.push_back(id);
    }
    if (strata::grammar::MaskHas(mask, 0) != m.CanTerminate()) std::abort();
    if (allowed.empty()) break;
    pick = pick * 6364136223846793005ull + 1442695040888963407ull;
    if (!m.AcceptToken(allowed[(pick >> 33) % allowed.size()])) std::abort();
  }
  return 0;
}
