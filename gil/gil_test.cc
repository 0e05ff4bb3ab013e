// gil_test.cc — the contract of gil.h (I1–I5, statistics, MakeGil), checked
// for every policy where the property is general.
#include "gil/gil.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <atomic>
#include <thread>
#include <vector>

#include "gil/error.h"
#include "gil/newgil_lock.h"
#include "gil/queued_lock.h"
#include "gil/test_util.h"

namespace gillab::gil {
namespace {

using testing::kMs;
using testing::kSlowdown;
using testing::WaitUntil;

std::vector<std::string> ExclusivePolicies() {
  std::vector<std::string> names;
  for (const auto& n : PolicyNames())
    if (PolicyTraitsOf(n).exclusive) names.push_back(n);
  return names;
}

// Threads parked waiting for the lock, for the policies that can tell.
int Waiting(Gil& gil) {
  if (auto* q = dynamic_cast<QueuedLock*>(&gil)) return q->waiting();
  if (auto* n = dynamic_cast<NewGilLock*>(&gil)) return n->waiting();
  return -1;
}

std::string ParamName(const ::testing::TestParamInfo<std::string>& info) { return info.param; }

class ExclusiveGil : public ::testing::TestWithParam<std::string> {};
class EveryGil : public ::testing::TestWithParam<std::string> {};
// Policies whose waiters ask the holder to drop (mutex never does, none has no holder).
class RequestingGil : public ::testing::TestWithParam<std::string> {};

// I1: many threads increment a plain (non-atomic) counter under the lock with
// a read-pause-write, yielding now and then; any overlap loses increments
// (and ThreadSanitizer reports the race).
TEST_P(ExclusiveGil, I1MutualExclusion) {
  auto gil = MakeGil(GetParam(), {.switch_interval_us = 200});
  constexpr int kThreads = 6;
  const int iterations = kSlowdown > 1 ? 400 : 1500;
  int64_t counter = 0;  // deliberately not atomic
  std::vector<int64_t> increments(kThreads, 0);  // each thread's own count of what it added
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      auto me = gil->Attach(Role::kCpu, "t" + std::to_string(i));
      for (int k = 0; k < iterations; ++k) {
        gil->Acquire(*me);
        const int64_t seen = counter;
        testing::BurnCpu(20);
        counter = seen + 1;
        increments[i]++;
        if (k % 7 == 0 || gil->DropRequested()) {
          gil->Yield(*me);
          counter++;
          increments[i]++;
        }
        gil->Release(*me);
      }
    });
  }
  for (auto& t : threads) t.join();
  int64_t expected = 0;
  for (int64_t n : increments) {
    EXPECT_GE(n, iterations + (iterations + 6) / 7);
    expected += n;
  }
  EXPECT_EQ(counter, expected);
}

// I2: only the holder releases or yields; the lock is not re-entrant.
TEST_P(ExclusiveGil, I2ReleaseByNonHolderAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        auto gil = MakeGil(GetParam());
        auto me = gil->Attach(Role::kIo, "lonely");
        gil->Release(*me);
      },
      "gil misuse: Release by a non-holder by thread lonely");
}

TEST_P(ExclusiveGil, I2ReleaseOfAnotherThreadsHoldAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        auto gil = MakeGil(GetParam());
        auto holder = gil->Attach(Role::kIo, "holder");
        gil->Acquire(*holder);
        std::thread([&] {
          auto intruder = gil->Attach(Role::kCpu, "intruder");
          gil->Release(*intruder);
        }).join();
      },
      "gil misuse: Release by a non-holder by thread intruder");
}

TEST_P(ExclusiveGil, I2YieldByNonHolderAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        auto gil = MakeGil(GetParam());
        auto me = gil->Attach(Role::kCpu, "yielder");
        gil->Yield(*me);
      },
      "gil misuse: Yield by a non-holder by thread yielder");
}

