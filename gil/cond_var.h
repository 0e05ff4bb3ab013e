// cond_var.h — std::condition_variable behind the platform seam (platform.h):
// the real one on a real thread, the simulator's event queue on a simulated
// one. `newgil` sleeps on two of these, as CPython's take_gil/drop_gil do;
// the stm model's inevitable token on one.
//
// Same contract as std::condition_variable with a std::mutex (spurious
// wake-ups allowed; callers loop on their predicate). notify_one on a real
// thread (and NotifyAll) costs one thread-local load more than the standard one.
//
//   std::unique_lock lock(mu);  CondVar cv;
//   bool timed_out = cv.WaitForNs(lock, 5'000'000);   // waiter
//   cv.NotifyOne();                                   // waker
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <limits>
#include <mutex>

#include "gil/platform.h"

namespace gillab::gil {

class CondVar {
 public:
  void NotifyOne() {
    if (Platform* p = ThreadPlatform()) [[unlikely]] {
      p->NotifyCondition(this, 1);
      return;
    }
    cv_.notify_one();
  }
  void NotifyAll() {
    if (Platform* p = ThreadPlatform()) [[unlikely]] {
      p->NotifyCondition(this, std::numeric_limits<int>::max());
      return;
    }
    cv_.notify_all();
  }
  // Waits until notified (or spuriously). `lock` must hold the mutex.
  void Wait(std::unique_lock<std::mutex>& lock) {
    if (Platform* p = ThreadPlatform()) [[unlikely]] {
      p->WaitOnCondition(this, lock, -1);
      return;
    }
    cv_.wait(lock);
  }
  // Waits at most timeout_ns; returns true when the timeout passed.
  bool WaitForNs(std::unique_lock<std::mutex>& lock, int64_t timeout_ns) {
    if (Platform* p = ThreadPlatform()) [[unlikely]] return p->WaitOnCondition(this, lock, timeout_ns);
    return cv_.wait_for(lock, std::chrono::nanoseconds(timeout_ns)) == std::cv_status::timeout;
  }

 private:
  std::condition_variable cv_;
};

}  // namespace gillab::gil
