// ticket_lock_test.cc — `ticket`: strict arrival order, yielders to the back.
#include "gil/ticket_lock.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "gil/test_util.h"

namespace gillab::gil {
namespace {

using testing::WaitUntil;

// Starts `count` threads one after the other, each queueing only once the
// previous one is parked; each records its number when it gets the lock.
std::vector<std::thread> QueueInOrder(TicketLock& lock, int count, std::vector<int>& served) {
  std::vector<std::thread> threads;
  for (int i = 0; i < count; ++i) {
    threads.emplace_back([&lock, &served, i] {
      auto me = lock.Attach(Role::kCpu, "w" + std::to_string(i));
      lock.Acquire(*me);
      served.push_back(i);  // guarded by the lock itself
      lock.Release(*me);
    });
    EXPECT_TRUE(WaitUntil([&] { return lock.waiting() == i + 1; })) << "thread " << i << " never queued";
  }
  return threads;
}

TEST(TicketLock, HandsOffInArrivalOrder) {
  TicketLock lock({.switch_interval_us = 1'000'000});
  auto me = lock.Attach(Role::kIo, "main");
  lock.Acquire(*me);
  std::vector<int> served;
  auto threads = QueueInOrder(lock, 5, served);
  lock.Release(*me);
  for (auto& t : threads) t.join();
  EXPECT_EQ(served, (std::vector<int>{0, 1, 2, 3, 4}));
}

TEST(TicketLock, YieldingHolderGoesToTheBackOfTheQueue) {
  TicketLock lock({.switch_interval_us = 1'000'000});
  auto me = lock.Attach(Role::kIo, "main");
  lock.Acquire(*me);
  std::vector<int> served;
  auto threads = QueueInOrder(lock, 3, served);
  lock.Yield(*me);  // everybody already queued runs before main is back
  served.push_back(-1);
  lock.Release(*me);
  for (auto& t : threads) t.join();
  EXPECT_EQ(served, (std::vector<int>{0, 1, 2, -1}));
  EXPECT_EQ(me->stats().forced_drops, 1u);
  EXPECT_EQ(me->handoffs(), 1u);  // the yield; the final release found nobody waiting
}

TEST(TicketLock, WaiterRequestsDropOnlyAfterTheInterval) {
  constexpr int64_t kIntervalUs = 100'000;
  TicketLock lock({.switch_interval_us = kIntervalUs});
  auto me = lock.Attach(Role::kCpu, "main");
  lock.Acquire(*me);
  int64_t queued_ns = 0;
  std::thread waiter([&] {
    auto w = lock.Attach(Role::kIo, "waiter");
    queued_ns = NowNs();
    lock.Acquire(*w);
    lock.Release(*w);
  });
  ASSERT_TRUE(WaitUntil([&] { return lock.DropRequested(); }));
  const int64_t seen_ns = NowNs();
  lock.Yield(*me);
  lock.Release(*me);
  waiter.join();
  EXPECT_GE(seen_ns - queued_ns, kIntervalUs * 1000 * 9 / 10);
}

}  // namespace
}  // namespace gillab::gil
