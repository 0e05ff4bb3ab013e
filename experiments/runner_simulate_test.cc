// runner_simulate_test.cc — `gillab run` with mode = "simulate" (design §13)
// against the stand-in (testdata/fake_gillab.py's simulate-serve): one child
// per run with the command line of runner.h, the same rows plus mode and
// cores, meta.json's modes, a failing child, resume, and the validation table.
#include "experiments/runner.h"
#include "experiments/runner_test_util.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "experiments/child_process.h"
#include "experiments/results.h"
#include "gil/error.h"

namespace gillab::experiments {
namespace {

namespace fs = std::filesystem;

std::string Joined(const std::vector<std::string>& args) {
  std::string line;
  for (const auto& a : args) line += a + " ";
  return line;
}

class RunnerSimulateTest : public StandInRunnerTest {
 protected:
  RunnerOptions Resume() {
    RunnerOptions o = Options();
    o.out_dir.clear();
    o.resume_dir = Dir();
    return o;
  }
};

TEST_F(RunnerSimulateTest, ASimulatedSweepIsOneChildPerRunWithCoresAndSeedPerRepetition) {
  Experiment e = Make(R"(
name = "sim"
mode = "simulate"
repetitions = 2
warmup_runs = 0
cores = [2, 8]
[settings]
requests = 10
seed = 40
[sweep]
cpu_threads = [0, 1]
)");
  ASSERT_EQ(RunExperiment(e, Options()), 0);
  auto rows = ReadRunsCsv(Dir() + "/runs.csv");
  ASSERT_EQ(rows.size(), 8u);
  for (const auto& r : rows) {
    EXPECT_EQ(r.at("mode"), "simulate");
    EXPECT_EQ(r.at("status"), "ok");
    EXPECT_EQ(r.at("seed"), "40");  // the setting; repetition r ran seed + r
    EXPECT_EQ(r.at("req_per_s"), r.at("cpu_threads") == "0" ? "1100" : "550");
    EXPECT_FALSE(r.at("io_wait_p50_ns").empty());  // serve's exit JSON from the child's stdout
    EXPECT_EQ(r.at("lock_switches"), "42");
  }
  EXPECT_EQ(rows[0].at("cores"), "2");
  EXPECT_EQ(rows[2].at("cores"), "8");
  // One simulate-serve child per run, nothing else: no serve, no load.
  const auto lines = ChildArgLines();
  ASSERT_EQ(lines.size(), 8u);
  EXPECT_EQ(std::count_if(lines.begin(), lines.end(), [](auto& l) { return l.find("--seed 40 ") != std::string::npos; }), 4);
  EXPECT_EQ(std::count_if(lines.begin(), lines.end(), [](auto& l) { return l.find("--seed 41 ") != std::string::npos; }), 4);
  EXPECT_NE(lines[2].find("--cores 8 "), std::string::npos) << lines[2];
  auto meta = nlohmann::json::parse(ReadFile(Dir() + "/meta.json"));
  EXPECT_EQ(meta["modes"], nlohmann::json::array({"simulate"}));
  EXPECT_TRUE(fs::exists(Dir() + "/raw/p003_r1_load.json"));
  EXPECT_TRUE(fs::exists(Dir() + "/raw/p003_r1_serve.json"));
  // The resolved file keeps one representation: cores swept under [sweep], mode under [settings].
  Experiment resolved = LoadExperiment(Dir() + "/experiment.toml");
  EXPECT_EQ(resolved.Points().size(), 4u);
  EXPECT_EQ(resolved.ToToml().substr(resolved.ToToml().find("[settings]")),
            e.ToToml().substr(e.ToToml().find("[settings]")));
  ExpectNoChildLeft();
}

TEST_F(RunnerSimulateTest, RealAndSimulatedSideBySideGiveTheValidationTable) {
  Experiment e = Make(R"(
name = "validate"
repetitions = 1
warmup_runs = 1
[settings]
requests = 10
cores = 2
[sweep]
cpu_threads = [0, 1, 2]
mode = ["real", "simulate"]
)");
  ASSERT_EQ(RunExperiment(e, Options()), 0);
  auto rows = ReadRunsCsv(Dir() + "/runs.csv");
  ASSERT_EQ(rows.size(), 6u);
  for (const auto& r : rows) {
    if (r.at("mode") == "real") {
      // A real run's cores: the CPUs the runner may use, not the setting.
      cpu_set_t allowed;
      CPU_ZERO(&allowed);
      ASSERT_EQ(sched_getaffinity(0, sizeof allowed, &allowed), 0);
      EXPECT_EQ(r.at("cores"), std::to_string(CPU_COUNT(&allowed)));
    } else {
      EXPECT_EQ(r.at("cores"), "2");
    }
  }
  auto meta = nlohmann::json::parse(ReadFile(Dir() + "/meta.json"));
  EXPECT_EQ(meta["modes"], nlohmann::json::array({"real", "simulate"}));
  // The warm-up run is the first point's (real): serve + load, and 3 simulated runs.
  EXPECT_EQ(ChildArgLines().size(), 3u);
  const std::string summary = ReadFile(Dir() + "/summary.md");
  ASSERT_NE(summary.find("## Validation: simulated vs real"), std::string::npos) << summary;
  // The stand-in simulates 1.1x the real req/s at 0 and 1 cpu threads and 1.5x at 2.
  EXPECT_NE(summary.find("**1.10** ✓"), std::string::npos) << summary;
  EXPECT_NE(summary.find("**1.50** ⚠"), std::string::npos) << summary;
  EXPECT_NE(summary.find("of 12 comparisons within ±20%"), std::string::npos) << summary;
  ExpectNoChildLeft();
}

TEST_F(RunnerSimulateTest, AFailingChildFailsItsRunAndResumeCompletesATimedOutOne) {
  setenv("FAKE_GILLAB_HANG_ONCE", (root_ / "hung-once").c_str(), 1);
  Experiment e = Make(R"(
name = "sim-fail"
mode = "simulate"
repetitions = 1
warmup_runs = 0
[settings]
requests = 5
timeout_s = 5
[sweep]
work_units = [0, 3, 777]
)");
  EXPECT_EQ(RunExperiment(e, Options()), 1);
  EXPECT_EQ(ReadRunsCsv(Dir() + "/runs.csv").size(), 1u);
  std::string failures = ReadFile(Dir() + "/failures.log");
  EXPECT_NE(failures.find("gillab simulate-serve failed (exit status 1): fake simulator crash"), std::string::npos)
      << failures;
  EXPECT_NE(failures.find("gillab simulate-serve timed out after 5 s (killed)"), std::string::npos) << failures;
  // The stand-in hung once: it left its marker, so on resume it completes (5 s: time enough to get there
  // even when a loaded machine starts python slowly).
  EXPECT_TRUE(fs::exists(root_ / "hung-once"));
  ExpectNoChildLeft();

  Experiment nothing_given;
  EXPECT_EQ(RunExperiment(nothing_given, Resume()), 1);  // the crash again; the hung one completes
  auto rows = ReadRunsCsv(Dir() + "/runs.csv");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1].at("work_units"), "777");
  EXPECT_EQ(rows[1].at("mode"), "simulate");
  ExpectNoChildLeft();
}

