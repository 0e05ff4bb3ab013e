// stall_monitor_test.cc — the stall report of stall_monitor.h: a holder that
// starves a waiter is named once per stall; long holds nobody waits for,
// holders that reach check points, and `priority` holders that outrank their
// waiters are not reported.
#include "gil/stall_monitor.h"

#include <gtest/gtest.h>

#include <mutex>
#include <thread>
#include <vector>

#include "gil/error.h"
#include "gil/test_util.h"

namespace gillab::gil {
namespace {

using testing::BurnCpu;
using testing::kMs;
using testing::WaitUntil;

// Collects reports from the monitor's thread.
struct Reports {
  std::mutex mu;
  std::vector<Stall> stalls;
  StallMonitor::Sink Sink() {
    return [this](const Stall& s) {
      std::lock_guard lock(mu);
      stalls.push_back(s);
    };
  }
  std::vector<Stall> Get() {
    std::lock_guard lock(mu);
    return stalls;
  }
};

// Holds the lock on this thread, burning CPU without check points, for `hold_ns`
// or until `until` holds; returns when released.
template <typename Pred>
void HoldWithoutCheckPoints(Gil& gil, ThreadState& me, int64_t hold_ns, Pred until) {
  gil.Acquire(me);
  const int64_t end_ns = NowNs() + hold_ns;
  while (NowNs() < end_ns && !until()) BurnCpu(1000);
  gil.Release(me);
}

class StallPolicy : public ::testing::TestWithParam<std::string> {};

TEST_P(StallPolicy, ReportsAHolderThatStarvesAWaiterOnceNamingIt) {
  auto gil = MakeGil(GetParam(), {.switch_interval_us = 1000});
  Reports reports;
  StallMonitor monitor(*gil, {.threshold_ms = 100}, reports.Sink());
  auto me = gil->Attach(Role::kCpu, "cpu-0");
  gil->Acquire(*me);
  std::thread waiter([&] {
    auto io = gil->Attach(Role::kIo, "io");
    gil->Acquire(*io);
    gil->Release(*io);
  });
  // We are the stuck holder: no check point, the waiter's drop request ignored.
  EXPECT_TRUE(WaitUntil([&] { return monitor.stalls_reported() > 0; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // ~30 more polls of the same hold
  gil->Release(*me);
  waiter.join();
  const std::vector<Stall> got = reports.Get();
  ASSERT_EQ(got.size(), 1u) << "a stall is reported once, not once per poll";
  EXPECT_EQ(got[0].thread_name, "cpu-0");
  EXPECT_EQ(got[0].role, Role::kCpu);
  EXPECT_GE(got[0].held_ns, 100 * kMs);
  EXPECT_EQ(got[0].waiting, 1);
  EXPECT_EQ(got[0].policy, GetParam());
  EXPECT_EQ(monitor.stalls_reported(), 1u);
}

TEST_P(StallPolicy, StaysQuietWhenNobodyWaits) {
  auto gil = MakeGil(GetParam(), {.switch_interval_us = 1000});
  Reports reports;
  StallMonitor monitor(*gil, {.threshold_ms = 30}, reports.Sink());
  auto me = gil->Attach(Role::kCpu, "cpu-0");
  // A cpu thread alone with the lock while the io thread is in a blocking call.
  HoldWithoutCheckPoints(*gil, *me, 300 * kMs, [] { return false; });
  EXPECT_EQ(monitor.stalls_reported(), 0u);
}

TEST_P(StallPolicy, StaysQuietWhenTheHolderReachesCheckPoints) {
  auto gil = MakeGil(GetParam(), {.switch_interval_us = 1000});
  Reports reports;
  // The threshold stays well above how long a loaded 2-core machine can keep a
  // runnable holder off the CPU (tens of ms): that is a real stall too, but
  // not the one this test is about.
  StallMonitor monitor(*gil, {.threshold_ms = 300}, reports.Sink());
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i) {
    threads.emplace_back([&, i] {
      auto me = gil->Attach(Role::kCpu, "cpu-" + std::to_string(i));
      gil->Acquire(*me);
      int64_t instructions = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        BurnCpu(100);  // the "VM" between two check points
        // The check point: mutex yields every check_interval, the others on request.
        if (gil->DropRequested() || (gil->check_interval() > 0 && ++instructions % 10 == 0)) gil->Yield(*me);
      }
      gil->Release(*me);
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  stop.store(true);
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(monitor.stalls_reported(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Policies, StallPolicy, ::testing::Values("mutex", "ticket", "priority", "newgil"),
                         [](const auto& info) { return info.param; });

TEST(StallMonitor, StaysQuietForAPriorityHolderThatOutranksItsWaiter) {
  auto gil = MakeGil("priority", {.switch_interval_us = 1000});
  Reports reports;
  StallMonitor monitor(*gil, {.threshold_ms = 30}, reports.Sink());
  auto me = gil->Attach(Role::kIo, "io", /*lock_priority=*/1);
  std::atomic<bool> waiter_done{false};
  gil->Acquire(*me);
  std::thread waiter([&] {
    auto cpu = gil->Attach(Role::kCpu, "cpu-0", 0);
    gil->Acquire(*cpu);  // ranks lower: never asks, starvation is the policy's point
    gil->Release(*cpu);
    waiter_done.store(true);
  });
  EXPECT_TRUE(WaitUntil([&] { return gil->SnapshotHold().waiting == 1; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_FALSE(gil->DropRequested());
  gil->Release(*me);
  waiter.join();
  EXPECT_TRUE(waiter_done.load());
  EXPECT_EQ(monitor.stalls_reported(), 0u);
}

TEST(StallMonitor, ReportsWithoutStatisticsFromWhenItFirstSawTheHold) {
  auto gil = MakeGil("ticket", {.switch_interval_us = 1000, .stats = false});
  Reports reports;
  StallMonitor monitor(*gil, {.threshold_ms = 50, .poll_ms = 5}, reports.Sink());
  auto me = gil->Attach(Role::kCpu, "cpu-3");
  gil->Acquire(*me);
  std::thread waiter([&] {
    auto io = gil->Attach(Role::kIo, "io");
    gil->Acquire(*io);
    gil->Release(*io);
  });
  EXPECT_TRUE(WaitUntil([&] { return monitor.stalls_reported() > 0; }));
  gil->Release(*me);
  waiter.join();
  const std::vector<Stall> got = reports.Get();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].thread_name, "cpu-3");
  EXPECT_GE(got[0].held_ns, 50 * kMs);
}

TEST(StallMonitor, DescribesTheStallOnOneLine) {
  const std::string line = DescribeStall(
      {.thread_name = "cpu-0", .role = Role::kCpu, .held_ns = 2'049'000'000, .waiting = 1, .policy = "newgil"});
  EXPECT_EQ(line,
            "stall: thread cpu-0 (role cpu) has held the lock for 2.0 s without a check point "
            "(1 thread waiting, policy newgil)");
}

TEST(StallMonitor, RejectsANonPositiveThreshold) {
  auto gil = MakeGil("ticket");
  EXPECT_THROW(StallMonitor(*gil, {.threshold_ms = 0}), UsageError);
}

TEST(Gil, SnapshotHoldNamesTheHolderAndCountsWaiters) {
  auto gil = MakeGil("ticket", {.switch_interval_us = 100'000});
  EXPECT_FALSE(gil->SnapshotHold().held);
  auto me = gil->Attach(Role::kCpu, "cpu-7");
  const int64_t before_ns = NowNs();
  gil->Acquire(*me);
  const Gil::HoldSnapshot h = gil->SnapshotHold();
  EXPECT_TRUE(h.held);
  EXPECT_EQ(h.holder_index, me->index());
  EXPECT_GE(h.since_ns, before_ns);
  EXPECT_EQ(gil->AttachedThread(h.holder_index).first, "cpu-7");
  EXPECT_EQ(gil->AttachedThread(h.holder_index).second, Role::kCpu);
  std::thread waiter([&] {
    auto io = gil->Attach(Role::kIo, "io");
    gil->Acquire(*io);
    gil->Release(*io);
  });
  EXPECT_TRUE(WaitUntil([&] { return gil->SnapshotHold().waiting == 1; }));
  EXPECT_EQ(gil->SnapshotHold().serial, h.serial) << "the same hold";
  gil->Release(*me);
  waiter.join();
  EXPECT_FALSE(gil->SnapshotHold().held);
  EXPECT_GT(gil->SnapshotHold().serial, h.serial);
  EXPECT_EQ(gil->SnapshotHold().waiting, 0);
}

}  // namespace
}  // namespace gillab::gil
