// `gillab contend` as a library: the convoy effect shows up under newgil and
// goes away with priority (generous bounds: these are smoke tests, the
// figures themselves belong to results/).
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "gil/error.h"
#include "gil/test_util.h"
#include "interp/contend.h"

namespace gillab::interp {
namespace {

TEST(Contend, NewGilIoThreadWaitsAboutOneSwitchInterval) {
  ContendOptions o;
  o.policy = "newgil";
  o.switch_interval_us = 2000;
  o.io_sleep_us = 10000;  // time for the cpu thread to be scheduled and take the lock back, even on a loaded machine
  o.iterations = 15;
  const ContendResult r = RunContend(o);
  EXPECT_EQ(r.io_wait_ns.count(), 15u);
  EXPECT_GE(r.io_wait_ns.Percentile(50), 1'000'000) << ToJson(r).dump();
  EXPECT_GT(r.cpu_iterations_per_s, 0);
  ASSERT_EQ(r.threads.size(), 2u);
  EXPECT_GE(r.threads[1].stats.forced_drops, 1u);
}

TEST(Contend, PriorityIoAboveCpuWaitsFarLessThanTheInterval) {
  ContendOptions o;
  o.policy = "priority";
  // Sanitizers (and a loaded machine) stretch every wake-up: scale the interval so
  // "far less than it" (a quarter) stays meaningful there.
  o.switch_interval_us = 50000 * gil::testing::kSlowdown;
  o.io_sleep_us = 200;
  o.iterations = 15;
  o.lock_priority = {{gil::Role::kIo, 1}, {gil::Role::kCpu, 0}};
  const ContendResult r = RunContend(o);
  EXPECT_LT(r.io_wait_ns.Percentile(50), o.switch_interval_us * 1000 / 4);
}

TEST(Contend, JsonHasTheKeysDesignSection5ReliesOn) {
  ContendOptions o;
  o.policy = "none";
  o.cpu_threads = 2;
  o.io_sleep_us = 10;
  o.iterations = 5;
  const nlohmann::json j = ToJson(RunContend(o));
  EXPECT_EQ(j["policy"], "none");
  for (const char* k : {"p50", "p90", "p99", "max"}) EXPECT_TRUE(j["io_wait_us"].contains(k)) << k;
  EXPECT_GT(j["cpu_iterations_per_s"].get<double>(), 0);
  ASSERT_EQ(j["threads"].size(), 3u);
  EXPECT_EQ(j["threads"][0]["role"], "io");
  EXPECT_EQ(j["threads"][1]["role"], "cpu");
  for (const char* k : {"acquisitions", "wait_ns", "hold_ns", "forced_drops", "voluntary_releases", "handoffs"}) {
    EXPECT_TRUE(j["threads"][1].contains(k)) << k;
  }
  EXPECT_FALSE(FormatTable(RunContend(o)).empty());
}

TEST(Contend, BadOptionsAreUsageErrors) {
  ContendOptions o;
  o.iterations = 0;
  EXPECT_THROW(RunContend(o), UsageError);
  o = {};
  o.policy = "fifo";
  EXPECT_THROW(RunContend(o), UsageError);
  o = {};
  o.cpu_threads = -1;
  EXPECT_THROW(RunContend(o), UsageError);
}

// `contend --trace FILE`: the timeline has a named track per thread whose
// slices never overlap, and one hold per acquisition the stats counted.
TEST(Contend, TraceFileHasATrackPerThreadMatchingTheStats) {
  char dir_template[] = "/tmp/gillab-contend-trace-XXXXXX";
  ASSERT_NE(mkdtemp(dir_template), nullptr);
  ContendOptions o;
  o.policy = "newgil";
  o.cpu_threads = 1;
  o.switch_interval_us = 1000;
  o.io_sleep_us = 500;
  o.iterations = 20;
  o.trace_path = std::string(dir_template) + "/contend.json";
  const ContendResult r = RunContend(o);
  std::ifstream in(o.trace_path);
  ASSERT_TRUE(in) << "no trace at " << o.trace_path;
  const nlohmann::json trace = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  std::remove(o.trace_path.c_str());
  rmdir(dir_template);
  ASSERT_FALSE(trace.is_discarded()) << "trace is not valid JSON";
  EXPECT_EQ(trace.at("otherData").at("run").at("policy"), "newgil");
  EXPECT_EQ(r.trace_dropped_events, 0);
  std::map<int64_t, std::string> names;
  for (const auto& e : trace.at("traceEvents"))
    if (e.at("ph") == "M" && e.at("name") == "thread_name") names[e.at("tid").get<int64_t>()] = e.at("args").at("name");
  ASSERT_EQ(r.threads.size(), 2u);
  for (const ContendThread& thread : r.threads) {
    int64_t tid = -1;
    for (const auto& [id, name] : names)
      if (name == thread.name) tid = id;
    ASSERT_NE(tid, -1) << "no track named " << thread.name;
    uint64_t holds = 0;
    double last_ts = 0, last_end = 0;
    for (const auto& e : trace.at("traceEvents")) {
      if (e.at("tid") != tid || e.at("ph") == "M") continue;
      const double ts = e.at("ts");
      EXPECT_GE(ts, last_ts) << thread.name << ": " << e.dump();
      last_ts = ts;
      if (e.at("ph") != "X") continue;
      EXPECT_GE(ts, last_end - 0.002) << thread.name << " slices overlap at " << e.dump();
      last_end = ts + e.at("dur").get<double>();
      holds += e.at("name") == "holding";
    }
    EXPECT_EQ(holds, thread.stats.acquisitions) << thread.name;
  }
}

}  // namespace
}  // namespace gillab::interp