TEST_F(RunnerSimulateTest, ClientErrorsInVirtualTimeAreKeptWithStatusErrors) {
  Experiment e = Make("name = \"sim-errors\"\nmode = \"simulate\"\nrepetitions = 1\nwarmup_runs = 0\n"
                      "[settings]\nmessage_bytes = 13\n");
  EXPECT_EQ(RunExperiment(e, Options()), 0);
  auto rows = ReadRunsCsv(Dir() + "/runs.csv");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].at("status"), "errors");
  EXPECT_EQ(rows[0].at("errors"), "1");
  ExpectNoChildLeft();
}

TEST_F(RunnerSimulateTest, AUsageErrorOfTheChildStopsTheExperiment) {
  Experiment e = Make("name = \"sim-usage\"\nmode = \"simulate\"\nrepetitions = 3\nwarmup_runs = 0\n"
                      "[settings]\nwork_units = 2\n[sweep]\ncpu_threads = [0, 1]\n");
  EXPECT_EQ(RunExperiment(e, Options()), 1);
  std::string failures = ReadFile(Dir() + "/failures.log");
  EXPECT_NE(failures.find("fake usage error"), std::string::npos) << failures;
  EXPECT_EQ(std::count(failures.begin(), failures.end(), '\n'), 1);
  ExpectNoChildLeft();
}

TEST(RunnerSimulateArgs, TheChildGetsServeAndLoadFlagsOnceAndNoEndpoint) {
  Experiment e = ParseExperiment(
      "mode = \"simulate\"\n[settings]\nserver = \"blocking\"\npolicy = \"ticket\"\ncpu_threads = 3\n"
      "think_us = 100\nrequests = 50\ncores = 16\nseed = 7\nprotocol = \"http\"\n",
      "x.toml");
  const std::string line = Joined(SimulateServeArgs(e.Points()[0], "/bin/gillab", "/tmp/l.json", 20, 2));
  EXPECT_EQ(line.rfind("/bin/gillab simulate-serve --server blocking ", 0), 0u) << line;
  EXPECT_NE(line.find("--policy ticket"), std::string::npos) << line;
  EXPECT_NE(line.find("--cpu-threads 3"), std::string::npos);
  EXPECT_NE(line.find("--think-us 100"), std::string::npos);
  EXPECT_NE(line.find("--requests 50"), std::string::npos);
  EXPECT_NE(line.find("--warmup 20"), std::string::npos);
  EXPECT_NE(line.find("--target /static"), std::string::npos);
  EXPECT_NE(line.find("--cores 16 --seed 9 --json /tmp/l.json"), std::string::npos) << line;
  EXPECT_EQ(line.find("--endpoint"), std::string::npos);
  // --server and --protocol are flags of both serve and load: passed once.
  EXPECT_EQ(line.find("--server", line.find("--server") + 1), std::string::npos) << line;
  EXPECT_EQ(line.find("--protocol", line.find("--protocol") + 1), std::string::npos) << line;
}

TEST(RunnerSimulateArgs, DryRunShowsTheSimulatedChildAndARoughEstimate) {
  Experiment e = ParseExperiment("[settings]\nrequests = 100\ncores = 4\n[sweep]\nmode = [\"real\", \"simulate\"]\n",
                                 "x.toml");
  const std::string text = DryRunText(e, "/bin/gillab");
  EXPECT_NE(text.find("first simulated run (point 1"), std::string::npos) << text;
  EXPECT_NE(text.find("/bin/gillab simulate-serve"), std::string::npos) << text;
  EXPECT_NE(text.find("first real run (point 0):\n  /bin/gillab serve"), std::string::npos) << text;
  EXPECT_NE(text.find("host seconds guessed"), std::string::npos) << text;
  auto points = e.Points();
  EXPECT_GT(EstimateRunSeconds(points[1], 0), 0.0);
  EXPECT_EQ(RunCores(points[1].settings), "4");
  Point pinned = points[0];
  pinned.settings["server_cpus"] = "0-2";
  EXPECT_EQ(RunCores(pinned.settings), "3");
}

}  // namespace
}  // namespace gillab::experiments
