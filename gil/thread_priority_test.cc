// thread_priority_test.cc — parsing both priority knobs; applying and reading
// back an OS priority, and reporting a refusal.
#include "gil/thread_priority.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "gil/error.h"

namespace gillab::gil {
namespace {

using Kind = OsPriority::Kind;

TEST(ThreadPriority, ParsesEveryOsPriorityForm) {
  struct Case {
    const char* text;
    Kind kind;
    int value;
    const char* canonical;
  };
  for (const Case& c : {Case{"nice:10", Kind::kNice, 10, "nice:10"}, Case{"nice:-20", Kind::kNice, -20, "nice:-20"},
                        Case{"nice:19", Kind::kNice, 19, "nice:19"}, Case{"batch", Kind::kBatch, 0, "batch"},
                        Case{"batch:5", Kind::kBatch, 5, "batch:5"}, Case{"idle", Kind::kIdle, 0, "idle"},
                        Case{"fifo:5", Kind::kFifo, 5, "fifo:5"}, Case{"rr:99", Kind::kRr, 99, "rr:99"},
                        Case{"default", Kind::kDefault, 0, "default"}}) {
    const OsPriority p = ParseOsPriority(c.text);
    EXPECT_EQ(p.kind, c.kind) << c.text;
    EXPECT_EQ(p.value, c.value) << c.text;
    EXPECT_EQ(p.ToString(), c.canonical);
    EXPECT_EQ(ParseOsPriority(p.ToString()).ToString(), c.canonical);
  }
}

TEST(ThreadPriority, RejectsBadOsPrioritiesWithAClearMessage) {
  for (const char* bad : {"nice:20", "nice:-21", "nice:x", "nice:", "nice", "fifo:0", "fifo:100", "rr",
                          "idle:3", "default:1", "bogus", "", "batch:99"}) {
    try {
      ParseOsPriority(bad);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const UsageError& e) {
      EXPECT_NE(std::string(e.what()).find("bad OS priority '" + std::string(bad) + "'"), std::string::npos)
          << e.what();
    }
  }
  try {
    ParseOsPriority("fifo:100");
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("out of range 1..99"), std::string::npos) << e.what();
  }
}

TEST(ThreadPriority, ParsesLockPrioritiesPerRole) {
  const auto m = ParseLockPriorities("io=1,cpu=0");
  EXPECT_EQ(m, (std::map<Role, int>{{Role::kIo, 1}, {Role::kCpu, 0}}));
  EXPECT_EQ(ParseLockPriorities(" client = -3 "), (std::map<Role, int>{{Role::kClient, -3}}));
  EXPECT_TRUE(ParseLockPriorities("").empty());
  for (const char* bad : {"io=x", "disk=1", "io", "io=1,io=2", "io=1,", "=1"}) {
    EXPECT_THROW(ParseLockPriorities(bad), UsageError) << bad;
  }
  try {
    ParseLockPriorities("disk=1");
  } catch (const UsageError& e) {
    EXPECT_STREQ(e.what(), "bad lock priority 'disk=1': unknown role 'disk' (choose from io, cpu, client, other)");
  }
}

TEST(ThreadPriority, ParsesOsPrioritiesPerRole) {
  const auto m = ParseOsPriorities("cpu=nice:10,io=fifo:5");
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m.at(Role::kCpu).ToString(), "nice:10");
  EXPECT_EQ(m.at(Role::kIo).ToString(), "fifo:5");
  EXPECT_THROW(ParseOsPriorities("cpu=nice:40"), UsageError);
  EXPECT_THROW(ParseOsPriorities("cpu:nice:4"), UsageError);
  EXPECT_THROW(ParseOsPriorities("gpu=idle"), UsageError);
}

// Runs `fn(tid)` against a fresh thread that waits, so the test process's own
// threads keep their priorities.
template <typename Fn>
void WithParkedThread(Fn fn) {
  std::mutex mu;
  std::condition_variable cv;
  pid_t tid = 0;
  bool done = false;
  std::thread t([&] {
    std::unique_lock lock(mu);
    tid = CurrentTid();
    cv.notify_all();
    cv.wait(lock, [&] { return done; });
  });
  {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return tid != 0; });
  }
  fn(tid);
  {
    std::lock_guard lock(mu);
    done = true;
  }
  cv.notify_all();
  t.join();
}

TEST(ThreadPriority, AppliesANiceValueAndReadsItBack) {
  WithParkedThread([](pid_t tid) {
    const OsPriorityResult r = ApplyOsPriority(tid, ParseOsPriority("nice:5"));
    EXPECT_EQ(r.requested, "nice:5");
    EXPECT_TRUE(r.applied) << r.refused;
    EXPECT_TRUE(r.refused.empty()) << r.refused;
    EXPECT_EQ(r.readback, "other nice:5");
    EXPECT_EQ(getpriority(PRIO_PROCESS, static_cast<id_t>(tid)), 5);
  });
  WithParkedThread([](pid_t tid) {
    const OsPriorityResult r = ApplyOsPriority(tid, ParseOsPriority("batch:3"));
    EXPECT_TRUE(r.applied) << r.refused;
    EXPECT_EQ(r.readback, "batch nice:3");
  });
  WithParkedThread([](pid_t tid) {
    const OsPriorityResult r = ApplyOsPriority(tid, ParseOsPriority("idle"));
    EXPECT_TRUE(r.applied) << r.refused;
    EXPECT_EQ(r.readback.rfind("idle", 0), 0u) << r.readback;
  });
}

TEST(ThreadPriority, RealTimeIsAppliedOrReportedRefused) {
  WithParkedThread([](pid_t tid) {
    const OsPriorityResult r = ApplyOsPriority(tid, ParseOsPriority("fifo:3"));
    if (r.applied) {
      EXPECT_EQ(r.readback, "fifo:3");
      EXPECT_TRUE(r.refused.empty());
    } else {
      EXPECT_EQ(r.refused.rfind("EPERM", 0), 0u) << r.refused;
      EXPECT_EQ(r.readback, "other nice:0");
    }
  });
}

TEST(ThreadPriority, ReportsAGoneThreadAsRefused) {
  const OsPriorityResult r = ApplyOsPriority(INT_MAX, ParseOsPriority("nice:3"));
  EXPECT_FALSE(r.applied);
  EXPECT_EQ(r.refused.rfind("ESRCH", 0), 0u) << r.refused;
  EXPECT_TRUE(r.readback.empty());
}

// Runs in a death-test child only: drops root (if we are root) and any nice
// allowance, then asks for a higher priority than it may have.
void AskForHigherPriorityUnprivileged() {
  rlimit none = {};
  setrlimit(RLIMIT_NICE, &none);
  if (getuid() == 0 && setuid(65534) != 0) _exit(3);
  const OsPriorityResult r = ApplyOsPriority(CurrentTid(), ParseOsPriority("nice:-5"));
  std::fprintf(stderr, "refused: %s\n", r.refused.c_str());
  const bool denied = r.refused.rfind("EPERM", 0) == 0 || r.refused.rfind("EACCES", 0) == 0;
  _exit(!r.applied && denied ? 0 : 1);
}

// An unprivileged user may not raise its priority: the refusal is reported
// (setpriority says EACCES for a lower nice value, sched_setscheduler EPERM).
TEST(ThreadPriority, ReportsEpermForAnUnprivilegedUser) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(AskForHigherPriorityUnprivileged(), ::testing::ExitedWithCode(0), "refused: (EPERM|EACCES)");
}

}  // namespace
}  // namespace gillab::gil
