// File: runtime/serving/completion_session.h
// One accepted /v1/completions or /v1/chat/completions request after it was submitted to the
// RequestHub: it turns the engine's events into each choice's text (stop strings applied) and
// produces the response, whole or as server-sent events. Never blocks and knows nothing of
// HTTP: the server polls it when the engine signals new events.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "nlohmann/json.hpp"
#include "runtime/serving/openai_api.h"
#include "runtime/serving/request_hub.h"

namespace strata {

class CompletionSession {
 public:
  CompletionSession(CompletionCall call, std::vector<RequestId> ids, std::shared_ptr<RequestStream> stream,
                    RequestHub* hub, const Tokenizer* tokenizer, ResponseHeader header);

  const CompletionCall& call() const { return call_; }
  // Applies the events that have arrived. For a streamed request, returns the server-sent events
  // to write now (the opening deltas first, "data: [DONE]" last); otherwise "".
  std::string Drain();
  // Every choice has finished (and, streamed, [DONE] was produced).
  bool done() const { return done_; }
  // Non-streamed, once done: the body, or the error of a choice the engine refused.
  std::variant<nlohmann::json, ApiError> Result() const;
  // The client left: the engine stops the requests and frees their blocks.
  void Cancel() { hub_->Cancel(ids_); }
  // For the request log: prompt and generated tokens, and the first finish reason.
  int64_t prompt_tokens() const;
  int64_t completion_tokens() const;
  std::string finish_reason() const { return choices_.empty() ? "" : choices_[0].finish_reason; }
  const ResponseHeader& header() const { return header_; }
  // Seconds from submission to the first token (-1: none yet) and to now.
  double ttft_seconds() const;
  double age_seconds() const;

 private:
  // Applies one event to its choice; returns the choice's new text.
  std::string Apply(const StreamEvent& ev);
  bool AllFinished() const;
  // The server-sent events of one choice's new token or end.
  std::string EventText(const StreamEvent& ev);

  CompletionCall call_;
  std::vector<RequestId> ids_;
  std::shared_ptr<RequestStream> stream_;
  RequestHub* hub_;
  const Tokenizer* tokenizer_;
  ResponseHeader header_;
  std::vector<ChoiceState> choices_;
  bool opened_ = false;  // the opening deltas were produced
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now(), first_token_{};
  bool done_ = false;
};

}  // namespace strata
