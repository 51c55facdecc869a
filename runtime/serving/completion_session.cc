#include "runtime/serving/completion_session.h"


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
  for (size_t i = 0; i < call_.prompts.size() * static_cast<size_t>(call_.best_of); ++i) {
    choices_.emplace_back(tokenizer_, call_);
    // Streamed chat with tools: each choice's text goes through its tool-call stream (ids seeded
    // per choice as the whole response's are).
    if (call_.stream && call_.chat && call_.constraint.tool_mode != ToolMode::kNone)
      choices_.back().tool_stream.emplace(call_.constraint.tool_mode, call_.tool_format, call_.constraint.tool_name,
                                          call_.tool_id_seed + i);
  }
}

std::string CompletionSession::Apply(const StreamEvent& ev) {
  ChoiceState& c = choices_[ev.index];
  if (c.finished) return "";
  std::string piece;
  if (ev.token >= 0) {
    if (first_token_ == std::chrono::steady_clock::time_point{}) first_token_ = std::chrono::steady_clock::now();
    c.tokens.push_back(ev.token);
    c.logprobs.push_back(ev.logprob);
    if (call_.logprobs >= 0) {
      std::vector<std::pair<std::string, float>> alternatives;
      for (const auto& [id, lp] : ev.top_logprobs) alternatives.push_back({tokenizer_ ? tokenizer_->Decode({id}) : "", lp});
      c.top.push_back(std::move(alternatives));
    }
    if (tokenizer_) {
      c.token_texts.push_back(tokenizer_->Decode({ev.token}));
      // The EOS or stop token that ends the answer is in its token ids, not in its text (vLLM's
      // rule: a model whose EOS is an ordinary token would otherwise end every answer with it).
      if (!(ev.finished && ev.stopped_by_token && !call_.include_stop_str_in_output)) piece = c.text.Add(ev.token);
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

std::variant<json, ApiError> CompletionSession::Result() const {
  for (const ChoiceState& c : choices_)
    if (!c.error.empty()) {
      ApiError e;
      e.message = c.error;
      return e;
    }
  // best_of sequences per prompt; the n with the highest cumulative logprob answer it, in order.
  std::vector<const ChoiceState*> chosen;
  const size_t per = static_cast<size_t>(call_.best_of);
  for (size_t p = 0; p < call_.prompts.size(); ++p) {
    std::vector<const ChoiceState*> group;
    for (size_t j = 0; j < per; ++j) group.push_back(&choices_[p * per + j]);
    auto total = [](const ChoiceState* c) {
      double s = 0;
      for (float lp : c->logprobs) s += lp;
      return s;
    };
    if (call_.best_of > call_.n)  // n == best_of keeps the sequences in seed order
      std::stable_sort(group.begin(), group.end(),
                       [&](const ChoiceState* a, const ChoiceState* b) { return total(a) > total(b); });
    chosen.insert(chosen.end(), group.begin(), group.begin() + call_.n);
  }
  return CompletionBody(call_, header_, chosen, choices_);
}

double CompletionSession::ttft_seconds() const {
  if (first_token_ == std::chrono::steady_clock::time_point{}) return -1;
  return std::chrono::duration<double>(first_token_ - started_).count();
}

double CompletionSession::age_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
}

int64_t CompletionSession::prompt_tokens() const {
  int64_t n = 0;
  for (const auto& p : call_.prompts) n += static_cast<int64_t>(p.size());
  return n;
}

int64_t CompletionSession::completion_tokens() const {
  int64_t n = 0;
  for (const ChoiceState& c : choices_) n += static_cast<int64_t>(c.tokens.size());
  return n;
}

std::string CompletionSession::EventText(const StreamEvent& ev) {
  ChoiceState& c = choices_[ev.index];
  const bool was_finished = c.finished;
  const std::string piece = Apply(ev);
  if (was_finished) return "";
  if (!c.error.empty()) return Event(ErrorBody(ApiError{400, c.error, "invalid_request_error", "", ""}));
  std::string out;
  json lp = nullptr;
  if (call_.logprobs >= 0 && ev.token >= 0)
    lp = LogprobsBody(call_, {ev.logprob}, {c.token_texts.empty() ? "" : c.token_texts.back()},
                      {c.top.empty() ? std::vector<std::pair<std::string, float>>{} : c.top.back()});
  if (c.tool_stream) {
    // Content may be held back (it may open a tool call) and calls come as their own deltas.
    ToolStreamStep step = c.tool_stream->Add(piece);
    if (c.finished) {
      ToolStreamStep rest = c.tool_stream->Finish();
      step.content += rest.content;
      step.calls.insert(step.calls.end(), rest.calls.begin(), rest.calls.end());
    }
    if (!step.content.empty() || !lp.is_null() || (call_.return_token_ids && ev.token >= 0))
      out += Event(StreamChunk(call_, header_, PieceDelta(call_, ev.index, step.content, lp, ev.token)));
    if (!step.calls.empty()) out += Event(StreamChunk(call_, header_, ToolCallsDelta(ev.index, step.calls)));
  } else if (!piece.empty() || ev.token >= 0) {
    out += Event(StreamChunk(call_, header_, PieceDelta(call_, ev.index, piece, lp, ev.token)));
  }
  if (c.finished) {
    const std::string reason =
        c.tool_stream ? ToolFinishReason(call_, c.finish_reason, c.tool_stream->made_calls()) : c.finish_reason;
    out += Event(StreamChunk(call_, header_, FinishDelta(call_, ev.index, reason)));
  }
  return out;
}

std::string CompletionSession::Drain() {
  std::string out;
  if (done_) return out;
  if (call_.stream && !opened_) {
    opened_ = true;
    for (size_t i = 0; i < choices_.size(); ++i) out += Event(StreamChunk(call_, header_, OpeningDelta(call_, i)));
  }
  for (const StreamEvent& ev : stream_->Take()) {
    if (call_.stream) {
      out += EventText(ev);
    } else {
      Apply(ev);
    }
  }
  if (!AllFinished()) return out;
  done_ = true;
  if (call_.stream) {
    if (call_.include_usage) out += Event(UsageChunk(call_, header_, UsageBody(call_, choices_)));
    out += "data: [DONE]\n\n";
  }
  return out;
}

}  // namespace strata
