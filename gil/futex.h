// futex.h — one 32-bit word a single thread sleeps on, woken by exactly one
// other thread: the per-waiter parking spot of the queued policies and the
// ping-pong floor of the benchmark.
//
// Why a raw futex and not a condition variable: a hand-off should cost what
// the kernel charges for one wake-up and nothing more. A per-waiter word means
// the releaser wakes exactly the thread that runs next (no thundering herd) and
// the woken thread never has to re-take a mutex before it can run.
// The word is an ordinary std::atomic, so the happens-before edge of a hand-off
// is the store(release) / load(acquire) pair (ThreadSanitizer sees it); the
// syscall only puts the thread to sleep and wakes it.
//
// Under a simulator (platform.h) the waits and the wake go to its event
// queue instead of the kernel; the check costs one thread-local load on
// these slow paths only.
//
//   FutexWord w{kWaiting};
//   waiter:  while (w.WaitWhile(kWaiting, deadline_ns) == kWaiting && NowNs() < deadline_ns) {}
//   waker:   w.Set(kGranted); w.Wake();
#pragma once

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>

#include "gil/platform.h"

namespace gillab::gil {

class FutexWord {
 public:
  explicit FutexWord(uint32_t value = 0) : word_(value) {}

  uint32_t Load() const { return word_.load(std::memory_order_acquire); }
  void Set(uint32_t value) { word_.store(value, std::memory_order_release); }
  uint32_t Exchange(uint32_t value) { return word_.exchange(value, std::memory_order_acq_rel); }
  bool CompareExchange(uint32_t expected, uint32_t desired) {
    return word_.compare_exchange_strong(expected, desired, std::memory_order_acq_rel);
  }

  // Wakes the one thread sleeping on this word, if any. Calling it after the
  // sleeper has already left (and even freed the word) is harmless: the kernel
  // only looks the address up, and every sleeper re-checks its word.
  void Wake() {
    if (Platform* p = ThreadPlatform()) [[unlikely]] {
      p->WakeWord(&word_, 1);
      return;
    }
    syscall(SYS_futex, &word_, FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
  }

  // Sleeps once, at most `timeout_ns`, if the word holds `value`; reads no
  // clock (the hand-off path calls it, and a clock read costs ~80 ns on the
  // reference VMs). Returns the word; *timed_out says whether the timeout
  // passed. A spurious wake-up returns early with the word unchanged and
  // *timed_out false: the caller decides how to go on waiting.
  uint32_t WaitOnce(uint32_t value, int64_t timeout_ns, bool* timed_out) {
    *timed_out = false;
    const uint32_t now = Load();
    if (now != value) return now;
    if (Platform* p = ThreadPlatform()) [[unlikely]] {
      *timed_out = p->WaitOnWord(word_, value, p->NowNs() + timeout_ns);
      return Load();
    }
    timespec ts{};
    ts.tv_sec = timeout_ns / 1'000'000'000;
    ts.tv_nsec = timeout_ns % 1'000'000'000;
    // FUTEX_WAIT takes a relative CLOCK_MONOTONIC timeout.
    long rc = syscall(SYS_futex, &word_, FUTEX_WAIT_PRIVATE, value, &ts, nullptr, 0);
    if (rc == -1 && errno == ETIMEDOUT) *timed_out = true;
    return Load();
  }

  // Sleeps while the word holds `value`, until `deadline_ns` on the NowNs()
  // clock (CLOCK_MONOTONIC, give or take clock.h's C2 bound of ~100 ns);
  // deadline_ns <= 0 means no deadline. Returns the
  // word's value on waking: still `value` means the deadline passed.
  uint32_t WaitWhile(uint32_t value, int64_t deadline_ns) {
    for (;;) {
      uint32_t now = Load();
      if (now != value) return now;
      if (Platform* p = ThreadPlatform()) [[unlikely]] {
        if (p->WaitOnWord(word_, value, deadline_ns)) return Load();
        continue;
      }
      timespec ts{};
      timespec* timeout = nullptr;
      if (deadline_ns > 0) {
        ts.tv_sec = deadline_ns / 1'000'000'000;
        ts.tv_nsec = deadline_ns % 1'000'000'000;
        timeout = &ts;
      }
      // FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline, the
      // clock of std::chrono::steady_clock that NowNs() follows.
      long rc = syscall(SYS_futex, &word_, FUTEX_WAIT_BITSET_PRIVATE, value, timeout, nullptr,
                        FUTEX_BITSET_MATCH_ANY);
      if (rc == -1 && errno == ETIMEDOUT) return Load();
      // Woken, interrupted, or the word changed before we slept: look again.
    }
  }

 private:
  std::atomic<uint32_t> word_;
};

}  // namespace gillab::gil
