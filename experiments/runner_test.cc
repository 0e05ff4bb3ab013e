// runner_test.cc — `gillab run` against a deterministic stand-in (testdata/fake_gillab.py):
// results files, timeouts, failures, Ctrl-C, resume, and no child left behind.
#include "experiments/runner.h"
#include "experiments/runner_test_util.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "experiments/child_process.h"
#include "experiments/results.h"
#include "gil/error.h"

namespace gillab::experiments {
namespace {

namespace fs = std::filesystem;

class RunnerTest : public StandInRunnerTest {};

constexpr const char* kSweep = R"(
name = "fake-sweep"
description = "Two servers, 0 and 1 CPU threads."
repetitions = 2
warmup_runs = 1
[settings]
requests = 10
think_us = 100
[sweep]
server = ["blocking", "zmq"]
cpu_threads = [0, 1]
)";

TEST_F(RunnerTest, RunsEveryPointAndRepetitionOnceAndWritesTheResultsFiles) {
  Experiment e = Make(kSweep);
  ASSERT_EQ(RunExperiment(e, Options()), 0);
  auto rows = ReadRunsCsv(Dir() + "/runs.csv");
  ASSERT_EQ(rows.size(), 8u);
  std::set<std::pair<std::string, std::string>> pairs;
  for (const auto& r : rows) {
    EXPECT_TRUE(pairs.insert({r.at("point"), r.at("repetition")}).second) << "duplicate run";
    EXPECT_EQ(r.at("status"), "ok");
    // The stand-in's throughput halves with one CPU thread; the runner must carry it through.
    EXPECT_EQ(r.at("req_per_s"), r.at("cpu_threads") == "0" ? "1000" : "500");
    EXPECT_EQ(r.at("think_us"), "100");
    EXPECT_FALSE(r.at("io_hold_ns").empty());
    EXPECT_FALSE(r.at("serve_wall_ns").empty());
  }
  // Repetitions are the outer loop: the first four rows are repetition 0.
  for (int i = 0; i < 4; ++i) EXPECT_EQ(rows[i].at("repetition"), "0");
  EXPECT_EQ(rows[1].at("cpu_threads"), "1");
  EXPECT_EQ(rows[1].at("cpu_forced_drops"), "55");
  EXPECT_EQ(rows[0].at("cpu_thread_count"), "0");

  auto meta = nlohmann::json::parse(ReadFile(Dir() + "/meta.json"));
  for (const char* key : {"git_sha", "git_dirty", "kernel", "clock", "cpu_model", "cores", "pinning", "versions",
                          "load_average_start", "load_average_end", "started_utc", "experiment"})
    EXPECT_TRUE(meta.contains(key)) << key;
  EXPECT_EQ(meta["runs_finished"], 8);
  for (const char* key : {"libzmq", "boost", "compiler", "gillab"}) EXPECT_TRUE(meta["versions"].contains(key)) << key;

  std::string summary = ReadFile(Dir() + "/summary.md");
  EXPECT_NE(summary.find("# fake-sweep — summary"), std::string::npos);
  EXPECT_NE(summary.find("**2.00x**"), std::string::npos) << summary;
  Experiment resolved = LoadExperiment(Dir() + "/experiment.toml");
  EXPECT_EQ(resolved.Points().size(), 4u);
  EXPECT_TRUE(fs::exists(Dir() + "/raw/p001_r1_load.json"));
  EXPECT_TRUE(fs::exists(Dir() + "/raw/p001_r1_serve.json"));
  ExpectNoChildLeft();
}

TEST_F(RunnerTest, ATimedOutRunIsKilledLoggedAndCompletedByResume) {
  setenv("FAKE_GILLAB_HANG_ONCE", (root_ / "hung-once").c_str(), 1);
  Experiment e = Make("name = \"hang\"\nrepetitions = 1\nwarmup_runs = 0\n[settings]\nwork_units = 777\n"
                      "timeout_s = 3\nrequests = 5\n[sweep]\ncpu_threads = [0, 1]\n");
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(RunExperiment(e, Options()), 1);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));
  EXPECT_EQ(ReadRunsCsv(Dir() + "/runs.csv").size(), 1u);  // the other point finished
  std::string failures = ReadFile(Dir() + "/failures.log");
  EXPECT_NE(failures.find("timed out after 3 s"), std::string::npos) << failures;
  ExpectNoChildLeft();

  RunnerOptions resume = Options();
  resume.out_dir.clear();
  resume.resume_dir = Dir();
  Experiment nothing_given;  // `gillab run --resume DIR`
  EXPECT_EQ(RunExperiment(nothing_given, resume), 0);
  auto rows = ReadRunsCsv(Dir() + "/runs.csv");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_NE(rows[0].at("point"), rows[1].at("point"));
  // Resuming a complete directory runs nothing and duplicates nothing.
  EXPECT_EQ(RunExperiment(nothing_given, resume), 0);
  EXPECT_EQ(ReadRunsCsv(Dir() + "/runs.csv").size(), 2u);
  ExpectNoChildLeft();
}

