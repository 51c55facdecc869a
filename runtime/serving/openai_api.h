// File: runtime/serving/openai_api.h
// OpenAI's /v1/completions and /v1/chat/completions: request validation (errors in OpenAI's
// JSON shape with the right HTTP status) and the response and stream-chunk bodies.
#pragma once

#include <optional>
#include <variant>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "runtime/model/model_spec.h"
#include "runtime/scheduler.h"
#include "runtime/serving/chat_template.h"
#include "runtime/tokenizer/tokenizer.h"

namespace strata {

struct ApiError {
  int status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;  // the offending field, or empty
  std::string code;
};
nlohmann::json ErrorBody(const ApiError& e);

// Serializes a response. Token text may hold a piece of a UTF-8 character; it becomes U+FFFD
// instead of an exception.
inline std::string Dump(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

struct CompletionCall {
  bool chat = false;
  std::vector<std::vector<int>> prompts;  // token ids per choice
  std::vector<std::string> prompt_texts;  // for echo
  GenerationRequest base;                 // max_tokens, sampling (prompt left empty)
  std::vector<std::string> stop;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  int logprobs = -1;           // -1: none
  bool echo = false;
  bool return_token_ids = false;  // extension: choices carry "token_ids"
};

struct ApiContext {
  const ModelSpec* spec = nullptr;
  const Tokenizer* tokenizer = nullptr;  // null: prompts must be token ids
  std::string served_model_name;
  const ModelChatTemplate* chat = nullptr;  // null or no template: RenderDefaultChatTemplate
};

// Parses and validates a request body. Checks everything that does not need the engine.
std::variant<CompletionCall, ApiError> ParseCompletionRequest(const std::string& body, bool chat,
                                                              const ApiContext& ctx);

// The prompt text of a chat under Strata's default template (ChatML):
// "<|im_start|>{role}\n{content}<|im_end|>\n" per message, then "<|im_start|>assistant\n".
std::string RenderDefaultChatTemplate(const nlohmann::json& messages);

// Text streamed so far for one choice, with stop strings applied: text that could still turn
// into a stop string is held back until it cannot.
class StopAwareText {
 public:
  StopAwareText(const Tokenizer* t, std::vector<std::string> stop) : dec_(t), stop_(std::move(stop)) {}
  // Feeds a token; returns the text now safe to emit. Sets stopped() when a stop string appears
  // (the stop string and everything after it is never emitted).
  std::string Add(int token);
  std::string Finish();  // the held-back rest at the end of generation
  bool stopped() const { return stopped_; }

 private:
  std::string Release();
  IncrementalDecoder dec_;
  std::vector<std::string> stop_;
  std::string held_;
  bool stopped_ = false;
};

}  // namespace strata
