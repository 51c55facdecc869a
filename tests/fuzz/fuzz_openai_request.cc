// Bytes as a /v1/completions or /v1/chat/completions body (the first byte picks the endpoint),
// and as /tokenize and /detokenize bodies: every answer is a parsed call or a 4xx error; nothing
// throws, crashes or reads out of bounds.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "runtime/serving/openai_api.h"
#include "runtime/tokenizer/tokenizer.h"

namespace {

struct Fixture {
  strata::ModelSpec spec;
  std::unique_ptr<strata::Tokenizer> tokenizer;
  Fixture() {
    spec.vocab_size = 512;
    spec.max_position_embeddings = 256;
    tokenizer = std::move(strata::Tokenizer::Load(STRATA_FUZZ_DIR)).value();  // tests/fuzz/tokenizer.json
  }
};

void Check(const strata::ApiError& e) {
  if (e.status < 400 || e.status >= 500) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Fixture f;
  if (size == 0) return 0;
  const bool chat = data[0] & 1;
  const std::string body(reinterpret_cast<const char*>(data) + 1, size - 1);
  strata::ApiContext ctx{&f.spec, f.tokenizer.get(), "m", nullptr};
  auto r = strata::ParseCompletionRequest(body, chat, ctx);
  if (auto* e = std::get_if<strata::ApiError>(&r)) Check(*e);
  auto t = strata::TokenizeRequest(body, ctx);
  if (auto* e = std::get_if<strata::ApiError>(&t)) Check(*e);
  auto d = strata::DetokenizeRequest(body, ctx);
  if (auto* e = std::get_if<strata::ApiError>(&d)) Check(*e);
  return 0;
}
