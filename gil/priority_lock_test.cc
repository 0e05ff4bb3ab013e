// priority_lock_test.cc — `priority`: best waiter first, preemption at the
// next check point, no hand-off to a lower waiter on a stale request.
#include "gil/priority_lock.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "gil/test_util.h"

namespace gillab::gil {
namespace {

using testing::kMs;
using testing::kSlowdown;
using testing::WaitUntil;

TEST(PriorityLock, ServesHighestWaiterFirst) {
  PriorityLock lock({.switch_interval_us = 1'000'000});
  auto me = lock.Attach(Role::kIo, "main", 5);  // outranks all: their requests change nothing
  lock.Acquire(*me);
  const std::vector<int> priorities = {0, 2, 1, 2, 0};
  std::vector<int> served;
  std::vector<std::thread> threads;
  for (size_t i = 0; i < priorities.size(); ++i) {
    threads.emplace_back([&, i] {
      auto w = lock.Attach(Role::kCpu, "w" + std::to_string(i), priorities[i]);
      lock.Acquire(*w);
      served.push_back(static_cast<int>(i));
      lock.Release(*w);
    });
    ASSERT_TRUE(WaitUntil([&] { return lock.waiting() == static_cast<int>(i) + 1; }));
  }
  EXPECT_FALSE(lock.DropRequested());
  lock.Release(*me);
  for (auto& t : threads) t.join();
  // priority 2 (arrival 1, 3), then 1 (2), then 0 (0, 4)
  EXPECT_EQ(served, (std::vector<int>{1, 3, 2, 0, 4}));
}

TEST(PriorityLock, HigherWaiterPreemptsAtNextCheckPoint) {
  PriorityLock lock({.switch_interval_us = 1'000'000});  // 1 s: far above the bound below
  auto cpu = lock.Attach(Role::kCpu, "cpu", 0);
  lock.Acquire(*cpu);
  std::atomic<int64_t> asked_ns{0};
  std::atomic<bool> io_done{false};
  int64_t io_wait_ns = 0;
  std::thread io([&] {
    auto w = lock.Attach(Role::kIo, "io", 1);
    asked_ns.store(NowNs());
    lock.Acquire(*w);
    io_wait_ns = NowNs() - asked_ns.load();
    lock.Release(*w);
    io_done.store(true);
  });
  // The cpu thread's "VM loop": check points every few microseconds.
  int64_t seen_ns = 0;
  const int64_t deadline_ns = NowNs() + 5000 * kMs * kSlowdown;
  while (!io_done.load() && NowNs() < deadline_ns) {
    testing::BurnCpu(500);
    if (lock.DropRequested()) {
      if (seen_ns == 0) seen_ns = NowNs();
      lock.Yield(*cpu);
    }
  }
  lock.Release(*cpu);
  io.join();
  ASSERT_NE(seen_ns, 0) << "the higher waiter never asked for the lock";
  EXPECT_LT(seen_ns - asked_ns.load(), 200 * kMs * kSlowdown);
  EXPECT_LT(io_wait_ns, 200 * kMs * kSlowdown);
  EXPECT_EQ(cpu->stats().forced_drops, 1u);
}

TEST(PriorityLock, LowerWaiterNeverRequestsADrop) {
  PriorityLock lock({.switch_interval_us = 5'000});
  auto io = lock.Attach(Role::kIo, "io", 1);
  lock.Acquire(*io);
  std::unique_ptr<ThreadState> cpu;
  std::thread waiter([&] {
    cpu = lock.Attach(Role::kCpu, "cpu", 0);
    lock.Acquire(*cpu);
    lock.Release(*cpu);
  });
  ASSERT_TRUE(WaitUntil([&] { return lock.waiting() == 1; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(60));  // twelve intervals
  EXPECT_FALSE(lock.DropRequested());
  lock.Release(*io);
  waiter.join();
  EXPECT_EQ(cpu->stats().yield_requests, 0u);
  EXPECT_EQ(cpu->stats().acquisitions, 1u);
}

TEST(PriorityLock, EqualWaitersRoundRobinAfterTheInterval) {
  constexpr int64_t kIntervalUs = 100'000;
  PriorityLock lock({.switch_interval_us = kIntervalUs});
  auto a = lock.Attach(Role::kCpu, "a", 1);
  lock.Acquire(*a);
  int64_t asked_ns = 0;
  std::thread waiter([&] {
    auto b = lock.Attach(Role::kCpu, "b", 1);
    asked_ns = NowNs();
    lock.Acquire(*b);
    lock.Release(*b);
  });
  ASSERT_TRUE(WaitUntil([&] { return lock.DropRequested(); }));
  const int64_t seen_ns = NowNs();
  lock.Yield(*a);  // equal waiter: handed off
  EXPECT_EQ(a->handoffs(), 1u);
  lock.Release(*a);
  waiter.join();
  EXPECT_GE(seen_ns - asked_ns, kIntervalUs * 1000 * 9 / 10);
}

TEST(PriorityLock, YieldKeepsTheLockWhenOutrankingEveryWaiter) {
  PriorityLock lock({.switch_interval_us = 1'000'000});
  auto io = lock.Attach(Role::kIo, "io", 1);
  lock.Acquire(*io);
  std::atomic<bool> cpu_ran{false};
  std::thread waiter([&] {
    auto cpu = lock.Attach(Role::kCpu, "cpu", 0);
    lock.Acquire(*cpu);
    cpu_ran.store(true);
    lock.Release(*cpu);
  });
  ASSERT_TRUE(WaitUntil([&] { return lock.waiting() == 1; }));
  lock.Yield(*io);  // e.g. answering a stale request
  EXPECT_TRUE(lock.HeldBy(*io));
  EXPECT_FALSE(cpu_ran.load());
  EXPECT_EQ(io->handoffs(), 0u);
  EXPECT_EQ(lock.waiting(), 1);
  lock.Release(*io);
  waiter.join();
  EXPECT_TRUE(cpu_ran.load());
}

TEST(PriorityLock, HolderLoweringItselfBelowAWaiterGetsADropRequest) {
  PriorityLock lock({.switch_interval_us = 1'000'000});
  auto holder = lock.Attach(Role::kCpu, "holder", 2);
  lock.Acquire(*holder);
  std::unique_ptr<ThreadState> waiter_state;
  std::thread waiter([&] {
    waiter_state = lock.Attach(Role::kIo, "waiter", 1);
    lock.Acquire(*waiter_state);
    lock.Release(*waiter_state);
  });
  ASSERT_TRUE(WaitUntil([&] { return lock.waiting() == 1; }));
  EXPECT_FALSE(lock.DropRequested());
  const int64_t lowered_ns = NowNs();
  lock.SetLockPriority(*holder, 0);  // as the VM's set_priority native does
  ASSERT_TRUE(WaitUntil([&] { return lock.DropRequested(); }, 200 * kMs * kSlowdown));
  EXPECT_LT(NowNs() - lowered_ns, 200 * kMs * kSlowdown);
  lock.Yield(*holder);
  EXPECT_EQ(holder->handoffs(), 1u);
  lock.Release(*holder);
  waiter.join();
  EXPECT_EQ(waiter_state->stats().yield_requests, 1u);
}

}  // namespace
}  // namespace gillab::gil