TEST_P(ExclusiveGil, I2ReentrantAcquireAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        auto gil = MakeGil(GetParam());
        auto me = gil->Attach(Role::kIo, "again");
        gil->Acquire(*me);
        gil->Acquire(*me);
      },
      "gil misuse: re-entrant Acquire by thread again");
}

// I4: Yield returns holding, also when another thread was waiting and ran
// its critical section in between.
TEST_P(ExclusiveGil, I4YieldReturnsHolding) {
  auto gil = MakeGil(GetParam(), {.switch_interval_us = 500});
  auto me = gil->Attach(Role::kCpu, "main");
  std::atomic<bool> other_inside{false};
  std::atomic<bool> stop{false};
  std::atomic<int> other_rounds{0};
  gil->Acquire(*me);
  gil->Yield(*me);  // nobody waiting
  EXPECT_TRUE(gil->HeldBy(*me));
  std::thread other([&] {
    auto t = gil->Attach(Role::kIo, "other");
    while (!stop.load()) {
      gil->Acquire(*t);
      other_inside.store(true);
      std::this_thread::sleep_for(std::chrono::microseconds(100));
      other_inside.store(false);
      other_rounds++;
      gil->Release(*t);
    }
  });
  for (int i = 0; i < 50; ++i) {
    gil->Yield(*me);
    EXPECT_TRUE(gil->HeldBy(*me));
    EXPECT_FALSE(other_inside.load()) << "Yield returned while the other thread was inside";
    std::this_thread::sleep_for(std::chrono::microseconds(50));
    EXPECT_FALSE(other_inside.load());
  }
  stop.store(true);
  gil->Release(*me);
  other.join();
  EXPECT_FALSE(gil->HeldBy(*me));
}

// The eval breaker: a holder that only checks DropRequested() at its check
// points, as the VM does, lets a waiting thread in within a bounded time.
TEST_P(RequestingGil, WaiterDropRequestIsHonouredAtCheckPoint) {
  auto gil = MakeGil(GetParam(), {.switch_interval_us = 2000});
  auto me = gil->Attach(Role::kCpu, "holder");
  std::atomic<bool> waiter_got_it{false};
  gil->Acquire(*me);
  std::unique_ptr<ThreadState> waiter_state;
  std::thread waiter([&] {
    waiter_state = gil->Attach(Role::kIo, "waiter");
    gil->Acquire(*waiter_state);
    waiter_got_it.store(true);
    gil->Release(*waiter_state);
  });
  const int64_t start_ns = NowNs();
  const int64_t deadline_ns = start_ns + 5000 * kMs * kSlowdown;
  // The "VM loop": work, and at each check point honour a drop request.
  while (!waiter_got_it.load() && NowNs() < deadline_ns) {
    testing::BurnCpu(1000);
    if (gil->DropRequested()) gil->Yield(*me);
  }
  gil->Release(*me);
  waiter.join();
  EXPECT_TRUE(waiter_got_it.load()) << "the waiter never got the lock";
  EXPECT_LT(NowNs() - start_ns, 5000 * kMs * kSlowdown);
  EXPECT_GE(me->stats().forced_drops, 1u);
  EXPECT_GE(waiter_state->stats().yield_requests, 1u);
  EXPECT_GE(me->handoffs(), 1u);
}

