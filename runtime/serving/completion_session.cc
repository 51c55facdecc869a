#include "runtime/serving/completion_session.h"

#include <chrono>

namespace strata {

using json = nlohmann::json;

namespace {

std::string Event(const json& body) { return "data: " + Dump(body) + "\n\n"; }

}  // namespace

CompletionSession::CompletionSession(CompletionCall call, std::vector<RequestId> ids,
                                     std::shared_ptr<RequestStream> stream, RequestHub* hub,
                                     const Tokenizer* tokenizer, ResponseHeader header)
    : call_(std::move(call)),
      ids_(std::move(ids)),
      stream_(std::move(stream)),
      hub_(hub),
      tokenizer_(tokenizer),
      header_(std::move(header)) {
  for (size_t i = 0; i < call_.prompts.size(); ++i) choices_.emplace_back(tokenizer_, call_.stop);
}

std::string CompletionSession::Apply(const StreamEvent& ev) {
  ChoiceState& c = choices_[ev.index];
  if (c.finished) return "";
  std::string piece;
  if (ev.token >= 0) {
    c.tokens.push_back(ev.token);
    c.logprobs.push_back(ev.logprob);
    if (tokenizer_) {
      c.token_texts.push_back(tokenizer_->Decode({ev.token}));
      piece = c.text.Add(ev.token);
    }
    if (c.text.stopped()) {  // a stop string: this choice is done, the engine stops it
      c.finished = true;
      c.finish_reason = "stop";
      hub_->Cancel({ids_[ev.index]});
    }
  }
  if (ev.finished && !c.finished) {
    c.finished = true;
    c.finish_reason = ev.finish_reason == "abort" ? "stop" : ev.finish_reason;
    c.error = ev.error;
    if (tokenizer_) piece += c.text.Finish();
  }
  c.out += piece;
  return piece;
}

bool CompletionSession::AllFinished() const {
  for (const ChoiceState& c : choices_)
    if (!c.finished) return false;
  return true;
}

std::variant<json, ApiError> CompletionSession::WaitForBody() {
  while (!AllFinished())
    for (const StreamEvent& ev : stream_->Wait(std::chrono::milliseconds(200))) Apply(ev);
  for (const ChoiceState& c : choices_)
    if (!c.error.empty()) {
      ApiError e;
      e.message = c.error;
      return e;
    }
  return CompletionBody(call_, header_, choices_);
}

bool CompletionSession::WriteEvent(const StreamEvent& ev, const std::function<bool(const std::string&)>& write) {
  ChoiceState& c = choices_[ev.index];
  const bool was_finished = c.finished;
  const std::string piece = Apply(ev);
  if (was_finished) return true;
  if (!c.error.empty()) return write(Event(ErrorBody(ApiError{400, c.error, "invalid_request_error", "", ""})));
  if (!piece.empty() || ev.token >= 0) {
    json lp = nullptr;
    if (call_.logprobs >= 0 && ev.token >= 0)
      lp = LogprobsBody(call_, {ev.logprob}, {c.token_texts.empty() ? "" : c.token_texts.back()});
    if (!write(Event(StreamChunk(call_, header_, PieceDelta(call_, ev.index, piece, lp, ev.token))))) return false;
  }
  if (c.finished && !write(Event(StreamChunk(call_, header_, FinishDelta(call_, ev.index, c.finish_reason)))))
    return false;
  return true;
}

bool CompletionSession::StreamSome(const std::function<bool(const std::string&)>& write, bool* done) {
  *done = false;
  if (!opened_) {
    opened_ = true;
    for (size_t i = 0; i < choices_.size(); ++i)
      if (!write(Event(StreamChunk(call_, header_, OpeningDelta(call_, i))))) return false;
  }
  for (const StreamEvent& ev : stream_->Wait(std::chrono::milliseconds(500)))
    if (!WriteEvent(ev, write)) return false;
  if (!AllFinished()) return true;
  if (call_.include_usage && !write(Event(UsageChunk(call_, header_, UsageBody(call_, choices_))))) return false;
  write("data: [DONE]\n\n");
  *done = true;
  return true;
}

}  // namespace strata
