// wait_for_test_util.h — tests wait for events, not for the scheduler: poll a
// condition every millisecond, bounded, instead of sleeping a guessed time.
//
//   ASSERT_TRUE(WaitFor([&] { return engine.attached() >= 1; }));
//   EXPECT_TRUE(WaitFor(cpu_holds, 10000ms)) << "no CPU thread took the lock";
#pragma once

#include <chrono>
#include <thread>

namespace gillab::servers {

// Polls `done` every millisecond for at most `limit`; returns its last value.
template <typename F>
bool WaitFor(F done, std::chrono::milliseconds limit = std::chrono::milliseconds(5000)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

}  // namespace gillab::servers
