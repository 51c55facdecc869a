// strata tokenize --model DIR (--text T | --file F | --decode 1,2,3) [--json]: the model's
// tokenizer from the command line, the same code path as the server's /tokenize and
// /detokenize (Tokenizer::Load, then Encode with the completion prompt's BOS rule, or Decode).
#include <cstdio>
#include <fstream>
#include <sstream>

#include "absl/flags/flag.h"
#include "absl/strings/str_join.h"
#include "launcher/commands.h"
#include "launcher/flags.h"
#include "nlohmann/json.hpp"
#include "runtime/tokenizer/tokenizer.h"

namespace strata {
// --text's value, and whether it was given at all: the empty text is a text to encode.
struct GivenText {
  bool given = false;
  std::string value;
};
bool AbslParseFlag(absl::string_view text, GivenText* t, std::string*) {
  *t = {true, std::string(text)};
  return true;
}
std::string AbslUnparseFlag(const GivenText& t) { return t.value; }
}  // namespace strata

ABSL_FLAG(strata::GivenText, text, strata::GivenText{}, "tokenize: the text to encode (may be empty)");
ABSL_FLAG(std::string, file, "", "tokenize: a file whose whole text to encode");
ABSL_FLAG(std::string, decode, "", "tokenize: comma-separated token ids to decode instead");
ABSL_FLAG(bool, add_special_tokens, true,
          "tokenize: add the BOS / EOS the tokenizer asks for (add_bos_token, add_eos_token, its template)");

namespace strata {

int RunTokenize(const std::vector<std::string>& args) {
  if (!args.empty()) return Fail("tokenize", "takes no positional arguments", 2);
  const std::string dir = absl::GetFlag(FLAGS_model);
  if (dir.empty()) return Fail("tokenize", "--model is required", 2);
  auto tokenizer = Tokenizer::Load(dir);
  if (!tokenizer.ok()) return Fail("tokenize", std::string(tokenizer.status().message()));
  const Tokenizer& t = **tokenizer;
  const bool json = absl::GetFlag(FLAGS_json);
  if (!absl::GetFlag(FLAGS_decode).empty()) {
    auto ids = ParseIntList(absl::GetFlag(FLAGS_decode), "decode");
    if (!ids.ok()) return Fail("tokenize", std::string(ids.status().message()), 2);
    for (int id : *ids)
      if (id < 0 || id >= t.vocab_size())
        return Fail("tokenize", "token id " + std::to_string(id) + " is outside the vocabulary", 2);
    const std::string text = t.Decode(*ids);
    std::printf("%s\n", json ? nlohmann::json{{"text", text}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str()
                             : text.c_str());
    return 0;
  }
  const GivenText given = absl::GetFlag(FLAGS_text);
  std::string text = given.value;
  if (!absl::GetFlag(FLAGS_file).empty()) {
    std::ifstream f(absl::GetFlag(FLAGS_file), std::ios::binary);
    if (!f) return Fail("tokenize", "cannot read --file " + absl::GetFlag(FLAGS_file));
    std::stringstream ss;
    ss << f.rdbuf();
    text = ss.str();
  } else if (!given.given) {  // --text '' is a text (the empty one); only no text is an error
    return Fail("tokenize", "give --text, --file or --decode", 2);
  }
  std::vector<int> ids = t.Encode(text);
  if (absl::GetFlag(FLAGS_add_special_tokens)) ids = t.WithSpecialTokens(std::move(ids));
  if (json) {
    std::printf("%s\n", nlohmann::json{{"count", ids.size()}, {"tokens", ids}}.dump().c_str());
  } else {
    std::printf("%s\n", absl::StrJoin(ids, ",").c_str());
  }
  return 0;
}

}  // namespace strata
