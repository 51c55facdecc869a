// Runs Strata's tokenizers over a batch of cases for an outside oracle (the Python driver
// hf_tokenizers_oracle_test.py compares the answers with Hugging Face `tokenizers`).
// Usage: tokenize_cases IN.json OUT.json
//   IN:  [{"dir": D, "texts": [T...], "decode": [[id...]...]}...]: D holds tokenizer.json
//        (and perhaps tokenizer_config.json), loaded as `strata` loads a model's tokenizer.
//   OUT: [{"ids": [[...]], "ids_with_special": [[...]], "decoded": [S...], "decoded_skip_special": [S...]}
//         or {"error": E}...]: Encode, WithSpecialTokens(Encode), and Decode of the given ids
//         keeping and skipping special tokens.
#include <cstdio>
#include <fstream>
#include <sstream>

#include "nlohmann/json.hpp"
#include "runtime/tokenizer/tokenizer.h"

int main(int argc, char** argv) {
  using nlohmann::json;
  if (argc != 3) {
    std::fprintf(stderr, "usage: tokenize_cases IN.json OUT.json\n");
    return 2;
  }
  std::ifstream in(argv[1]);
  std::stringstream text;
  text << in.rdbuf();
  const json cases = json::parse(text.str(), nullptr, false);
  if (cases.is_discarded() || !cases.is_array()) {
    std::fprintf(stderr, "%s: not a JSON array\n", argv[1]);
    return 2;
  }
  json out = json::array();
  for (const json& c : cases) {
    auto tok = strata::Tokenizer::Load(c.at("dir").get<std::string>());
    if (!tok.ok()) {
      out.push_back({{"error", std::string(tok.status().message())}});
      continue;
    }
    json r = {{"ids", json::array()}, {"ids_with_special", json::array()}, {"decoded", json::array()},
              {"decoded_skip_special", json::array()}};
    for (const json& t : c.at("texts")) {
      const std::vector<int> ids = (*tok)->Encode(t.get<std::string>());
      r["ids"].push_back(ids);
      r["ids_with_special"].push_back((*tok)->WithSpecialTokens(ids));
    }
    for (const json& ids : c.at("decode")) {
      r["decoded"].push_back((*tok)->Decode(ids.get<std::vector<int>>(), /*skip_special=*/false));
      r["decoded_skip_special"].push_back((*tok)->Decode(ids.get<std::vector<int>>(), /*skip_special=*/true));
    }
    out.push_back(std::move(r));
  }
  // Bytes that are not UTF-8 come out as U+FFFD, as Hugging Face's decode writes them.
  std::ofstream(argv[2]) << out.dump(-1, ' ', false, json::error_handler_t::replace);
  return 0;
}
