// results_test.cc — runs.csv: rows from the JSON contract, atomic appends, resume bookkeeping.
#include "experiments/results.h"

#include "experiments/summary.h"
#include "servers/engine_stats.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <set>
#include <fstream>
#include <string>

namespace gillab::experiments {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() / ("gillab-results-test-" + std::to_string(getpid()) + "-" +
                                         std::to_string(counter_++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }

 private:
  static inline int counter_ = 0;
  fs::path path_;
};

Point TestPoint(int id) {
  Point p;
  p.id = id;
  for (const auto& spec : SettingSpecs()) p.settings[std::string(spec.name)] = std::string(spec.default_value);
  p.settings["lock_priority"] = "io=1,cpu=0";  // a comma inside a cell
  p.variant = "toy priority";
  return p;
}

Row RowFor(int point, int rep) {
  json load = {{"requests", 10}, {"errors", 0}, {"seconds", 0.5}, {"req_per_s", 20.0},
               {"latency_us", {{"p50", 100.0}, {"p90", 110.0}, {"p99", 200.0}, {"p999", 300.0}, {"max", 400.0}}}};
  return MakeRow(TestPoint(point), rep, load, json(), RunTiming{});
}

TEST(Csv, EscapesAndParsesBack) {
  std::vector<std::string> cells = {"plain", "a,b", "say \"hi\"", "", "two\nlines"};
  auto rows = ParseCsv(CsvLine(cells));
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0], (std::vector<std::string>{"plain", "a,b", "say \"hi\"", "", "two lines"}));
}

TEST(Csv, DropsAPartialLastLine) {
  auto rows = ParseCsv("a,b\n1,2\n3,");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1], (std::vector<std::string>{"1", "2"}));
}

TEST(MakeRow, SumsPerRoleAndLeavesMissingValuesEmpty) {
  json load = {{"requests", 1000}, {"errors", 0}, {"seconds", 2.0}, {"req_per_s", 500.0},
               {"latency_us", {{"p50", 1900.5}, {"p90", 2000.0}, {"p99", 5000.0}, {"p999", 6000.0}, {"max", 7000.0}}}};
  json serve = {
      {"engine", "toy"},
      {"cpu_iterations_per_s", 2.5e6},
      {"lock", {{"switches", 420}, {"handoff_p50_ns", 4000}}},
      {"threads",
       {{{"role", "io"}, {"acquisitions", 1000}, {"wait_ns", 900}, {"hold_ns", 100}, {"wait_p99_ns", 50},
         {"forced_drops", 0}},
        {{"role", "cpu"}, {"acquisitions", 10}, {"wait_ns", 300}, {"hold_ns", 7000}, {"wait_p99_ns", 80},
         {"forced_drops", 5},
         {"os_priority", {{"requested", "nice:10"}, {"applied", true}, {"refused", ""}, {"readback", "nice 10"}}}},
        {{"role", "cpu"}, {"acquisitions", 12}, {"wait_ns", 200}, {"hold_ns", 6000}, {"wait_p99_ns", 90},
         {"forced_drops", 6},
         {"os_priority", {{"requested", "nice:10"}, {"applied", false}, {"refused", "EPERM: no"}}}}}}};
  RunTiming timing;
  timing.serve_wall_ns = 123;
  Row row = MakeRow(TestPoint(3), 2, load, serve, timing);
  EXPECT_EQ(row["point"], "3");
  EXPECT_EQ(row["repetition"], "2");
  EXPECT_EQ(row["variant"], "toy priority");
  EXPECT_EQ(row["lock_priority"], "io=1,cpu=0");
  EXPECT_EQ(row["req_per_s"], "500");
  EXPECT_EQ(row["latency_p50_us"], "1900.5");
  EXPECT_EQ(row["latency_max_us"], "7000");
  EXPECT_EQ(row["cpu_iterations_per_s"], "2.5e+06");
  EXPECT_EQ(row["lock_switches"], "420");
  EXPECT_EQ(row["lock_handoff_p50_ns"], "4000");
  EXPECT_EQ(row["lock_handoff_p99_ns"], "");  // absent: NA, not 0
  EXPECT_EQ(row["io_thread_count"], "1");
  EXPECT_EQ(row["cpu_thread_count"], "2");
  EXPECT_EQ(row["cpu_acquisitions"], "22");
  EXPECT_EQ(row["cpu_hold_ns"], "13000");
  EXPECT_EQ(row["cpu_wait_p99_ns"], "90");  // the worst thread
  EXPECT_EQ(row["cpu_forced_drops"], "11");
  EXPECT_EQ(row["cpu_handoffs"], "");       // no thread reported it
  EXPECT_EQ(row["io_forced_drops"], "0");   // reported as 0: a real 0
  EXPECT_EQ(row["cpu_os_priority_requested"], "nice:10");
  EXPECT_EQ(row["cpu_os_priority_applied"], "partial");
  EXPECT_EQ(row["cpu_os_priority_refused"], "EPERM: no");
  EXPECT_EQ(row["io_os_priority_applied"], "");
  EXPECT_EQ(row["serve_wall_ns"], "123");
  for (const auto& [column, value] : row)
    EXPECT_NE(std::find(RunColumns().begin(), RunColumns().end(), column), RunColumns().end()) << column;
}

