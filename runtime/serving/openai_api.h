// File: runtime/serving/openai_api.h
// OpenAI's /v1/completions and /v1/chat/completions: request validation (errors in OpenAI's
// JSON shape with the right HTTP status) and the response and stream-chunk bodies.
#pragma once

#include <optional>
#include <variant>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "nlohmann/json.hpp"
#include "runtime/model/model_spec.h"
#include "runtime/request.h"
#include "runtime/serving/chat_template.h"
#include "runtime/serving/structured_output.h"
#include "runtime/serving/tool_calls.h"
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

// GET /v1/models: the one served model, with its context length (vLLM's max_model_len).
nlohmann::json ModelsBody(const std::string& served_model_name, int64_t created, int64_t max_model_len);

// A request the engine refused after parsing (its token ids, its length against the context):
// a 400 naming the prompt (or the messages), as OpenAI's context_length_exceeded does.
ApiError EngineRefusal(const absl::Status& status, bool chat);

// Serializes a response. Token text may hold a piece of a UTF-8 character; it becomes U+FFFD
// instead of an exception.
inline std::string Dump(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

struct CompletionCall {
  bool chat = false;
  std::vector<std::vector<int>> prompts;  // token ids per prompt
  std::vector<std::string> prompt_texts;  // for echo
  // Sequences per prompt: best_of are generated (seeds seed, seed + 1, ...), the n with the
  // highest cumulative logprob are returned. Choice i answers prompt i / n.
  int n = 1, best_of = 1;
  GenerationRequest base;                 // max_tokens, sampling, stopping (prompt left empty)
  std::vector<std::string> stop;
  // vLLM's: keep the matched stop string, or the text of the EOS / stop token that ended the
  // answer (both are cut by default); decode special tokens into the text or skip them.
  bool include_stop_str_in_output = false;
  bool skip_special_tokens = true;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  int logprobs = -1;           // -1: none; else this many top alternatives per token (base.top_logprobs)
  bool echo = false;
  bool return_token_ids = false;  // extension: choices carry "token_ids"
  // Structured output and tools: the grammar (compiled by the server into base.grammar) and,
  // on chat, tool_choice's mode. Tool-call ids of choice i come from tool_id_seed + i.
  OutputConstraint constraint;
  ToolCallFormat tool_format = ToolCallFormat::kHermes;
  uint64_t tool_id_seed = 0;
};

struct ApiContext {
  const ModelSpec* spec = nullptr;
  const Tokenizer* tokenizer = nullptr;  // null: prompts must be token ids
  std::string served_model_name;
  const ModelChatTemplate* chat = nullptr;  // null or no template: RenderDefaultChatTemplate
  ToolCallFormat tool_format = ToolCallFormat::kHermes;  // how tool calls are read from the output
};

// Parses and validates a request body. Checks everything that does not need the engine.
std::variant<CompletionCall, ApiError> ParseCompletionRequest(const std::string& body, bool chat,
                                                              const ApiContext& ctx);

// vLLM's POST /tokenize ({"prompt": text} or {"messages": [...]}) and POST /detokenize
// ({"tokens": [...]}): the response body, or the error.
std::variant<nlohmann::json, ApiError> TokenizeRequest(const std::string& body, const ApiContext& ctx);
std::variant<nlohmann::json, ApiError> DetokenizeRequest(const std::string& body, const ApiContext& ctx);

// The prompt text of a chat under Strata's default template (ChatML):
// "<|im_start|>{role}\n{content}<|im_end|>\n" per message, then "<|im_start|>assistant\n".
// With tools, as Qwen2.5's (Hermes) template: a system block lists them between <tools> and
// </tools> with the <tool_call> instruction (the request's system message first in it); an
// assistant's tool_calls are <tool_call> blocks and tool results <tool_response> blocks of a
// user turn.
std::string RenderDefaultChatTemplate(const nlohmann::ordered_json& messages,
                                      const nlohmann::ordered_json& tools = nullptr);

// Text streamed so far for one choice, with stop strings applied: text that could still turn
// into a stop string is held back until it cannot.
class StopAwareText {
 public:
  StopAwareText(const Tokenizer* t, std::vector<std::string> stop, bool include_stop = false, bool skip_special = true)
      : dec_(t, skip_special), stop_(std::move(stop)), include_stop_(include_stop) {}
  // Feeds a token; returns the text now safe to emit. Sets stopped() when a stop string appears
  // (everything after it is never emitted, nor the stop string itself unless include_stop).
  std::string Add(int token);
  std::string Finish();  // the held-back rest at the end of generation
  bool stopped() const { return stopped_; }

 private:
  std::string Release();
  IncrementalDecoder dec_;
  std::vector<std::string> stop_;
  bool include_stop_ = false;
  std::string held_;
  bool stopped_ = false;
};

// One choice's text and bookkeeping while its tokens arrive.
struct ChoiceState {
  ChoiceState(const Tokenizer* t, const CompletionCall& call)
      : text(t, call.stop, call.include_stop_str_in_output, call.skip_special_tokens) {}
  StopAwareText text;
  std::string out;
  std::vector<int> tokens;
  std::vector<float> logprobs;
  std::vector<std::string> token_texts;
  std::vector<std::vector<std::pair<std::string, float>>> top;  // per token: the top alternatives' texts
  bool finished = false;
  std::string finish_reason;
  std::string error;
  std::optional<ToolCallStream> tool_stream;  // streamed chat with tools: turns text into tool-call deltas
};

// What every body of one response repeats.
struct ResponseHeader {
  std::string id;
  int64_t created = 0;
  std::string model;
};

// The response bodies, in OpenAI's shapes for `call`'s endpoint (chat or text completion).
// The logprobs object for tokens whose texts are `texts`, with each token's top alternatives
// (null when none were asked for).
nlohmann::json LogprobsBody(const CompletionCall& call, const std::vector<float>& logprobs,
                            const std::vector<std::string>& texts,
                            const std::vector<std::vector<std::pair<std::string, float>>>& top);
nlohmann::json UsageBody(const CompletionCall& call, const std::vector<ChoiceState>& choices);
// The whole non-streamed response: `chosen` are the returned choices in order (n per prompt).
nlohmann::json CompletionBody(const CompletionCall& call, const ResponseHeader& h,
                              const std::vector<const ChoiceState*>& chosen, const std::vector<ChoiceState>& all);
// A stream chunk carrying one choice delta, and the deltas: the opening one (role, echo), a piece
// of text with its token, and the closing one with the finish reason.
nlohmann::json StreamChunk(const CompletionCall& call, const ResponseHeader& h, nlohmann::json choice);
nlohmann::json OpeningDelta(const CompletionCall& call, size_t index);
nlohmann::json PieceDelta(const CompletionCall& call, int index, const std::string& piece, nlohmann::json logprobs,
                          int token);
nlohmann::json FinishDelta(const CompletionCall& call, int index, const std::string& reason);
// A chat delta carrying tool-call deltas (runtime/serving/tool_calls.h).
nlohmann::json ToolCallsDelta(int index, const std::vector<ToolCallDelta>& calls);
// The finish reason a chat choice reports: "tool_calls" where tool_choice auto or required made
// calls and generation stopped by itself (a named function's forced call stays "stop", as OpenAI).
std::string ToolFinishReason(const CompletionCall& call, const std::string& reason, bool made_calls);
// The last chunk when stream_options.include_usage: no choices, the usage.
nlohmann::json UsageChunk(const CompletionCall& call, const ResponseHeader& h, nlohmann::json usage);

}  // namespace strata