TEST_F(RunnerTest, AServerUsageErrorStopsTheExperiment) {
  Experiment e = Make("name = \"bad\"\nrepetitions = 3\nwarmup_runs = 0\n[settings]\nwork_units = 2\n"
                      "[sweep]\ncpu_threads = [0, 1]\n");
  EXPECT_EQ(RunExperiment(e, Options()), 1);
  std::string failures = ReadFile(Dir() + "/failures.log");
  EXPECT_NE(failures.find("fake usage error"), std::string::npos) << failures;
  // One attempt, not six: the same error would repeat for every run.
  EXPECT_EQ(std::count(failures.begin(), failures.end(), '\n'), 1);
  ExpectNoChildLeft();
}

TEST_F(RunnerTest, AServerThatCrashesFailsThatRunOnly) {
  Experiment e = Make("name = \"crash\"\nrepetitions = 1\nwarmup_runs = 0\n[sweep]\nwork_units = [3, 0]\n");
  EXPECT_EQ(RunExperiment(e, Options()), 1);
  EXPECT_EQ(ReadRunsCsv(Dir() + "/runs.csv").size(), 1u);
  EXPECT_NE(ReadFile(Dir() + "/failures.log").find("exited before listening (exit status 1)"), std::string::npos);
}

TEST_F(RunnerTest, ClientErrorsAreKeptWithStatusErrors) {
  Experiment e = Make("name = \"errors\"\nrepetitions = 1\nwarmup_runs = 0\n[settings]\nmessage_bytes = 13\n");
  EXPECT_EQ(RunExperiment(e, Options()), 0);
  auto rows = ReadRunsCsv(Dir() + "/runs.csv");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].at("status"), "errors");
  EXPECT_EQ(rows[0].at("errors"), "1");
  EXPECT_NE(ReadFile(Dir() + "/summary.md").find("⚠ 1 errors"), std::string::npos);
}

TEST_F(RunnerTest, RefusedOsPrioritiesReachTheSummary) {
  Experiment e = Make("name = \"nice\"\nrepetitions = 1\nwarmup_runs = 0\n[settings]\ncpu_threads = 1\n"
                      "os_priority = \"cpu=nice:-5\"\n");
  EXPECT_EQ(RunExperiment(e, Options()), 0);
  auto rows = ReadRunsCsv(Dir() + "/runs.csv");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].at("cpu_os_priority_applied"), "false");
  EXPECT_EQ(rows[0].at("cpu_os_priority_refused"), "EPERM: fake refusal");
  EXPECT_NE(ReadFile(Dir() + "/summary.md").find("cpu nice:-5 not applied: EPERM: fake refusal"), std::string::npos);
}

TEST_F(RunnerTest, CtrlCStopsTheChildrenKeepsFinishedRunsAndResumes) {
  setenv("FAKE_GILLAB_HANG_ONCE", (root_ / "hung-once").c_str(), 1);
  // Point 0 finishes, point 1 hangs until the "Ctrl-C".
  Experiment e = Make("name = \"ctrl-c\"\nrepetitions = 1\nwarmup_runs = 0\n[settings]\ntimeout_s = 60\n"
                      "[sweep]\nwork_units = [0, 777]\n");
  std::string hung = (root_ / "hung-once").string();
  std::thread ctrl_c([hung] {
    // Ctrl-C once the second run's client hangs (bounded: 30 s).
    for (int i = 0; i < 300 && !fs::exists(hung); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    kill(getpid(), SIGINT);
  });
  auto start = std::chrono::steady_clock::now();
  int status = RunExperiment(e, Options());
  ctrl_c.join();
  EXPECT_EQ(status, 130);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(50));
  EXPECT_EQ(ReadRunsCsv(Dir() + "/runs.csv").size(), 1u);
  EXPECT_TRUE(fs::exists(hung));
  ExpectNoChildLeft();
  ClearInterruptForTest();

  RunnerOptions resume = Options();
  resume.out_dir.clear();
  resume.resume_dir = Dir();
  EXPECT_EQ(RunExperiment(e, resume), 0);  // the same experiment file may be named again
  EXPECT_EQ(ReadRunsCsv(Dir() + "/runs.csv").size(), 2u);
}

