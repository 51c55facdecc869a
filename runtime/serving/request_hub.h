// File: runtime/serving/request_hub.h
// The bridge between HTTP threads and the engine thread (rank 0's main thread, the only one that
// talks to the other ranks). HTTP threads submit requests and cancel them; the engine thread
// takes them in, runs steps, and delivers each request's tokens to its stream.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/request.h"

namespace strata {

struct StreamEvent {
  int index = 0;  // which prompt of the HTTP request
  int token = -1;
  float logprob = 0.f;
  bool finished = false;
  std::string finish_reason;
  std::string error;  // the engine refused the request
  std::vector<std::pair<int, float>> top_logprobs;
  bool stopped_by_token = false;  // RequestOutput::stopped_by_token
};

// Events of one HTTP request (one or more prompts), in the order produced.
struct RequestStream {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<StreamEvent> events;
  // Called on the engine thread after events were added (the HTTP loop's wake-up); set before
  // the stream is submitted.
  std::function<void()> notify;
  // Waits up to `timeout` for events; returns them (empty on timeout).
  std::deque<StreamEvent> Wait(std::chrono::milliseconds timeout);
  // The events so far, without waiting.
  std::deque<StreamEvent> Take();
};

// Called on the engine thread for every delivered event, with the request's submit time.
using DeliveryObserver = std::function<void(const StreamEvent&, std::chrono::steady_clock::time_point submitted,
                                            std::chrono::steady_clock::time_point last_token, bool first_token)>;

class RequestHub {
 public:
  // At most `max_pending` unfinished requests, holding at most `max_pending_tokens` prompt tokens
  // among them (what bounds the queue's memory, whatever the count).
  explicit RequestHub(int max_pending, int64_t max_pending_tokens = std::numeric_limits<int64_t>::max())
      : max_pending_(max_pending), max_pending_tokens_(max_pending_tokens) {}

  // HTTP threads. Unavailable while draining or when `max_pending` requests are unfinished.
  absl::StatusOr<std::vector<RequestId>> Submit(std::vector<GenerationRequest> prompts,
                                                std::shared_ptr<RequestStream> stream);
  void Cancel(const std::vector<RequestId>& ids);

  // Engine thread. Waits up to `wait` when there is nothing new.
  void TakeWork(std::vector<std::pair<RequestId, GenerationRequest>>* adds, std::vector<RequestId>* cancels,
                std::chrono::milliseconds wait);
  void Deliver(const RequestOutput& o);
  void Fail(RequestId id, const std::string& error);
  void set_observer(DeliveryObserver f) { observer_ = std::move(f); }

  void StartDraining();
  bool draining() const;
  int unfinished() const;  // submitted and not finished

 private:
  struct Entry {
    std::shared_ptr<RequestStream> stream;
    int index;
    std::chrono::steady_clock::time_point submitted, last_token;
    bool got_token = false;
    int64_t prompt_tokens = 0;
  };
  void Push(Entry& e, StreamEvent ev);

  const int max_pending_;
  const int64_t max_pending_tokens_;
  int64_t live_tokens_ = 0;  // prompt tokens of the requests in live_
  mutable std::mutex mu_;
  std::condition_variable work_cv_;
  bool draining_ = false;
  RequestId next_id_ = 1;
  std::map<RequestId, Entry> live_;
  std::vector<std::pair<RequestId, GenerationRequest>> adds_;
  std::vector<RequestId> cancels_;
  DeliveryObserver observer_;
};

}  // namespace strata
