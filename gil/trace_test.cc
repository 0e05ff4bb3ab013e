// trace_test.cc — the trace recorder's output is a valid, well-formed Chrome
// trace that agrees with the statistics, and the statistics add up.
//
// The workload in every test is the convoy in miniature: an `io` thread that
// sleeps with the lock released and then holds it briefly, against a `cpu-0`
// thread that holds it and yields only when asked (or, for `mutex`, releases
// and re-takes it every few steps like the VM's check-interval countdown).
#include "gil/trace.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <map>
#include <string>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "gil/error.h"
#include "gil/gil.h"
#include "gil/test_util.h"

namespace gillab::gil {
namespace {

using nlohmann::json;
using testing::BurnCpu;
using testing::kMs;
using testing::kSlowdown;

std::string TempPath(const std::string& stem) {
  return ::testing::TempDir() + stem + "-" + std::to_string(getpid()) + ".json";
}

json ReadJson(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path;
  return json::parse(in);  // throws (fails the test) on invalid JSON
}

// What the two threads did, for comparing with the trace.
struct ConvoyRun {
  ThreadStats io, cpu;
  // Per thread: just after Attach returned, and just before / after the last Release.
  int64_t io_attached_ns = 0, io_last_release_ns[2] = {};
  int64_t cpu_attached_ns = 0, cpu_last_release_ns[2] = {};
};

// io: `steps` x (sleep 200 us released, hold ~20 us); cpu: holds and yields when asked.
ConvoyRun RunConvoy(Gil& gil, int steps) {
  ConvoyRun run;
  std::atomic<bool> stop{false};
  std::atomic<bool> cpu_holding{false};
  std::thread cpu([&] {
    auto me = gil.Attach(Role::kCpu, "cpu-0");
    run.cpu_attached_ns = NowNs();
    gil.Acquire(*me);
    cpu_holding.store(true);
    for (int64_t n = 1; !stop.load(std::memory_order_relaxed); ++n) {
      BurnCpu(200);
      if (gil.DropRequested()) gil.Yield(*me);
      if (gil.check_interval() > 0 && n % 50 == 0) {
        gil.Release(*me);
        gil.Acquire(*me);
      }
    }
    run.cpu_last_release_ns[0] = NowNs();
    gil.Release(*me);
    run.cpu_last_release_ns[1] = NowNs();
    run.cpu = me->stats();
  });
  std::thread io([&] {
    auto me = gil.Attach(Role::kIo, "io");
    run.io_attached_ns = NowNs();
    EXPECT_TRUE(testing::WaitUntil([&] { return cpu_holding.load(); }));
    for (int i = 0; i < steps; ++i) {
      gil.Acquire(*me);
      BurnCpu(2000);
      run.io_last_release_ns[0] = NowNs();
      gil.Release(*me);
      run.io_last_release_ns[1] = NowNs();
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    run.io = me->stats();
  });
  io.join();
  stop.store(true);
  cpu.join();
  return run;
}

struct Track {
  std::string name;
  std::vector<json> events;  // X and i, in file order
};

// tid -> track, checking the per-event invariants on the way.
std::map<int64_t, Track> Tracks(const json& trace) {
  std::map<int64_t, Track> tracks;
  for (const json& e : trace.at("traceEvents")) {
    const std::string ph = e.at("ph");
    const int64_t tid = e.at("tid");
    if (ph == "M") {
      if (e.at("name") == "thread_name") tracks[tid].name = e.at("args").at("name");
      continue;
    }
    EXPECT_TRUE(ph == "X" || ph == "i") << e.dump();
    EXPECT_GE(e.at("ts").get<double>(), 0.0) << e.dump();
    if (ph == "X") {
      EXPECT_GE(e.at("dur").get<double>(), 0.0) << e.dump();
    }
    tracks[tid].events.push_back(e);
  }
  return tracks;
}

double SumDurUs(const Track& t, const std::string& name) {
  double us = 0;
  for (const json& e : t.events) {
    if (e.at("name") == name) us += e.at("dur").get<double>();
  }
  return us;
}

int Count(const Track& t, const std::string& name) {
  return static_cast<int>(std::count_if(t.events.begin(), t.events.end(),
                                        [&](const json& e) { return e.at("name") == name; }));
}

class TraceOfEveryPolicy : public ::testing::TestWithParam<std::string> {};

TEST_P(TraceOfEveryPolicy, IsValidChromeJsonThatMatchesTheStats) {
  auto gil = MakeGil(GetParam(), {.switch_interval_us = 500, .check_interval = 100});
  TraceRecorder recorder;
  gil->EnableTrace(&recorder);
  const ConvoyRun run = RunConvoy(*gil, 60);
  const std::string path = TempPath("trace-" + GetParam());
  recorder.WriteChromeJson(path, R"({"test":"convoy","steps":60})");
  const json trace = ReadJson(path);
  std::remove(path.c_str());

  // Metadata: the policy, its settings, the caller's run object, nothing dropped.
  const json& other = trace.at("otherData");
  EXPECT_EQ(other.at("gil").at("policy"), GetParam());
  EXPECT_EQ(other.at("gil").at("switch_interval_us"), 500);
  EXPECT_EQ(other.at("run").at("steps"), 60);
  EXPECT_EQ(other.at("trace").at("dropped_events"), 0);
  EXPECT_GT(other.at("trace").at("recorded_events").get<int64_t>(), 0);

  const std::map<int64_t, Track> tracks = Tracks(trace);
  ASSERT_EQ(tracks.size(), 2u);
  const Track* io = nullptr;
  const Track* cpu = nullptr;
  for (const auto& [tid, t] : tracks) {
    if (t.name == "io") io = &t;
    if (t.name == "cpu-0") cpu = &t;
  }
  ASSERT_NE(io, nullptr) << "no track named io";
  ASSERT_NE(cpu, nullptr) << "no track named cpu-0";

  const double origin_us = 0;
  auto us = [&](int64_t ns) { return static_cast<double>(ns - recorder.origin_ns()) / 1e3; };
  for (const Track* t : {io, cpu}) {
    const bool is_io = t == io;
    // Timestamps monotonic per thread, and the slices of one thread never overlap.
    double last_ts = origin_us, last_end = origin_us;
    for (const json& e : t->events) {
      const double ts = e.at("ts");
      EXPECT_GE(ts, last_ts) << t->name << ": " << e.dump();
      last_ts = ts;
      if (e.at("ph") == "X") {
        EXPECT_GE(ts, last_end - 0.002) << t->name << " slices overlap at " << e.dump();
        last_end = ts + e.at("dur").get<double>();
      }
    }
    // The time covered is the thread's run: from inside its Attach to inside
    // its last Release (0.002 us: the JSON's rounding).
    ASSERT_FALSE(t->events.empty());
    const double first_us = t->events.front().at("ts");
    EXPECT_LE(first_us, us(is_io ? run.io_attached_ns : run.cpu_attached_ns) + 0.002) << t->name;
    EXPECT_GE(first_us, 0.0) << t->name;
    const int64_t* last_release_ns = is_io ? run.io_last_release_ns : run.cpu_last_release_ns;
    EXPECT_GE(last_end, us(last_release_ns[0]) - 0.002) << t->name;
    EXPECT_LE(last_end, us(last_release_ns[1]) + 0.002) << t->name;
  }
  EXPECT_EQ(Count(*io, "outside lock"), 0);
  EXPECT_EQ(Count(*cpu, "blocking I/O"), 0);
  EXPECT_GE(Count(*io, "blocking I/O"), 60);

  // One hold per acquisition, one wait per acquisition that waited (the fast
  // path waits 0 ns and records none); a forced switch per Yield; the slice
  // durations add up to the stats (each rounded to 1 ns in the JSON).
  for (const auto& [t, s] : {std::pair{io, run.io}, std::pair{cpu, run.cpu}}) {
    EXPECT_EQ(Count(*t, "waiting"), static_cast<int>(s.acquisitions - s.uncontended)) << t->name;
    EXPECT_EQ(Count(*t, "holding"), static_cast<int>(s.acquisitions)) << t->name;
    EXPECT_EQ(Count(*t, "forced switch"), static_cast<int>(s.forced_drops)) << t->name;
    EXPECT_EQ(Count(*t, "drop request"), static_cast<int>(s.yield_requests)) << t->name;
    const double tolerance_us = 0.002 * static_cast<double>(s.acquisitions) + 1;
    EXPECT_NEAR(SumDurUs(*t, "holding"), static_cast<double>(s.hold_ns) / 1e3, tolerance_us) << t->name;
    EXPECT_NEAR(SumDurUs(*t, "waiting"), static_cast<double>(s.wait_ns) / 1e3, tolerance_us) << t->name;
  }
  // The convoy: a waiting io thread asks the cpu thread to drop (not `mutex`,
  // which has no requests, nor `none`, which has no waiting).
  if (PolicyTraitsOf(GetParam()).requests_drops) {
    EXPECT_GT(Count(*io, "drop request"), 0);
    EXPECT_GT(Count(*cpu, "forced switch"), 0);
  }
}

INSTANTIATE_TEST_SUITE_P(Policies, TraceOfEveryPolicy, ::testing::ValuesIn(PolicyNames()),
                         [](const auto& info) { return info.param; });

TEST(TraceRecorder, CountsEventsDroppedOverThePerThreadBound) {
  auto gil = MakeGil("ticket");
  TraceRecorder recorder({.max_events_per_thread = 10});
  gil->EnableTrace(&recorder);
  auto me = gil->Attach(Role::kCpu, "cpu-0");
  for (int i = 0; i < 100; ++i) {
    gil->Acquire(*me);  // records "outside lock" (uncontended: no "waiting")
    gil->Release(*me);  // records "holding"
  }
  EXPECT_EQ(recorder.recorded_events(), 10);
  EXPECT_EQ(recorder.dropped_events(), 190);
  const json trace = json::parse(recorder.ChromeJson());
  EXPECT_EQ(trace.at("otherData").at("trace").at("dropped_events"), 190);
  EXPECT_EQ(trace.at("otherData").at("trace").at("recorded_events"), 10);
  int slices = 0;
  for (const json& e : trace.at("traceEvents")) slices += e.at("ph") == "X";
  EXPECT_EQ(slices, 10);
}

TEST(TraceRecorder, KeepsOnlyTheWindow) {
  auto gil = MakeGil("newgil");
  TraceRecorder recorder({.skip_ms = 20, .window_ms = 20});
  gil->EnableTrace(&recorder);
  auto me = gil->Attach(Role::kIo, "io");
  const int64_t until_ns = recorder.origin_ns() + 80 * kMs;
  for (int i = 0; i < 100'000 && NowNs() < until_ns; ++i) {
    gil->Acquire(*me);
    gil->Release(*me);
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
  const json trace = json::parse(recorder.ChromeJson());
  int kept = 0;
  for (const json& e : trace.at("traceEvents")) {
    if (e.at("ph") != "X") continue;
    ++kept;
    const double start_us = e.at("ts"), end_us = start_us + e.at("dur").get<double>();
    EXPECT_GE(end_us, 20'000.0) << e.dump();
    EXPECT_LT(start_us, 40'000.0) << e.dump();
  }
  EXPECT_GT(kept, 0);
  EXPECT_GT(trace.at("otherData").at("trace").at("outside_window_events").get<int64_t>(), 0);
  EXPECT_EQ(trace.at("otherData").at("trace").at("dropped_events"), 0);
}

TEST(TraceRecorder, ClosesAHoldStillOpenWhenWritten) {
  auto gil = MakeGil("newgil");
  TraceRecorder recorder;
  gil->EnableTrace(&recorder);
  auto me = gil->Attach(Role::kCpu, "cpu-0");
  gil->Acquire(*me);
  const json trace = json::parse(recorder.ChromeJson());
  gil->Release(*me);
  int holds = 0;
  for (const json& e : trace.at("traceEvents")) holds += e.at("name") == "holding";
  EXPECT_EQ(holds, 1);
}

TEST(TraceRecorder, EscapesThreadNamesAndRunMetadata) {
  auto gil = MakeGil("ticket");
  TraceRecorder recorder;
  gil->EnableTrace(&recorder);
  auto me = gil->Attach(Role::kOther, "odd \"name\"\\\n");
  gil->Acquire(*me);
  gil->Release(*me);
  const json trace = json::parse(recorder.ChromeJson(R"({"k":[1,2]})"));
  bool named = false;
  for (const json& e : trace.at("traceEvents")) {
    named |= e.at("name") == "thread_name" && e.at("args").at("name") == "odd \"name\"\\\n";
  }
  EXPECT_TRUE(named);
  EXPECT_EQ(trace.at("otherData").at("run").at("k").size(), 2u);
}

TEST(TraceRecorder, WriteFailureNamesThePath) {
  TraceRecorder recorder;
  try {
    recorder.WriteChromeJson("/nonexistent-dir/t.json");
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent-dir/t.json"), std::string::npos) << e.what();
  }
}

TEST(TraceRecorder, RefusesALockWithoutStats) {
  auto gil = MakeGil("ticket", {.stats = false});
  TraceRecorder recorder;
  EXPECT_THROW(gil->EnableTrace(&recorder), UsageError);
}

TEST(TraceRecorder, UntracedLockRecordsNothing) {
  auto gil = MakeGil("ticket");
  TraceRecorder recorder;  // never enabled
  auto me = gil->Attach(Role::kCpu, "cpu-0");
  gil->Acquire(*me);
  gil->Release(*me);
  EXPECT_EQ(recorder.recorded_events(), 0);
}

// Stats add up, checked without the trace: each thread measures its own wall
// time and the time it spends outside the lock (from just before Release to
// just before Acquire); hold + wait + outside must match the wall time within
// 2% + 1 ms (the gaps are the few instructions between a clock read in Gil and
// one in the test, which a preemption can stretch), and acquisitions =
// releases + forced drops (+1 while holding).
class StatsOfEveryPolicy : public ::testing::TestWithParam<std::string> {};

TEST_P(StatsOfEveryPolicy, HoldPlusWaitPlusOutsideIsWallTime) {
  auto gil = MakeGil(GetParam(), {.switch_interval_us = 300, .check_interval = 100});
  std::atomic<bool> stop{false};
  std::atomic<int> attached{0};
  auto worker = [&](Role role, std::string name, bool sleeper) {
    auto me = gil->Attach(role, std::move(name));
    attached.fetch_add(1);
    const int64_t start_ns = NowNs();
    int64_t outside_ns = 0;
    int64_t left_ns = start_ns;
    for (int i = 0; i < 300; ++i) {
      const int64_t ask_ns = NowNs();
      outside_ns += ask_ns - left_ns;
      gil->Acquire(*me);
      for (int k = 0; k < 20; ++k) {
        BurnCpu(500);
        if (gil->DropRequested()) gil->Yield(*me);
      }
      const ThreadStats& s = me->stats();
      EXPECT_EQ(s.acquisitions, s.voluntary_releases + s.forced_drops + 1) << me->name();
      // Read before the call: the hold ends at the lock's clock read inside
      // Release, and what follows it (waking the next holder, being preempted
      // by it) is outside the lock.
      left_ns = NowNs();
      gil->Release(*me);
      EXPECT_EQ(s.acquisitions, s.voluntary_releases + s.forced_drops) << me->name();
      if (sleeper) std::this_thread::sleep_for(std::chrono::microseconds(100));
      if (stop.load()) break;
    }
    const int64_t wall_ns = left_ns - start_ns;
    const ThreadStats& s = me->stats();
    const int64_t sum_ns = static_cast<int64_t>(s.hold_ns + s.wait_ns) + outside_ns;
    // Time the thread spends preempted between its own clock read and the lock's is in
    // neither sum; sanitizers lengthen that window (and CI machines are loaded): widen.
    const double tolerance_ns = (kSlowdown > 1 ? 0.25 : 0.02) * wall_ns + 1e6 * kSlowdown;
    EXPECT_NEAR(static_cast<double>(sum_ns), static_cast<double>(wall_ns), tolerance_ns)
        << me->name() << ": hold " << s.hold_ns << " + wait " << s.wait_ns << " + outside " << outside_ns;
    EXPECT_LE(static_cast<int64_t>(s.hold_ns + s.wait_ns), wall_ns + 1000) << me->name();
  };
  std::thread io(worker, Role::kIo, "io", true);
  std::thread cpu(worker, Role::kCpu, "cpu-0", false);
  io.join();
  stop.store(true);
  cpu.join();
  EXPECT_EQ(attached.load(), 2);
}

INSTANTIATE_TEST_SUITE_P(Policies, StatsOfEveryPolicy, ::testing::ValuesIn(PolicyNames()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace gillab::gil
