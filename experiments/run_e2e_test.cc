// run_e2e_test.cc — the real `gillab` binary end to end: `run` of testdata/tiny.toml,
// the files it writes, `report`, resume of a deliberately truncated run, bad files,
// `list`, `sysinfo`, `--dry-run`.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "experiments/child_process.h"
#include "experiments/experiment.h"
#include "gil/histogram.h"
#include "experiments/gillab_test_util.h"
#include "experiments/results.h"

namespace gillab::experiments {
namespace {

namespace fs = std::filesystem;

using Result = GillabResult;

// Runs gillab to completion (bounded by timeout_s) and reaps it.
Result Gillab(const std::vector<std::string>& args, double timeout_s = 240) { return RunGillab(args, timeout_s); }

std::set<std::pair<std::string, std::string>> Pairs(const std::vector<Row>& rows) {
  std::set<std::pair<std::string, std::string>> pairs;
  for (const auto& r : rows) pairs.insert({r.at("point"), r.at("repetition")});
  return pairs;
}

class RunE2e : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("gillab-run-e2e-" + std::to_string(getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }
  fs::path root_;
};

TEST_F(RunE2e, TinyExperimentWritesEveryFileAndResumesATruncatedRun) {
  std::string dir = (root_ / "tiny").string();
  Result run = Gillab({"run", GILLAB_TINY_TOML, "-o", dir});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_NE(run.out.find("# tiny — summary"), std::string::npos) << run.out;  // printed at the end
  EXPECT_NE(run.err.find("[8/8]"), std::string::npos) << run.err;            // progress lines

  // runs.csv: 2 variants x 2 CPU-thread counts x 2 repetitions, each pair once, measured.
  auto rows = ReadRunsCsv(dir + "/runs.csv");
  ASSERT_EQ(rows.size(), 8u);
  EXPECT_EQ(Pairs(rows).size(), 8u);
  for (const auto& r : rows) {
    EXPECT_EQ(r.at("status"), "ok");
    EXPECT_GT(std::stod(r.at("req_per_s")), 0) << r.at("point");
    EXPECT_GT(std::stod(r.at("latency_p50_us")), 0);
    EXPECT_LE(std::stod(r.at("latency_p50_us")), std::stod(r.at("latency_max_us")));
    EXPECT_EQ(r.at("errors"), "0");
    EXPECT_EQ(r.at("requests"), "40");
    EXPECT_EQ(r.at("requests_done"), "40");
    if (r.at("variant") == "toy newgil") {
      EXPECT_EQ(r.at("engine"), "toy");
      EXPECT_FALSE(r.at("io_hold_ns").empty()) << "the toy engine reports lock statistics";
      EXPECT_FALSE(r.at("io_wait_ns").empty());
      if (r.at("cpu_threads") == "1") {
        EXPECT_FALSE(r.at("cpu_hold_ns").empty());
        EXPECT_FALSE(r.at("cpu_iterations_per_s").empty());
      }
    }
  }
  // meta.json
  auto meta = nlohmann::json::parse(ReadFile(dir + "/meta.json"));
  for (const char* key : {"git_sha", "git_dirty", "kernel", "cpu_model", "cores", "pinning", "versions",
                          "load_average_start", "load_average_end", "priority_probes"})
    EXPECT_TRUE(meta.contains(key)) << key;
  for (const char* key : {"libzmq", "boost", "python_embedded", "compiler"})
    EXPECT_TRUE(meta["versions"].contains(key)) << key;
  // summary.md and the resolved experiment
  std::string summary = ReadFile(dir + "/summary.md");
  EXPECT_NE(summary.find("| variant | 0 CPU | 1 CPU | slowdown |"), std::string::npos) << summary;
  EXPECT_NE(summary.find("| toy newgil | "), std::string::npos) << summary;
  EXPECT_NE(summary.find("## Per point"), std::string::npos);
  EXPECT_NE(summary.find("## The lock per role"), std::string::npos);
  EXPECT_EQ(LoadExperiment(dir + "/experiment.toml").Points().size(), 4u);
  // plots the data supports: CPU threads were swept with 0, latencies exist
  EXPECT_TRUE(fs::exists(dir + "/plots/slowdown.png"));
  EXPECT_TRUE(fs::exists(dir + "/plots/latency_cdf.png"));
  EXPECT_FALSE(fs::exists(dir + "/plots/switch_interval.png"));  // not swept
  // Each run's whole latency distribution, which latency_cdf.png draws, is kept beside runs.csv.
  auto load = nlohmann::json::parse(ReadFile(dir + "/raw/p001_r0_load.json"));
  EXPECT_EQ(load["latency_us"]["cdf"].size(), gil::Histogram::kCdfPercentiles.size());

  // `gillab report` regenerates the same summary from runs.csv.
  fs::remove(dir + "/summary.md");
  Result report = Gillab({"report", dir, "--no-plots"});
  ASSERT_EQ(report.exit_code, 0) << report.err;
  EXPECT_EQ(ReadFile(dir + "/summary.md"), summary);

  // Truncate: keep 5 whole rows and half of the 6th (a run killed mid-write).
  std::string csv = ReadFile(dir + "/runs.csv");
  std::vector<size_t> ends;
  for (size_t i = 0; i < csv.size(); ++i)
    if (csv[i] == '\n') ends.push_back(i);
  ASSERT_EQ(ends.size(), 9u);  // header + 8 rows
  std::string kept = csv.substr(0, ends[5] + 1);
  std::string partial = csv.substr(ends[5] + 1, (ends[6] - ends[5]) / 2);
  {
    std::ofstream out(dir + "/runs.csv", std::ios::trunc);
    out << kept << partial;
  }
  Result resume = Gillab({"run", "--resume", dir, "--no-plots"});
  ASSERT_EQ(resume.exit_code, 0) << resume.err;
  EXPECT_NE(resume.err.find("3 runs to do (5 already finished)"), std::string::npos) << resume.err;
  std::string after = ReadFile(dir + "/runs.csv");
  EXPECT_EQ(after.substr(0, kept.size()), kept);  // finished rows untouched
  auto resumed = ReadRunsCsv(dir + "/runs.csv");
  EXPECT_EQ(resumed.size(), 8u);
  EXPECT_EQ(Pairs(resumed), Pairs(rows));  // the same pairs, none twice
  EXPECT_EQ(std::count(after.begin(), after.end(), '\n'), 9);
}

TEST_F(RunE2e, DryRunCountsRunsWithoutRunningAnything) {
  Result dry = Gillab({"run", GILLAB_TINY_TOML, "--dry-run", "-s", "cpu_threads=[0,1,2]"}, 60);
  ASSERT_EQ(dry.exit_code, 0) << dry.err;
  EXPECT_NE(dry.out.find("6 points x 2 repetitions = 12 runs"), std::string::npos) << dry.out;
  EXPECT_NE(dry.out.find("estimated time"), std::string::npos);
  EXPECT_NE(dry.out.find("serve --server blocking"), std::string::npos);
}

TEST_F(RunE2e, BadExperimentFilesEndWithOneLineAndStatus2) {
  std::string path = (root_ / "bad.toml").string();
  std::ofstream(path) << "name = \"bad\"\n[settings]\ncpu_thread = 1\n";
  Result bad = Gillab({"run", path}, 60);
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_EQ(bad.err, "gillab: error: " + path + ":3: unknown key 'cpu_thread' (did you mean 'cpu_threads'?)\n");
  Result override = Gillab({"run", GILLAB_TINY_TOML, "--dry-run", "-s", "server=udp"}, 60);
  EXPECT_EQ(override.exit_code, 2);
  EXPECT_NE(override.err.find("-s server=udp: server must be one of"), std::string::npos) << override.err;
  Result missing = Gillab({"run", (root_ / "missing.toml").string()}, 60);
  EXPECT_EQ(missing.exit_code, 2);
  Result nothing = Gillab({"report", (root_ / "nowhere").string()}, 60);
  EXPECT_EQ(nothing.exit_code, 2);
}

TEST_F(RunE2e, ListAndSysinfoNameWhatCanBeUsed) {
  Result list = Gillab({"list"}, 60);
  ASSERT_EQ(list.exit_code, 0) << list.err;
  for (const char* word : {"newgil", "priority", "ticket", "mutex", "none", "zmq", "multiprocessing", "blocking",
                           "nonblocking", "threaded", "native", "toy", "cpython", "cpu_spin", "echo", "primes",
                           "convoy.toml", "switch_interval.toml", "priorities.toml", "cpu_threads.toml",
                           "pacing.toml", "primes_scaling.toml"})
    EXPECT_NE(list.out.find(word), std::string::npos) << word;
  Result sysinfo = Gillab({"sysinfo"}, 60);
  ASSERT_EQ(sysinfo.exit_code, 0) << sysinfo.err;
  for (const char* word : {"cores", "kernel", "nice -5", "SCHED_FIFO", "SCHED_IDLE", "SCHED_BATCH", "RLIMIT_NOFILE"})
    EXPECT_NE(sysinfo.out.find(word), std::string::npos) << word;
}

TEST_F(RunE2e, EveryShippedExperimentResolves) {
  fs::path dir = fs::path(GILLAB_TINY_TOML).parent_path().parent_path();
  int count = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() != ".toml") continue;
    ++count;
    Result dry = Gillab({"run", entry.path().string(), "--dry-run"}, 60);
    EXPECT_EQ(dry.exit_code, 0) << entry.path() << ": " << dry.err;
  }
  // convoy, switch_interval, priorities, cpu_threads, pacing, primes_scaling, calibration, http_convoy, c10k,
  // green_convoy, stm_tornado, stm_tornado_http, stm_contended, pyparallel_http, and the simulator's server
  // points sim_validation and sim_cores (mode = "simulate"; its contend sweeps sit in experiments/sim/ and
  // run through scripts/sim_sweep).
  EXPECT_EQ(count, 16);
}

}  // namespace
}  // namespace gillab::experiments
