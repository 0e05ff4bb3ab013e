// summary_test.cc — statistics over repetitions, slowdown matching, summary.md content.
#include "experiments/summary.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

namespace gillab::experiments {
namespace {

// A runs.csv row with default settings, then the given cells.
Row MakeTestRow(int point, int rep, std::map<std::string, std::string> cells) {
  Row row;
  for (const auto& c : RunColumns()) row[c] = "";
  for (const auto& spec : SettingSpecs()) row[std::string(spec.name)] = std::string(spec.default_value);
  row["point"] = std::to_string(point);
  row["repetition"] = std::to_string(rep);
  row["status"] = "ok";
  for (auto& [k, v] : cells) row[k] = v;
  return row;
}

TEST(Summarize, MedianMinMaxOfOddAndEvenCounts) {
  Spread odd = Summarize({5, 1, 3});
  EXPECT_EQ(odd.n, 3);
  EXPECT_DOUBLE_EQ(odd.median, 3);
  EXPECT_DOUBLE_EQ(odd.min, 1);
  EXPECT_DOUBLE_EQ(odd.max, 5);
  Spread even = Summarize({4, 1, 3, 2});
  EXPECT_DOUBLE_EQ(even.median, 2.5);
  EXPECT_DOUBLE_EQ(even.min, 1);
  EXPECT_DOUBLE_EQ(even.max, 4);
}

TEST(Summarize, CoefficientOfVariationUsesTheSampleStandardDeviation) {
  Spread s = Summarize({1, 2, 3});  // mean 2, sample sd 1
  ASSERT_TRUE(s.cv.has_value());
  EXPECT_NEAR(*s.cv, 0.5, 1e-12);
  Spread flat = Summarize({7, 7, 7, 7});
  ASSERT_TRUE(flat.cv.has_value());
  EXPECT_DOUBLE_EQ(*flat.cv, 0);
  EXPECT_FALSE(Summarize({9}).cv.has_value());  // one run: no spread to speak of
  EXPECT_EQ(Summarize({}).n, 0);
}

TEST(Slowdown, MatchesThePointThatDiffersOnlyInCpuThreads) {
  std::vector<Row> rows = {
      MakeTestRow(0, 0, {{"server", "blocking"}, {"cpu_threads", "0"}, {"req_per_s", "1000"}}),
      MakeTestRow(0, 1, {{"server", "blocking"}, {"cpu_threads", "0"}, {"req_per_s", "1200"}}),
      MakeTestRow(1, 0, {{"server", "blocking"}, {"cpu_threads", "1"}, {"req_per_s", "100"}}),
      MakeTestRow(1, 1, {{"server", "blocking"}, {"cpu_threads", "1"}, {"req_per_s", "120"}}),
      MakeTestRow(2, 0, {{"server", "zmq"}, {"cpu_threads", "0"}, {"req_per_s", "5000"}}),
      MakeTestRow(3, 0, {{"server", "zmq"}, {"cpu_threads", "1"}, {"req_per_s", "2500"}}),
      // No unloaded twin: a different think time.
      MakeTestRow(4, 0, {{"server", "zmq"}, {"cpu_threads", "1"}, {"think_us", "7"}, {"req_per_s", "10"}}),
  };
  auto points = GroupByPoint(rows);
  ASSERT_EQ(points.size(), 5u);
  EXPECT_EQ(MatchingUnloaded(points, points[1]), &points[0]);
  EXPECT_EQ(MatchingUnloaded(points, points[3]), &points[2]);
  EXPECT_EQ(MatchingUnloaded(points, points[4]), nullptr);
  ASSERT_TRUE(Slowdown(points, points[1]).has_value());
  EXPECT_NEAR(*Slowdown(points, points[1]), 1100.0 / 110.0, 1e-9);  // medians, not single runs
  EXPECT_NEAR(*Slowdown(points, points[3]), 2.0, 1e-9);
  EXPECT_FALSE(Slowdown(points, points[0]).has_value());  // the baseline itself
  EXPECT_FALSE(Slowdown(points, points[4]).has_value());
}

TEST(Slowdown, VariantsAreMatchedByLabel) {
  std::vector<Row> rows = {
      MakeTestRow(0, 0, {{"variant", "native"}, {"engine", "native"}, {"cpu_threads", "0"}, {"req_per_s", "900"}}),
      MakeTestRow(1, 0, {{"variant", "native"}, {"engine", "native"}, {"cpu_threads", "1"}, {"req_per_s", "900"}}),
      MakeTestRow(2, 0, {{"variant", "toy"}, {"cpu_threads", "0"}, {"req_per_s", "800"}}),
      MakeTestRow(3, 0, {{"variant", "toy"}, {"cpu_threads", "1"}, {"req_per_s", "40"}}),
  };
  auto points = GroupByPoint(rows);
  EXPECT_NEAR(*Slowdown(points, points[1]), 1.0, 1e-9);
  EXPECT_NEAR(*Slowdown(points, points[3]), 20.0, 1e-9);
}

TEST(RenderSummary, BeazleyTableHasServersAsRowsAndVariantsAsColumns) {
  std::vector<Row> rows;
  int point = 0;
  for (const char* server : {"zmq", "blocking"})
    for (const char* variant : {"native", "toy newgil"})
      for (const char* cpu : {"0", "1"}) {
        bool convoy = std::string(variant) == "toy newgil" && std::string(cpu) == "1";
        for (int rep = 0; rep < 3; ++rep)
          rows.push_back(MakeTestRow(point, rep, {{"server", server}, {"variant", variant},
                                                  {"engine", std::string(variant) == "native" ? "native" : "toy"},
                                                  {"cpu_threads", cpu},
                                                  {"req_per_s", convoy ? "190" : "5700"},
                                                  {"latency_p50_us", convoy ? "5020" : "105"},
                                                  {"latency_p99_us", "6000"}}));
        ++point;
      }
  std::string md = RenderSummary(rows, nlohmann::json::object(), "convoy", "Beazley's table.");
  EXPECT_NE(md.find("# convoy — summary"), std::string::npos);
  EXPECT_NE(md.find("Beazley's table."), std::string::npos);
  EXPECT_NE(md.find("| server | native: 0 CPU | native: 1 CPU | native: slowdown | toy newgil: 0 CPU | "
                    "toy newgil: 1 CPU | toy newgil: slowdown |"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("| blocking | 5700/s · p50 105 µs | 5700/s · p50 105 µs | **1.00x** | "
                    "5700/s · p50 105 µs | 190/s · p50 5.02 ms | **30x** |"),
            std::string::npos)
      << md;
  EXPECT_EQ(md.find("⚠"), std::string::npos) << md;  // identical repetitions: no CV warning
}

TEST(RenderSummary, CalibrationTableComparesEachEnginesSlowdownWithCpythons) {
  // server x engine x cpu: toy slows blocking down 20x (cpython 25x: ratio 0.80, within ±30%)
  // and zmq 10x (cpython 20x: ratio 0.50, outside).
  std::map<std::string, std::map<std::string, std::string>> loaded_rate = {
      {"blocking", {{"toy", "50"}, {"cpython", "40"}}}, {"zmq", {{"toy", "100"}, {"cpython", "50"}}}};
  std::vector<Row> rows;
  int point = 0;
  for (const char* server : {"blocking", "zmq"})
    for (const char* engine : {"toy", "cpython"})
      for (const char* cpu : {"0", "1"}) {
        std::string rate = std::string(cpu) == "0" ? "1000" : loaded_rate[server][engine];
        rows.push_back(MakeTestRow(point++, 0, {{"server", server}, {"engine", engine}, {"cpu_threads", cpu},
                                                {"req_per_s", rate}}));
      }
  auto points = GroupByPoint(rows);
  EXPECT_EQ(MatchingCpython(points, points[1]), &points[3]);
  EXPECT_EQ(MatchingCpython(points, points[3]), nullptr);  // cpython has no cpython twin but itself
  std::string md = RenderSummary(rows, nlohmann::json::object(), "calibration", "");
  EXPECT_NE(md.find("| engine | server | cpu_threads | slowdown | cpython slowdown | ratio | ±30% |"), std::string::npos)
      << md;
  EXPECT_NE(md.find("| toy | blocking | 1 | 20x | 25x | **0.80** | within |"), std::string::npos) << md;
  EXPECT_NE(md.find("| toy | zmq | 1 | 10x | 20x | **0.50** | ⚠ outside |"), std::string::npos) << md;
  EXPECT_NE(md.find("toy slowdown is 0.50x cpython's, outside ±30%"), std::string::npos) << md;
  EXPECT_EQ(md.find("| cpython | blocking"), std::string::npos) << md;  // cpython is the reference, not a row
}

TEST(RenderSummary, NoCalibrationTableWithoutCpython) {
  std::vector<Row> rows = {
      MakeTestRow(0, 0, {{"engine", "native"}, {"cpu_threads", "0"}, {"req_per_s", "900"}}),
      MakeTestRow(1, 0, {{"engine", "native"}, {"cpu_threads", "1"}, {"req_per_s", "900"}}),
      MakeTestRow(2, 0, {{"engine", "toy"}, {"cpu_threads", "0"}, {"req_per_s", "800"}}),
      MakeTestRow(3, 0, {{"engine", "toy"}, {"cpu_threads", "1"}, {"req_per_s", "40"}}),
  };
  std::string md = RenderSummary(rows, nlohmann::json::object(), "engines", "");
  EXPECT_NE(md.find("## Slowdown from CPU threads"), std::string::npos) << md;
  EXPECT_EQ(md.find("The model against CPython"), std::string::npos) << md;
}

TEST(RenderSummary, VariantsAloneBecomeTheRows) {
  std::vector<Row> rows;
  int point = 0;
  for (const char* variant : {"ticket", "newgil"})
    for (const char* cpu : {"0", "1", "2"})
      rows.push_back(MakeTestRow(point++, 0, {{"variant", variant}, {"policy", variant}, {"cpu_threads", cpu},
                                              {"req_per_s", std::string(cpu) == "0" ? "1000" : "100"},
                                              {"latency_p50_us", "50"}}));
  std::string md = RenderSummary(rows, nlohmann::json::object(), "x", "");
  EXPECT_NE(md.find("| variant | 0 CPU | 1 CPU | 2 CPU | slowdown 1 | slowdown 2 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| newgil | 1000/s · p50 50 µs | 100/s · p50 50 µs | 100/s · p50 50 µs | **10x** | **10x** |"),
            std::string::npos)
      << md;
}

TEST(RenderSummary, WarnsAboutSpreadErrorsAndRefusedPriorities) {
  std::vector<Row> rows = {
      MakeTestRow(0, 0, {{"req_per_s", "100"}, {"errors", "0"}}),
      MakeTestRow(0, 1, {{"req_per_s", "150"}, {"errors", "2"}}),
      MakeTestRow(0, 2, {{"req_per_s", "120"}, {"errors", "0"},
                         {"cpu_os_priority_requested", "nice:-5"}, {"cpu_os_priority_applied", "false"},
                         {"cpu_os_priority_refused", "EPERM: Operation not permitted"}}),
  };
  std::string md = RenderSummary(rows, nlohmann::json::object(), "x", "");
  EXPECT_NE(md.find("⚠ CV > 5%"), std::string::npos) << md;
  EXPECT_NE(md.find("req/s varies by"), std::string::npos);
  EXPECT_NE(md.find("⚠ 2 errors"), std::string::npos);
  EXPECT_NE(md.find("## OS priorities the kernel refused"), std::string::npos);
  EXPECT_NE(md.find("cpu nice:-5 not applied: EPERM: Operation not permitted"), std::string::npos) << md;
  EXPECT_NE(md.find("120 (100–150)"), std::string::npos) << md;  // median (min–max)
}

TEST(RenderSummary, LockTableSharesAreOfTheServerLifetime) {
  std::vector<Row> rows = {MakeTestRow(0, 0, {{"req_per_s", "100"}, {"serve_wall_ns", "1000000000"},
                                              {"io_thread_count", "1"}, {"io_hold_ns", "250000000"},
                                              {"io_wait_ns", "500000000"}, {"cpu_threads", "2"},
                                              {"cpu_thread_count", "2"}, {"cpu_hold_ns", "1500000000"},
                                              {"cpu_wait_ns", "200000000"}, {"lock_switches", "300"}})};
  // io: 0.25 s holding, 0.5 s waiting of 1 s; two CPU threads share 1.5 s holding: 75% each.
  std::string md = RenderSummary(rows, nlohmann::json::object(), "x", "");
  EXPECT_NE(md.find("| 25.0% | 50.0% | 75.0% | 10.0% | 300 |"), std::string::npos) << md;
}

TEST(RenderSummary, LockSharesPreferTheThreadsOwnElapsedTime) {
  std::vector<Row> rows = {MakeTestRow(0, 0, {{"req_per_s", "100"}, {"serve_wall_ns", "1000000000"},
                                              {"io_thread_count", "1"}, {"io_hold_ns", "100"}, {"io_wait_ns", "300"},
                                              {"io_elapsed_ns", "1000"}})};
  std::string md = RenderSummary(rows, nlohmann::json::object(), "x", "");
  EXPECT_NE(md.find("| 10.0% | 30.0% |"), std::string::npos) << md;
}

TEST(RenderSummary, EmptyRunsSayNoRuns) {
  EXPECT_NE(RenderSummary({}, nlohmann::json::object(), "x", "").find("No finished runs yet."), std::string::npos);
}

TEST(Format, NumbersCarryUnits) {
  EXPECT_EQ(FormatUs(5.25), "5.2 µs");
  EXPECT_EQ(FormatUs(105.4), "105 µs");
  EXPECT_EQ(FormatUs(5020), "5.02 ms");
  EXPECT_EQ(FormatRatio(33.14), "33x");
  EXPECT_EQ(FormatRatio(1.234), "1.23x");
  EXPECT_EQ(FormatRate(5712.4), "5712");
}

// The simulator's validation (design §13): a simulated point against its real
// twin (same settings but mode, cores and seed), medians over repetitions.
TEST(Validation, ComparesEachSimulatedPointWithItsRealTwin) {
  auto row = [](int point, int rep, const std::string& mode, const std::string& cores, const std::string& cpu,
                const std::string& rate, const std::string& p50, const std::string& wait) {
    return MakeTestRow(point, rep, {{"mode", mode}, {"cores", cores}, {"cpu_threads", cpu}, {"req_per_s", rate},
                                    {"latency_p50_us", p50}, {"latency_p99_us", p50}, {"io_wait_p50_ns", wait}});
  };
  std::vector<Row> rows = {
      // cpu_threads 0: the real machine has 4 cores here; the simulated point 2 (cores are not matched).
      row(0, 0, "real", "4", "0", "1000", "100", "2000"), row(0, 1, "real", "4", "0", "1200", "120", "2000"),
      row(1, 0, "simulate", "2", "0", "1050", "105", "2100"), row(1, 1, "simulate", "2", "0", "1150", "110", "2100"),
      // cpu_threads 1: the simulator is 1.5x too fast and its p50 a third too short.
      row(2, 0, "real", "4", "1", "200", "5000", "5000000"), row(3, 0, "simulate", "2", "1", "300", "3333", "5000000"),
      // A simulated point without a real twin is left out.
      row(4, 0, "simulate", "2", "2", "100", "10000", "9000000"),
  };
  auto points = GroupByPoint(rows);
  ASSERT_EQ(points.size(), 5u);
  ASSERT_NE(MatchingReal(points, points[1]), nullptr);
  EXPECT_EQ(MatchingReal(points, points[1])->point, 0);
  EXPECT_EQ(MatchingReal(points, points[3])->point, 2);
  EXPECT_EQ(MatchingReal(points, points[4]), nullptr);
  EXPECT_EQ(MatchingReal(points, points[0]), nullptr);  // a real point is no simulated one

  std::string md = RenderSummary(rows, nlohmann::json::object(), "v", "");
  const size_t at = md.find("## Validation: simulated vs real");
  ASSERT_NE(at, std::string::npos) << md;
  const std::string table = md.substr(at, md.find("\n## ", at + 1) - at);
  // Point 1 vs 0: medians 1100 vs 1100 req/s, p50 107.5 vs 110 µs, wait 2.1 vs 2 µs.
  EXPECT_NE(table.find("| 1 / 0 | 0 | 2 / 4 | 1100 → 1100 · **1.00** ✓ |"), std::string::npos) << table;
  EXPECT_NE(table.find("**0.98** ✓"), std::string::npos) << table;
  EXPECT_NE(table.find("2.0 µs → 2.1 µs · **1.05** ✓"), std::string::npos) << table;
  // Point 3 vs 2: req/s 1.50 and p50 0.67, outside; the lock wait agrees.
  EXPECT_NE(table.find("| 3 / 2 | 1 | 2 / 4 | 200 → 300 · **1.50** ⚠ |"), std::string::npos) << table;
  EXPECT_NE(table.find("**0.67** ⚠"), std::string::npos) << table;
  EXPECT_EQ(table.find("| 4 / "), std::string::npos) << table;
  EXPECT_NE(table.find("5 of 8 comparisons within ±20%"), std::string::npos) << table;
  // Without both modes there is no validation table.
  rows.resize(1);
  EXPECT_EQ(RenderSummary(rows, nlohmann::json::object(), "v", "").find("Validation"), std::string::npos);
}

}  // namespace
}  // namespace gillab::experiments
