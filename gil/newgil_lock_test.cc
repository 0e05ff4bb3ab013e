// newgil_lock_test.cc — `newgil` behaves like CPython 3.2–3.12: no switch
// before the interval, a switch after it, forced switching.
#include "gil/newgil_lock.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "gil/test_util.h"

namespace gillab::gil {
namespace {

using testing::kMs;
using testing::kSlowdown;
using testing::WaitUntil;

constexpr int64_t kIntervalUs = 50'000;

// A cpu thread holds and polls the eval breaker; an io thread asks for the
// lock. Returns (time until the request was seen, the io thread's wait).
struct Switch {
  int64_t request_after_ns = 0;
  int64_t io_wait_ns = 0;
};

Switch MeasureOneSwitch(NewGilLock& lock) {
  auto cpu = lock.Attach(Role::kCpu, "cpu");
  lock.Acquire(*cpu);
  std::atomic<int64_t> asked_ns{0};
  std::atomic<bool> io_done{false};
  Switch result;
  std::thread io([&] {
    auto w = lock.Attach(Role::kIo, "io");
    asked_ns.store(NowNs());
    lock.Acquire(*w);
    result.io_wait_ns = NowNs() - asked_ns.load();
    lock.Release(*w);
    io_done.store(true);
  });
  const int64_t deadline_ns = NowNs() + 5000 * kMs * kSlowdown;
  while (!io_done.load() && NowNs() < deadline_ns) {
    testing::BurnCpu(500);
    if (lock.DropRequested()) {
      if (result.request_after_ns == 0) result.request_after_ns = NowNs() - asked_ns.load();
      lock.Yield(*cpu);
    }
  }
  lock.Release(*cpu);
  io.join();
  return result;
}

TEST(NewGil, DoesNotSwitchBeforeInterval) {
  NewGilLock lock({.switch_interval_us = kIntervalUs});
  const Switch s = MeasureOneSwitch(lock);
  ASSERT_GT(s.request_after_ns, 0) << "no drop request";
  EXPECT_GE(s.request_after_ns, kIntervalUs * 1000 * 9 / 10);
  EXPECT_GE(s.io_wait_ns, kIntervalUs * 1000 * 9 / 10);
}

TEST(NewGil, SwitchesAfterInterval) {
  NewGilLock lock({.switch_interval_us = kIntervalUs});
  const Switch s = MeasureOneSwitch(lock);
  ASSERT_GT(s.request_after_ns, 0) << "no drop request";
  EXPECT_LT(s.request_after_ns, 20 * kIntervalUs * 1000 * kSlowdown);
  EXPECT_LT(s.io_wait_ns, 20 * kIntervalUs * 1000 * kSlowdown);
}

TEST(NewGil, ForcedSwitchingLetsAnotherThreadIn) {
  NewGilLock lock({.switch_interval_us = 1000});
  auto cpu = lock.Attach(Role::kCpu, "cpu");
  for (int round = 0; round < 5; ++round) {
    lock.Acquire(*cpu);
    std::atomic<bool> other_held{false};
    std::thread other([&] {
      auto w = lock.Attach(Role::kIo, "io");
      lock.Acquire(*w);
      other_held.store(true);
      lock.Release(*w);
    });
    ASSERT_TRUE(WaitUntil([&] { return lock.DropRequested(); }));
    lock.Yield(*cpu);
    // The dropper may not take the lock back before the other thread held it.
    EXPECT_TRUE(other_held.load()) << "round " << round;
    lock.Release(*cpu);
    other.join();
  }
  EXPECT_EQ(cpu->stats().forced_drops, 5u);
  EXPECT_EQ(cpu->handoffs(), 5u);
}

TEST(NewGil, NewHolderClearsTheDropRequest) {
  // 20 ms: the dropper, now waiting, must not re-request before io looks.
  NewGilLock lock({.switch_interval_us = 20'000});
  auto cpu = lock.Attach(Role::kCpu, "cpu");
  lock.Acquire(*cpu);
  std::atomic<bool> io_checked{false};
  bool io_saw_request = true;
  std::thread io([&] {
    auto w = lock.Attach(Role::kIo, "io");
    lock.Acquire(*w);
    io_saw_request = lock.DropRequested();
    lock.Release(*w);
    io_checked.store(true);
  });
  ASSERT_TRUE(WaitUntil([&] { return lock.DropRequested(); }));
  lock.Yield(*cpu);
  lock.Release(*cpu);
  io.join();
  EXPECT_FALSE(io_saw_request);
}

TEST(NewGil, YieldWithNobodyWaitingKeepsTheLock) {
  NewGilLock lock({.switch_interval_us = 1000});
  auto cpu = lock.Attach(Role::kCpu, "cpu");
  lock.Acquire(*cpu);
  const int64_t start_ns = NowNs();
  lock.Yield(*cpu);
  EXPECT_LT(NowNs() - start_ns, 500 * kMs * kSlowdown);  // no wait for a switch that cannot come
  EXPECT_TRUE(lock.HeldBy(*cpu));
  EXPECT_EQ(lock.waiting(), 0);
  lock.Release(*cpu);
  EXPECT_EQ(lock.lock_stats().switches, 0u);
}

}  // namespace
}  // namespace gillab::gil
