// clock_test.cc — NowNs() against clock.h's contract: C1 (never backwards per
// thread), C2 (close to CLOCK_MONOTONIC, across re-anchors and sleeps), C3
// (the kernel fallback), on whichever source this machine gives.
#include "gil/clock.h"

#include <gtest/gtest.h>
#include <sched.h>
#include <time.h>

#include <algorithm>
#include <cstdint>
#include <thread>
#include <vector>

namespace gillab::gil {
namespace {

// C2 promises ~100 ns; this bound is generous (preemption only widens the
// bracket, it cannot make a correct clock fail), but a clock whose scale or
// anchor is wrong misses it within one window.
constexpr int64_t kToleranceNs = 5'000;

void SleepNs(int64_t ns) {
  timespec ts{0, static_cast<long>(ns)};
  nanosleep(&ts, nullptr);
}

// Reads NowNs() between two kernel reads for ~`duration_ns`, with gaps of
// varying length (re-anchoring after a sleep as well as at the window's end),
// and returns the worst distance outside the bracket, in ns (0 when inside).
struct Observed {
  int64_t worst_outside_ns = 0;
  int64_t backward_steps = 0;
  int64_t reads = 0;
};

Observed Observe(int64_t duration_ns) {
  Observed o;
  int64_t last = NowNs();
  const int64_t end_ns = KernelNowNs() + duration_ns;
  for (int i = 0; i < 5'000'000 && KernelNowNs() < end_ns; ++i) {
    const int64_t before = KernelNowNs();
    const int64_t now = NowNs();
    const int64_t after = KernelNowNs();
    o.worst_outside_ns = std::max({o.worst_outside_ns, before - now, now - after});
    if (now < last) o.backward_steps++;
    last = now;
    o.reads++;
    // Mostly back to back (re-anchors at the end of each window), sometimes
    // after a pause longer than a window, sometimes after giving up the core.
    if (i % 20'000 == 19'999) SleepNs(1'500'000);
    if (i % 5'000 == 4'999) sched_yield();
  }
  return o;
}

TEST(Clock, StaysWithinMicrosecondsOfClockMonotonic) {
  const Observed o = Observe(300'000'000);
  RecordProperty("source", std::string(ClockSourceName(ActiveClockSource())));
  RecordProperty("worst_outside_ns", std::to_string(o.worst_outside_ns));
  EXPECT_GT(o.reads, 10'000);
  EXPECT_LE(o.worst_outside_ns, kToleranceNs) << "source " << ClockSourceName(ActiveClockSource());
  EXPECT_EQ(o.backward_steps, 0);
}

TEST(Clock, NeverGoesBackwardsOnAnyThread) {
  constexpr int kThreads = 4;
  std::vector<Observed> seen(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) threads.emplace_back([&seen, t] { seen[t] = Observe(200'000'000); });
  for (std::thread& t : threads) t.join();
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_GT(seen[t].reads, 1'000) << "thread " << t;
    EXPECT_EQ(seen[t].backward_steps, 0) << "thread " << t;
    EXPECT_LE(seen[t].worst_outside_ns, kToleranceNs) << "thread " << t;
  }
}

TEST(Clock, ElapsedTimeMatchesTheKernelOverAWindowAndMore) {
  for (const int64_t sleep_ns : {200'000, 3'000'000, 20'000'000}) {
    const int64_t k0 = KernelNowNs();
    const int64_t n0 = NowNs();
    SleepNs(sleep_ns);
    const int64_t n1 = NowNs();
    const int64_t k1 = KernelNowNs();
    // [n0, n1] lies inside [k0, k1] up to the tolerance at each end.
    EXPECT_GE(n1 - n0, sleep_ns) << "slept " << sleep_ns << " ns";
    EXPECT_LE(n1 - n0, k1 - k0 + 2 * kToleranceNs) << "slept " << sleep_ns << " ns";
  }
}

TEST(Clock, FallsBackToTheKernelAndReturnsWithoutGoingBackwards) {
  const ClockSource original = ActiveClockSource();
  int64_t last = NowNs();
  ASSERT_EQ(SetClockSource(ClockSource::kKernel), ClockSource::kKernel);
  EXPECT_EQ(ActiveClockSource(), ClockSource::kKernel);
  // A thread keeps its TSC anchor for at most one window after the switch.
  SleepNs(2 * clock_internal::kAnchorWindowNs);
  for (int i = 0; i < 1000; ++i) {
    const int64_t before = KernelNowNs();
    const int64_t now = NowNs();
    const int64_t after = KernelNowNs();
    ASSERT_GE(now, last);
    // On the kernel clock, a reading is the kernel's own (or this thread's
    // floor from the TSC, at most the tolerance above it).
    ASSERT_LE(now, after + kToleranceNs);
    ASSERT_GE(now, before);
    last = now;
  }
  EXPECT_EQ(SetClockSource(original), original);
  EXPECT_EQ(ActiveClockSource(), original);
  for (int i = 0; i < 1000; ++i) {
    const int64_t now = NowNs();
    ASSERT_GE(now, last);
    last = now;
  }
}

}  // namespace
}  // namespace gillab::gil