TEST_F(RunnerTest, ResumeRefusesADifferentExperimentAndANonEmptyOutput) {
  Experiment e = Make("name = \"one\"\nrepetitions = 1\nwarmup_runs = 0\n");
  ASSERT_EQ(RunExperiment(e, Options()), 0);
  EXPECT_THROW(RunExperiment(e, Options()), UsageError);  // -o DIR exists and is not empty
  Experiment other = Make("name = \"one\"\nrepetitions = 1\nwarmup_runs = 0\n[settings]\nrequests = 3\n");
  RunnerOptions resume = Options();
  resume.out_dir.clear();
  resume.resume_dir = Dir();
  EXPECT_THROW(RunExperiment(other, resume), UsageError);
  resume.resume_dir = (root_ / "nowhere").string();
  EXPECT_THROW(RunExperiment(e, resume), UsageError);
}

TEST(RunnerArgs, ServeAndLoadCommandLinesFollowTheSettings) {
  Experiment e = ParseExperiment(
      "[settings]\nserver = \"multiprocessing\"\nengine = \"native\"\ncpu_threads = 1\nrate = 500\n"
      "os_priority = \"cpu=nice:10\"\nhandler = \"primes\"\n",
      "x.toml");
  Point p = e.Points()[0];
  auto serve = ServeArgs(p, "/bin/gillab", "ipc://n", "");
  std::string line;
  for (const auto& a : serve) line += a + " ";
  EXPECT_EQ(line.find("--policy"), std::string::npos) << line;  // native: no lock settings
  EXPECT_NE(line.find("--os-priority cpu=nice:10"), std::string::npos);
  EXPECT_NE(line.find("--endpoint ipc://n"), std::string::npos);
  auto load = LoadArgs(p, "/bin/gillab", "ipc://n", "/tmp/l.json", 50);
  line.clear();
  for (const auto& a : load) line += a + " ";
  EXPECT_NE(line.find("--rate 500"), std::string::npos) << line;
  EXPECT_EQ(line.find("--think-us"), std::string::npos);
  EXPECT_NE(line.find("--expect any"), std::string::npos);  // primes replies are not echoes
  EXPECT_NE(line.find("--server multiprocessing"), std::string::npos);
  EXPECT_NE(line.find("--warmup 50"), std::string::npos);
}

TEST(RunnerEstimate, AConvoyCostsASwitchIntervalPerRequest) {
  Experiment e = ParseExperiment("[settings]\nrequests = 1000\nthink_us = 100\n[sweep]\ncpu_threads = [0, 1]\n", "x.toml");
  auto points = e.Points();
  double unloaded = EstimateRunSeconds(points[0], 0), loaded = EstimateRunSeconds(points[1], 0);
  EXPECT_GT(loaded, unloaded + 4.0);  // 1000 requests x ~5 ms
  EXPECT_LT(loaded, unloaded + 6.0);
}

TEST(RunnerEstimate, MoreCpuThreadsMakeALongerConvoyAndTicketQueuesLongest) {
  Experiment e = ParseExperiment(
      "[settings]\nrequests = 1000\nthink_us = 100\n[sweep]\npolicy = [\"newgil\", \"ticket\"]\ncpu_threads = [1, 4]\n",
      "x.toml");
  auto points = e.Points();  // newgil 1, newgil 4, ticket 1, ticket 4
  ASSERT_EQ(points.size(), 4u);
  const double newgil1 = EstimateRunSeconds(points[0], 0), newgil4 = EstimateRunSeconds(points[1], 0);
  const double ticket1 = EstimateRunSeconds(points[2], 0), ticket4 = EstimateRunSeconds(points[3], 0);
  EXPECT_GT(newgil4, 4 * newgil1);  // 1000 x 5.2 intervals against 1000 x 1
  EXPECT_GT(ticket1, 1.5 * newgil1);
  EXPECT_GT(ticket4, 1.5 * newgil4);
}

// `priority` spares the I/O thread the convoy only when its lock priority is
// above the CPU threads' (read from the map, not from the text "io=").
TEST(RunnerEstimate, PriorityAvoidsTheConvoyOnlyWhenIoOutranksCpu) {
  Experiment e = ParseExperiment(
      "[settings]\nrequests = 1000\nthink_us = 100\npolicy = \"priority\"\ncpu_threads = 1\n"
      "[sweep]\nlock_priority = [\"io=1,cpu=0\", \"io=0,cpu=1\", \"cpu=-1\", \"\"]\n",
      "x.toml");
  auto points = e.Points();
  ASSERT_EQ(points.size(), 4u);
  const double io_above = EstimateRunSeconds(points[0], 0), io_below = EstimateRunSeconds(points[1], 0);
  const double cpu_below = EstimateRunSeconds(points[2], 0), equal = EstimateRunSeconds(points[3], 0);
  EXPECT_GT(io_below, io_above + 4.0);  // 1000 requests x ~5 ms of convoy
  EXPECT_NEAR(cpu_below, io_above, 1e-9);  // io (0) above cpu (-1)
  EXPECT_NEAR(equal, io_below, 1e-9);      // equals: round-robin, a convoy
}

}  // namespace
}  // namespace gillab::experiments
