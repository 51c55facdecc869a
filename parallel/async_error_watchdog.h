// File: parallel/async_error_watchdog.h
// A thread of its own that watches a communicator for an asynchronous error (a dead peer, a
// network failure) and aborts the communicator when one appears. Device collectives are
// enqueued without any host wait, so nobody else is there to notice that a peer is gone: without
// this thread a rank would wait forever on a stream that a collective never releases. XLA and
// PyTorch's ProcessGroupNCCL watch NCCL the same way.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

#include "absl/status/status.h"

namespace strata {

class AsyncErrorWatchdog {
 public:
  // `poll` returns OK while the communicator is healthy (it is called from the watchdog's thread
  // every `interval`, so it must be safe to call concurrently with the communicator's calls);
  // `abort` is called once, after the first error, and releases whatever waits on the
  // communicator. A call in progress (see Call) is given `grace` to finish before the abort:
  // one that is still blocked then is blocked on the dead peer, and only the abort frees it.
  AsyncErrorWatchdog(std::function<absl::Status()> poll, std::function<void()> abort,
                     std::chrono::milliseconds interval = std::chrono::milliseconds(10),
                     std::chrono::milliseconds grace = std::chrono::milliseconds(1000));
  ~AsyncErrorWatchdog();  // stops the thread; an abort in progress completes first
  AsyncErrorWatchdog(const AsyncErrorWatchdog&) = delete;
  AsyncErrorWatchdog& operator=(const AsyncErrorWatchdog&) = delete;

  // Held by the communicator for each of its calls: while it is held the watchdog does not
  // abort (up to `grace`). ok() is false once the communicator has failed; then status() says
  // why and the call must not touch the communicator.
  class Call {
   public:
    explicit Call(AsyncErrorWatchdog* w) : watchdog_(w), lock_(w->call_mutex_) {}
    bool ok() const { return !watchdog_->failed(); }
    absl::Status status() const { return watchdog_->error(); }

   private:
    AsyncErrorWatchdog* watchdog_;
    std::lock_guard<std::timed_mutex> lock_;
  };

  bool failed() const { return failed_.load(std::memory_order_acquire); }
  absl::Status error() const;  // the first error seen; OK while none

 private:
  void Run();

  std::function<absl::Status()> poll_;
  std::function<void()> abort_;
  const std::chrono::milliseconds interval_, grace_;
  std::timed_mutex call_mutex_;    // held by the communicator's calls
  mutable std::mutex state_mutex_;  // guards error_ and stop_
  std::condition_variable wake_;
  absl::Status error_;
  bool stop_ = false;
  std::atomic<bool> failed_{false};
  std::thread thread_;  // last: it starts once everything above exists
};

}  // namespace strata