TEST(MakeRow, ServerWithoutStatsGivesEmptyLockColumns) {
  Row row = RowFor(0, 0);
  EXPECT_EQ(row["io_thread_count"], "");
  EXPECT_EQ(row["io_wait_ns"], "");
  EXPECT_EQ(row["lock_switches"], "");
  EXPECT_EQ(row["req_per_s"], "20");
}

TEST(RunsCsv, CreatesTheHeaderAndAppendsRows) {
  TempDir dir;
  RunsCsv csv = RunsCsv::Open(dir / "runs.csv");
  EXPECT_EQ(csv.finished_count(), 0u);
  csv.Append(RowFor(0, 0));
  csv.Append(RowFor(1, 0));
  EXPECT_TRUE(csv.Finished(1, 0));
  auto rows = ReadRunsCsv(dir / "runs.csv");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1].at("point"), "1");
  EXPECT_EQ(rows[1].at("lock_priority"), "io=1,cpu=0");
  EXPECT_EQ(rows[1].size(), RunColumns().size());
}

TEST(RunsCsv, ReopeningDropsAPartialLineAndSkipsFinishedRuns) {
  TempDir dir;
  {
    RunsCsv csv = RunsCsv::Open(dir / "runs.csv");
    csv.Append(RowFor(0, 0));
    csv.Append(RowFor(1, 0));
  }
  // A run killed in the middle of its write.
  std::string line = CsvLine({"2", "0", "toy priority", "blocking"});
  {
    std::ofstream out(dir / "runs.csv", std::ios::app);
    out << line.substr(0, line.size() / 2);
  }
  RunsCsv csv = RunsCsv::Open(dir / "runs.csv");
  EXPECT_EQ(csv.finished_count(), 2u);
  EXPECT_TRUE(csv.Finished(0, 0));
  EXPECT_TRUE(csv.Finished(1, 0));
  EXPECT_FALSE(csv.Finished(2, 0));
  EXPECT_FALSE(csv.Finished(0, 1));
  csv.Append(RowFor(2, 0));
  auto rows = ReadRunsCsv(dir / "runs.csv");
  ASSERT_EQ(rows.size(), 3u);  // the fragment is gone, the new row is whole
  EXPECT_EQ(rows[2].at("point"), "2");
  EXPECT_EQ(rows[2].at("req_per_s"), "20");
  std::string text = ReadFile(dir / "runs.csv");
  EXPECT_EQ(text.back(), '\n');
}

TEST(RunsCsv, RefusesAFileWithOtherColumns) {
  TempDir dir;
  {
    std::ofstream out(dir / "runs.csv");
    out << "point,repetition,something_else\n0,0,1\n";
  }
  EXPECT_THROW(RunsCsv::Open(dir / "runs.csv"), std::runtime_error);
}