// I5: a hand-off clears the drop request; a thread still waiting asks again
// after its interval, so every holder below is asked to drop in its turn.
// The main thread keeps taking part (yield when asked) until both others
// have held, so whoever holds always has somebody waiting behind it, whatever
// order the policy serves in (newgil promises none).
TEST_P(RequestingGil, I5WaiterRequestsAgainAfterAHandOff) {
  auto gil = MakeGil(GetParam(), {.switch_interval_us = 10'000});
  auto holder = gil->Attach(Role::kCpu, "holder");
  gil->Acquire(*holder);
  constexpr int kWaiters = 2;
  std::atomic<int> held{0};
  std::atomic<int> asked_while_holding{0};
  std::vector<std::thread> waiters;
  for (int i = 0; i < kWaiters; ++i) {
    waiters.emplace_back([&, i] {
      auto me = gil->Attach(Role::kCpu, "w" + std::to_string(i));
      gil->Acquire(*me);
      held++;
      // Hold, polling the eval breaker, until somebody still waiting asks again.
      if (WaitUntil([&] { return gil->DropRequested(); })) asked_while_holding++;
      gil->Release(*me);
    });
  }
  EXPECT_TRUE(WaitUntil([&] { return Waiting(*gil) == kWaiters; }));
  for (int round = 0; round < 10 && held.load() < kWaiters; ++round) {
    EXPECT_TRUE(WaitUntil([&] { return gil->DropRequested(); })) << "round " << round;
    gil->Yield(*holder);
  }
  gil->Release(*holder);
  for (auto& t : waiters) t.join();
  EXPECT_EQ(held.load(), kWaiters);
  // Each waiter held after a hand-off that cleared the request, and was asked again.
  EXPECT_EQ(asked_while_holding.load(), kWaiters);
  EXPECT_GE(holder->stats().yield_requests, 1u);
}

TEST(MutexLock, NeverRequestsADrop) {
  auto gil = MakeGil("mutex", {.switch_interval_us = 100});
  auto me = gil->Attach(Role::kCpu, "holder");
  gil->Acquire(*me);
  std::thread waiter([&] {
    auto t = gil->Attach(Role::kIo, "waiter");
    gil->Acquire(*t);
    gil->Release(*t);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_FALSE(gil->DropRequested());
  gil->Release(*me);
  waiter.join();
  EXPECT_EQ(gil->check_interval(), 100);
}

// Every acquisition ends in a Release or a Yield, or is still held; every
// switch of holder is one hand-off of the previous holder.
// The fast path: an Acquire nobody contends waits exactly 0 ns (no clock is
// read for it) and is counted as uncontended; a contended one waits > 0.
TEST_P(EveryGil, UncontendedAcquireWaitsExactlyZero) {
  auto gil = MakeGil(GetParam(), {.switch_interval_us = 100'000});
  auto me = gil->Attach(Role::kCpu, "alone");
  for (int i = 0; i < 10; ++i) {
    gil->Acquire(*me);
    testing::BurnCpu(1000);
    gil->Release(*me);
  }
  const ThreadStats& s = me->stats();
  EXPECT_EQ(s.acquisitions, 10u);
  EXPECT_EQ(s.uncontended, 10u);
  EXPECT_EQ(s.wait_ns, 0u);
  EXPECT_EQ(s.wait_hist_ns.count(), 10u);
  EXPECT_EQ(s.wait_hist_ns.max(), 0);
  EXPECT_GT(s.hold_ns, 0u);
  if (!PolicyTraitsOf(GetParam()).exclusive) return;
  // Now a second thread has to wait for it.
  gil->Acquire(*me);
  std::thread other([&] {
    auto t = gil->Attach(Role::kIo, "other");
    gil->Acquire(*t);
    gil->Release(*t);
    EXPECT_EQ(t->stats().uncontended, 0u);
    EXPECT_GT(t->stats().wait_ns, 0u);
  });
  EXPECT_TRUE(WaitUntil([&] { return gil->SnapshotHold().waiting == 1; }));
  gil->Release(*me);
  other.join();
}

TEST_P(EveryGil, StatsAddUp) {
  auto gil = MakeGil(GetParam(), {.switch_interval_us = 300});
  constexpr int kThreads = 4;
  constexpr uint64_t kRounds = 200;
  std::vector<std::unique_ptr<ThreadState>> states(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      states[i] = gil->Attach(Role::kCpu, "s" + std::to_string(i));
      for (uint64_t k = 0; k < kRounds; ++k) {
        gil->Acquire(*states[i]);
        if (k % 3 == 0) gil->Yield(*states[i]);
        if (gil->DropRequested()) gil->Yield(*states[i]);
        gil->Release(*states[i]);
      }
    });
  }
  for (auto& t : threads) t.join();
  // One more thread that is still holding when the figures are read.
  auto last = gil->Attach(Role::kIo, "last");
  gil->Acquire(*last);
  states.push_back(std::move(last));

  uint64_t handoffs = 0;
  std::vector<int> indices;
  for (size_t i = 0; i < states.size(); ++i) {
    const ThreadStats& s = states[i]->stats();
    const bool is_last = i == kThreads;
    EXPECT_EQ(gil->HeldBy(*states[i]), is_last);
    const uint64_t holding = is_last ? 1 : 0;
    EXPECT_EQ(s.acquisitions, s.voluntary_releases + s.forced_drops + holding) << "thread " << i;
    EXPECT_EQ(s.voluntary_releases, is_last ? 0u : kRounds);
    EXPECT_GE(s.forced_drops, is_last ? 0u : (kRounds + 2) / 3);
    EXPECT_EQ(s.wait_hist_ns.count(), s.acquisitions);
    EXPECT_EQ(static_cast<uint64_t>(s.wait_hist_ns.sum()), s.wait_ns);
    if (!is_last) {
      EXPECT_GT(s.hold_ns, 0u);
    }
    indices.push_back(states[i]->index());
    handoffs += states[i]->handoffs();
  }
  std::sort(indices.begin(), indices.end());
  EXPECT_EQ(indices, (std::vector<int>{0, 1, 2, 3, 4}));
  const LockStats& lock = gil->lock_stats();
  if (!gil->traits().exclusive) {
    EXPECT_EQ(lock.switches, 0u);
    EXPECT_EQ(handoffs, 0u);
  } else {
    EXPECT_EQ(handoffs, lock.switches);
    EXPECT_EQ(lock.handoff_ns.count(), lock.switches);
    EXPECT_GE(lock.switches, static_cast<uint64_t>(kThreads));  // at least into each thread once
  }
  gil->Release(*states.back());
}

TEST(Gil, AttachRecordsOrderRoleAndThread) {
  auto gil = MakeGil("ticket");
  auto a = gil->Attach(Role::kIo, "a", 3);
  pid_t other_tid = 0;
  std::unique_ptr<ThreadState> b;
  std::thread([&] {
    b = gil->Attach(Role::kCpu, "b");
    other_tid = CurrentTid();
  }).join();
  EXPECT_EQ(a->index(), 0);
  EXPECT_EQ(b->index(), 1);
  EXPECT_EQ(a->role(), Role::kIo);
  EXPECT_EQ(a->name(), "a");
  EXPECT_EQ(a->lock_priority(), 3);
  EXPECT_EQ(a->tid(), CurrentTid());
  EXPECT_EQ(b->tid(), other_tid);
  EXPECT_NE(a->tid(), b->tid());
  gil->SetLockPriority(*a, 7);
  EXPECT_EQ(a->lock_priority(), 7);
}

TEST(Gil, RoleNamesRoundTrip) {
  for (Role r : {Role::kIo, Role::kCpu, Role::kClient, Role::kOther}) {
    EXPECT_EQ(ParseRole(RoleName(r)), r);
  }
  EXPECT_EQ(RoleName(Role::kIo), "io");
  EXPECT_EQ(RoleName(Role::kClient), "client");
  EXPECT_FALSE(ParseRole("disk").has_value());
  EXPECT_FALSE(ParseRole("").has_value());
}

TEST(MakeGil, KnowsEveryPolicyByName) {
  EXPECT_EQ(PolicyNames(), (std::vector<std::string>{"mutex", "ticket", "priority", "newgil", "none"}));
  for (const auto& name : PolicyNames()) {
    auto gil = MakeGil(name);
    EXPECT_EQ(gil->name(), name);
    EXPECT_FALSE(PolicySummary(name).empty()) << name;
    EXPECT_EQ(&gil->traits(), &PolicyTraitsOf(name));
    EXPECT_EQ(gil->check_interval(), gil->traits().uses_ticks ? 100 : 0);
    EXPECT_EQ(gil->RequestsDrops(), gil->traits().requests_drops);
  }
  EXPECT_TRUE(PolicySummary("bogus").empty());
  EXPECT_THROW(PolicyTraitsOf("bogus"), UsageError);
}

// The registry's rows, spelled out: a policy's behaviour that the VM, the
// stall monitor, the trace and the runner rely on is this data, not its name.
TEST(PolicyTraits, EachPolicyDeclaresWhatItDoes) {
  struct Expected {
    const char* name;
    bool exclusive, requests_drops, uses_ticks, forced_switching, lock_priority, io_priority_avoids_convoy;
  };
  const Expected rows[] = {
      {"mutex", true, false, true, false, false, false},
      {"ticket", true, true, false, false, false, false},
      {"priority", true, true, false, false, true, true},
      {"newgil", true, true, false, true, false, false},
      {"none", false, false, false, false, false, false},
  };
  ASSERT_EQ(std::size(rows), PolicyNames().size());
  for (const Expected& e : rows) {
    SCOPED_TRACE(e.name);
    const PolicyTraits& t = PolicyTraitsOf(e.name);
    EXPECT_EQ(t.exclusive, e.exclusive);
    EXPECT_EQ(t.requests_drops, e.requests_drops);
    EXPECT_EQ(t.uses_ticks, e.uses_ticks);
    EXPECT_EQ(t.uses_forced_switching, e.forced_switching);
    EXPECT_EQ(t.uses_lock_priority, e.lock_priority);
    EXPECT_EQ(t.io_priority_avoids_convoy, e.io_priority_avoids_convoy);
    // Every exclusive policy makes an I/O request wait while CPU threads spin.
    const double wait_with_one_cpu_thread =
        t.convoy_fixed_us + t.convoy_intervals_per_cpu_thread + t.convoy_intervals_offset;
    EXPECT_EQ(wait_with_one_cpu_thread > 0, e.exclusive);
  }
}

TEST(MakeGil, RejectsUnknownPolicyAndBadOptions) {
  try {
    MakeGil("fair");
    FAIL() << "no exception";
  } catch (const UsageError& e) {
    EXPECT_STREQ(e.what(), "unknown policy 'fair' (choose from mutex, ticket, priority, newgil, none)");
  }
  EXPECT_THROW(MakeGil("newgil", {.switch_interval_us = 0}), UsageError);
  EXPECT_THROW(MakeGil("ticket", {.switch_interval_us = -5}), UsageError);
  EXPECT_THROW(MakeGil("mutex", {.check_interval = 0}), UsageError);
}

TEST(NoLock, LetsEveryThreadInAtOnceAndNeverRequests) {
  auto gil = MakeGil("none");
  auto a = gil->Attach(Role::kCpu, "a");
  gil->Acquire(*a);
  std::atomic<bool> b_in{false};
  std::thread([&] {
    auto b = gil->Attach(Role::kCpu, "b");
    gil->Acquire(*b);  // would block forever under any exclusive policy
    b_in.store(true);
    gil->Release(*b);
  }).join();
  EXPECT_TRUE(b_in.load());
  EXPECT_FALSE(gil->DropRequested());
  gil->Yield(*a);
  EXPECT_TRUE(gil->HeldBy(*a));
  gil->Release(*a);
  EXPECT_EQ(a->stats().acquisitions, 2u);
}

INSTANTIATE_TEST_SUITE_P(Policies, ExclusiveGil, ::testing::ValuesIn(ExclusivePolicies()), ParamName);
INSTANTIATE_TEST_SUITE_P(Policies, EveryGil, ::testing::ValuesIn(PolicyNames()), ParamName);
INSTANTIATE_TEST_SUITE_P(Policies, RequestingGil, ::testing::Values("ticket", "priority", "newgil"),
                         ParamName);

}  // namespace
}  // namespace gillab::gil
