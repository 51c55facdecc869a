#include "parallel/async_error_watchdog.h"

#include <utility>

namespace strata {

AsyncErrorWatchdog::AsyncErrorWatchdog(std::function<absl::Status()> poll, std::function<void()> abort,
                                       std::chrono::milliseconds interval, std::chrono::milliseconds grace)
    : poll_(std::move(poll)), abort_(std::move(abort)), interval_(interval), grace_(grace), thread_([this] { Run(); }) {}

AsyncErrorWatchdog::~AsyncErrorWatchdog() {
  {
    std::lock_guard<std::mutex> lock(state_mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

absl::Status AsyncErrorWatchdog::error() const {
  std::lock_guard<std::mutex> lock(state_mutex_);
  return error_;
}

void AsyncErrorWatchdog::Run() {
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(state_mutex_);
      if (wake_.wait_for(lock, interval_, [this] { return stop_; })) return;
    }
    absl::Status st = poll_();
    if (st.ok()) continue;
    {
      std::lock_guard<std::mutex> lock(state_mutex_);
      error_ = std::move(st);
    }
    // Calls that start from now on see the failure and stay away from the communicator.
    failed_.store(true, std::memory_order_release);
    // A call in progress normally finishes at once (enqueueing never waits for the peer); one
    // that does not within the grace period is stuck on the dead peer, and the abort releases it.
    const bool quiet = call_mutex_.try_lock_for(grace_);
    abort_();
    if (quiet) call_mutex_.unlock();
    return;  // an aborted communicator has nothing left to watch
  }
}

}  // namespace strata