// A results directory written before the model-figure columns existed (the
// header of that version: every column but those) resumes: its rows are kept,
// read as empty in the new columns, and new rows carry the figures.
TEST(RunsCsv, ResumesAFileWithAnOlderHeaderAndReadsNewColumnsAsEmpty) {
  TempDir dir;
  std::vector<std::string> old_header;
  std::set<std::string> model_columns;
  for (const auto& role : RowRoles())
    for (const auto& figure : servers::ModelFigureSpecs()) model_columns.insert(role + "_" + std::string(figure.name));
  for (const auto& c : RunColumns())
    if (!model_columns.count(c)) old_header.push_back(c);
  ASSERT_LT(old_header.size(), RunColumns().size());
  {
    Row old = MakeRow(TestPoint(0), 0, {{"req_per_s", 10}}, json(), {});
    std::vector<std::string> cells;
    for (const auto& c : old_header) cells.push_back(old.count(c) ? old.at(c) : "");
    std::ofstream out(dir / "runs.csv");
    out << CsvLine(old_header) << CsvLine(cells);
  }
  RunsCsv csv = RunsCsv::Open(dir / "runs.csv");
  EXPECT_TRUE(csv.Finished(0, 0));
  EXPECT_FALSE(csv.Finished(1, 0));
  json serve = {{"threads",
                 {{{"role", "cpu"}, {"name", "cpu-0"}, {"model", {{"stm_commits", 7}, {"stm_aborts", 2}}}},
                  {{"role", "cpu"}, {"name", "cpu-1"}, {"model", {{"stm_commits", 5}, {"ready_queue_p99_ns", 30}}}}}}};
  csv.Append(MakeRow(TestPoint(1), 0, {{"req_per_s", 20}}, serve, {}));
  EXPECT_EQ(ParseCsv(ReadFile(dir / "runs.csv"))[0], RunColumns()) << "the header was not brought up to date";
  auto rows = ReadRunsCsv(dir / "runs.csv");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].at("req_per_s"), "10");
  EXPECT_EQ(rows[0].at("cpu_stm_commits"), "");  // NA, not 0
  EXPECT_EQ(rows[1].at("cpu_stm_commits"), "12");  // summed over the role's threads
  EXPECT_EQ(rows[1].at("cpu_stm_aborts"), "2");
  EXPECT_EQ(rows[1].at("cpu_ready_queue_p99_ns"), "30");
  EXPECT_EQ(rows[1].at("io_stm_commits"), "");
  // The summary reads a mix of old and new rows (NA in the new columns).
  std::string summary;
  EXPECT_NO_THROW(summary = RenderSummary(rows, json::object(), "old", "resumed"));
  EXPECT_NE(summary.find("req/s"), std::string::npos) << summary;
}

// `gillab report` on a directory nobody resumed: ReadRunsCsv alone fills the new columns with NA.
TEST(ReadRunsCsv, AnOlderHeaderReadsNewColumnsAsEmpty) {
  TempDir dir;
  {
    std::ofstream out(dir / "runs.csv");
    out << "point,repetition,variant,req_per_s\n0,0,,10\n";
  }
  auto rows = ReadRunsCsv(dir / "runs.csv");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].at("req_per_s"), "10");
  EXPECT_EQ(rows[0].at("io_stm_aborts"), "");
  EXPECT_EQ(rows[0].at("cpu_threads"), "");
}

TEST(WriteFileAtomic, ReplacesTheWholeFile) {
  TempDir dir;
  WriteFileAtomic(dir / "a.txt", "first version, longer\n");
  WriteFileAtomic(dir / "a.txt", "second\n");
  EXPECT_EQ(ReadFile(dir / "a.txt"), "second\n");
  EXPECT_FALSE(fs::exists(dir / "a.txt.tmp"));
}

}  // namespace
}  // namespace gillab::experiments
