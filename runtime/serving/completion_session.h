// File: runtime/serving/completion_session.h
// One accepted /v1/completions or /v1/chat/completions request after it was submitted to the
// RequestHub: it turns the engine's events into each choice's text (stop strings applied) and
// writes the response, whole or as server-sent events. Knows nothing of HTTP.
#pragma once

#include <functional>
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
  // Non-streamed: waits for every choice, then the body, or the error of a choice the engine
  // refused.
  std::variant<nlohmann::json, ApiError> WaitForBody();
  // Streamed: writes what has arrived (waiting up to half a second) as "data: ..." events
  // through `write`, which returns false once the client is gone. Returns false then; sets
  // *done after the closing "data: [DONE]".
  bool StreamSome(const std::function<bool(const std::string&)>& write, bool* done);
  // The client left: the engine stops the requests and frees their blocks.
  void Cancel() { hub_->Cancel(ids_); }

 private:
  // Applies one event to its choice; returns the choice's new text.
  std::string Apply(const StreamEvent& ev);
  bool AllFinished() const;
  // The events of one choice's new token or end; false when the client is gone.
  bool WriteEvent(const StreamEvent& ev, const std::function<bool(const std::string&)>& write);

  CompletionCall call_;
  std::vector<RequestId> ids_;
  std::shared_ptr<RequestStream> stream_;
  RequestHub* hub_;
  const Tokenizer* tokenizer_;
  ResponseHeader header_;
  std::vector<ChoiceState> choices_;
  bool opened_ = false;  // the opening deltas were sent
};

}  // namespace strata
