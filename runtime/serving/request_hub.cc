#include "runtime/serving/request_hub.h"

#include "absl/strings/str_cat.h"

namespace strata {

std::deque<StreamEvent> RequestStream::Wait(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu);
  cv.wait_for(lock, timeout, [&] { return !events.empty(); });
  std::deque<StreamEvent> out;
  out.swap(events);
  return out;
}

std::deque<StreamEvent> RequestStream::Take() {
  std::lock_guard<std::mutex> lock(mu);
  std::deque<StreamEvent> out;
  out.swap(events);
  return out;
}

absl::StatusOr<std::vector<RequestId>> RequestHub::Submit(std::vector<GenerationRequest> prompts,
                                                          std::shared_ptr<RequestStream> stream) {
  std::lock_guard<std::mutex> lock(mu_);
  if (draining_) return absl::UnavailableError("the server is shutting down");
  if (static_cast<int>(live_.size() + prompts.size()) > max_pending_)
    return absl::UnavailableError(
        absl::StrCat("the server is overloaded: ", live_.size(), " requests in progress (--max-pending ",
                     max_pending_, ")"));
  int64_t tokens = 0;
  for (const GenerationRequest& p : prompts) tokens += static_cast<int64_t>(p.prompt.size());
  if (live_tokens_ + tokens > max_pending_tokens_)
    return absl::UnavailableError(absl::StrCat("the server is overloaded: ", live_tokens_,
                                               " prompt tokens in progress (--max-pending-tokens ",
                                               max_pending_tokens_, ")"));
  std::vector<RequestId> ids;
  const auto now = std::chrono::steady_clock::now();
  for (size_t i = 0; i < prompts.size(); ++i) {
    const RequestId id = next_id_++;
    live_[id] = Entry{stream, static_cast<int>(i), now, now, false, static_cast<int64_t>(prompts[i].prompt.size())};
    live_tokens_ += static_cast<int64_t>(prompts[i].prompt.size());
    adds_.push_back({id, std::move(prompts[i])});
    ids.push_back(id);
  }
  work_cv_.notify_all();
  return ids;
}

void RequestHub::Cancel(const std::vector<RequestId>& ids) {
  std::lock_guard<std::mutex> lock(mu_);
  for (RequestId id : ids)
    if (live_.count(id)) cancels_.push_back(id);
  work_cv_.notify_all();
}

void RequestHub::TakeWork(std::vector<std::pair<RequestId, GenerationRequest>>* adds,
                          std::vector<RequestId>* cancels, std::chrono::milliseconds wait) {
  std::unique_lock<std::mutex> lock(mu_);
  if (wait.count() > 0) work_cv_.wait_for(lock, wait, [&] { return !adds_.empty() || !cancels_.empty(); });
  adds->swap(adds_);
  cancels->swap(cancels_);
  adds_.clear();
  cancels_.clear();
}

void RequestHub::Push(Entry& e, StreamEvent ev) {
  {
    std::lock_guard<std::mutex> lock(e.stream->mu);
    e.stream->events.push_back(std::move(ev));
    e.stream->cv.notify_all();
  }
  if (e.stream->notify) e.stream->notify();
}

void RequestHub::Deliver(const RequestOutput& o) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = live_.find(o.id);
  if (it == live_.end()) return;
  Entry& e = it->second;
  StreamEvent ev{e.index, o.token, o.logprob, o.finished, o.finish_reason, "", o.top_logprobs, o.stopped_by_token};
  const auto now = std::chrono::steady_clock::now();
  if (observer_) observer_(ev, e.submitted, e.last_token, o.token >= 0 && !e.got_token);
  if (o.token >= 0) {
    e.got_token = true;
    e.last_token = now;
  }
  Push(e, std::move(ev));
  if (o.finished) {
    live_tokens_ -= e.prompt_tokens;
    live_.erase(it);
  }
}

void RequestHub::Fail(RequestId id, const std::string& error) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = live_.find(id);
  if (it == live_.end()) return;
  StreamEvent ev;
  ev.index = it->second.index;
  ev.finished = true;
  ev.finish_reason = "error";
  ev.error = error;
  Push(it->second, std::move(ev));
  live_tokens_ -= it->second.prompt_tokens;
  live_.erase(it);
}

void RequestHub::StartDraining() {
  std::lock_guard<std::mutex> lock(mu_);
  draining_ = true;
  work_cv_.notify_all();
}

bool RequestHub::draining() const {
  std::lock_guard<std::mutex> lock(mu_);
  return draining_;
}

int RequestHub::unfinished() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(live_.size());
}

}  // namespace strata
