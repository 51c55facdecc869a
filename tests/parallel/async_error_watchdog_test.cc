// The NCCL data plane's watchdog, with a scripted communicator: healthy polls abort nothing, the
// first error aborts exactly once and fails every later call, a call in progress finishes before
// the abort, and a call stuck on a dead peer is released by the abort.
#include "parallel/async_error_watchdog.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace strata {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

// Spins (with short sleeps) until `done` or `limit` passes; true when `done`.
template <typename F>
bool WaitFor(F done, milliseconds limit = milliseconds(5000)) {
  const auto end = Clock::now() + limit;
  while (!done()) {
    if (Clock::now() > end) return false;
    std::this_thread::sleep_for(milliseconds(1));
  }
  return true;
}

TEST(AsyncErrorWatchdog, HealthyCommunicatorIsNeverAborted) {
  std::atomic<int> polls{0}, aborts{0};
  {
    AsyncErrorWatchdog w([&] { ++polls; return absl::OkStatus(); }, [&] { ++aborts; }, milliseconds(1));
    ASSERT_TRUE(WaitFor([&] { return polls.load() >= 20; }));
    AsyncErrorWatchdog::Call call(&w);
    EXPECT_TRUE(call.ok());
    EXPECT_TRUE(w.error().ok());
  }
  EXPECT_EQ(aborts.load(), 0);
}

TEST(AsyncErrorWatchdog, FirstErrorAbortsOnceAndFailsLaterCalls) {
  std::atomic<int> polls{0}, aborts{0};
  AsyncErrorWatchdog w(
      [&] {
        return ++polls < 5 ? absl::OkStatus() : absl::InternalError("remote process exited");
      },
      [&] { ++aborts; }, milliseconds(1));
  ASSERT_TRUE(WaitFor([&] { return aborts.load() == 1; }));
  AsyncErrorWatchdog::Call call(&w);
  EXPECT_FALSE(call.ok());
  EXPECT_EQ(call.status().message(), "remote process exited");
  std::this_thread::sleep_for(milliseconds(30));
  EXPECT_EQ(aborts.load(), 1);  // the thread stops after the abort: no second one
  EXPECT_EQ(polls.load(), 5);
}

TEST(AsyncErrorWatchdog, CallInProgressFinishesBeforeTheAbort) {
  std::atomic<bool> error{false}, call_done{false}, aborted_after_call{false};
  std::atomic<int> aborts{0};
  AsyncErrorWatchdog w([&] { return error ? absl::InternalError("peer gone") : absl::OkStatus(); },
                       [&] { aborted_after_call = call_done.load(); ++aborts; }, milliseconds(1), milliseconds(5000));
  {
    AsyncErrorWatchdog::Call call(&w);
    ASSERT_TRUE(call.ok());
    error = true;
    ASSERT_TRUE(WaitFor([&] { return w.failed(); }));  // seen, but the abort waits for this call
    std::this_thread::sleep_for(milliseconds(50));
    EXPECT_EQ(aborts.load(), 0);
    call_done = true;
  }
  ASSERT_TRUE(WaitFor([&] { return aborts.load() == 1; }));
  EXPECT_TRUE(aborted_after_call.load());
}

TEST(AsyncErrorWatchdog, AbortReleasesACallStuckOnADeadPeer) {
  std::atomic<bool> error{false}, released{false};
  AsyncErrorWatchdog w([&] { return error ? absl::UnavailableError("peer gone") : absl::OkStatus(); },
                       [&] { released = true; }, milliseconds(1), milliseconds(20));
  const auto start = Clock::now();
  {
    AsyncErrorWatchdog::Call call(&w);
    error = true;
    // A collective whose partner died: it returns only once the communicator is aborted.
    ASSERT_TRUE(WaitFor([&] { return released.load(); }));
  }
  EXPECT_GE(Clock::now() - start, milliseconds(20));  // the grace period came first
  EXPECT_EQ(w.error().code(), absl::StatusCode::kUnavailable);
}

TEST(AsyncErrorWatchdog, DestructorStopsPromptly) {
  const auto start = Clock::now();
  { AsyncErrorWatchdog w([] { return absl::OkStatus(); }, [] {}, milliseconds(10000)); }
  EXPECT_LT(Clock::now() - start, milliseconds(2000));
}

}  // namespace
}  // namespace strata
