// test_util.h — helpers shared by the gil/ tests: bounded waiting, nothing else.
#pragma once

#include <chrono>
#include <cstdint>
#include <thread>

#include "gil/gil.h"

namespace gillab::gil::testing {

// Sanitizers slow everything down; widen the generous bounds accordingly.
#if defined(GILLAB_SANITIZED)
inline constexpr int64_t kSlowdown = 5;
#else
inline constexpr int64_t kSlowdown = 1;
#endif

inline constexpr int64_t kMs = 1'000'000;

// A few ns of work per step that the compiler cannot remove: the "VM" between check points.
inline void BurnCpu(int steps) {
  for (int i = 0; i < steps; ++i) asm volatile("" ::: "memory");
}

// Polls `done` every 200 us until it holds or `timeout_ns` passes; returns whether it held.
template <typename Pred>
bool WaitUntil(Pred done, int64_t timeout_ns = 5000 * kMs * kSlowdown) {
  const int64_t deadline_ns = NowNs() + timeout_ns;
  while (!done()) {
    if (NowNs() > deadline_ns) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return true;
}

}  // namespace gillab::gil::testing
