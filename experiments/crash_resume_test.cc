// crash_resume_test.cc — `kill -9` of the runner in the middle of a sweep
// (testdata/crash.toml: four short runs on the multiprocessing server), then
// `gillab run --resume`.
//
// Checked: the runner's serve and load children die with it (PR_SET_PDEATHSIG)
// instead of living on as orphans; the shared-memory queues its killed server
// left are removed when the next run starts; every row written before the kill
// stays byte for byte; the resume runs only the rest, so every point appears
// exactly once, every row is whole, and summary.md is written.
// (A half-written trailing row is dropped on resume: RunE2e covers that with a
// deliberately truncated runs.csv, since a real kill -9 rarely lands mid-write.)
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <fmt/core.h>

#include "experiments/child_process.h"
#include "experiments/experiment.h"
#include "experiments/results.h"
#include "servers/e2e_test_util.h"

namespace gillab::experiments {
namespace {

namespace fs = std::filesystem;

std::string ReadFileOrEmpty(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

using servers::AliveNotZombie;
using servers::ProcStatus;

std::string Cmdline(pid_t pid) {
  std::string text = ReadFileOrEmpty(fmt::format("/proc/{}/cmdline", pid));
  std::replace(text.begin(), text.end(), '\0', ' ');
  return text;
}

// Live (not zombie) processes for which pick(pid) holds.
template <typename Pick>
std::vector<pid_t> Processes(Pick pick) {
  std::vector<pid_t> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename();
    if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit)) continue;
    const pid_t pid = std::stoi(name);
    if (AliveNotZombie(pid) && pick(pid)) out.push_back(pid);
  }
  return out;
}

std::vector<std::string> ShmEntries(const std::string& prefix) {
  std::vector<std::string> out;
  for (const auto& entry : fs::directory_iterator("/dev/shm"))
    if (entry.path().filename().string().starts_with(prefix)) out.push_back(entry.path().filename());
  return out;
}

size_t CountRows(const std::string& path) {
  std::ifstream in(path);
  size_t lines = 0;
  for (std::string line; std::getline(in, line);) ++lines;
  return lines == 0 ? 0 : lines - 1;  // minus the header (a partial last line counts: conservative)
}

class CrashResume : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / fmt::format("gillab-crash-resume-{}", getpid());
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }
  fs::path root_;
};

TEST_F(CrashResume, Kill9OfTheRunnerLeavesNoOrphansAndResumeCompletesEveryPointOnce) {
  const std::string dir = (root_ / "crash").string();
  const std::string csv = dir + "/runs.csv";
  const size_t points = LoadExperiment(GILLAB_CRASH_TOML).Points().size();
  ASSERT_EQ(points, 4u);

  // 1. Start the sweep; once a row is written and the next run's load is under way, kill -9 the runner.
  ChildProcess runner({.argv = {GILLAB_BINARY, "run", GILLAB_CRASH_TOML, "-o", dir, "--no-plots"}, .cpus = {}});
  const pid_t runner_pid = runner.pid();
  auto children = [&] { return Processes([&](pid_t p) { return ProcStatus(p, "PPid") == std::to_string(runner_pid); }); };
  auto load_running = [&] {
    for (pid_t p : children())
      if (Cmdline(p).find(" load ") != std::string::npos) return true;
    return false;
  };
  const bool mid_run = WaitFor({&runner}, gil::KernelNowNs() + 40'000'000'000,
                               [&] { return runner.exited() || (CountRows(csv) >= 1 && load_running()); });
  ASSERT_TRUE(mid_run && !runner.exited()) << "the runner never reached a run after its first row: " << runner.ErrTail();
  const std::vector<pid_t> orphans_to_be = children();
  ASSERT_GE(orphans_to_be.size(), 2u) << "serve and load";
  runner.KillAndReap();
  ASSERT_EQ(runner.exit_code(), 128 + SIGKILL);
  const size_t rows_before = CountRows(csv);
  ASSERT_GE(rows_before, 1u);
  ASSERT_LT(rows_before, points) << "the sweep finished before the kill; make the runs longer";
  const std::string csv_before = ReadFile(csv);

  // 2. Its children die with it (the death signal), bounded: nothing of this sweep keeps running.
  const int64_t give_up_ns = gil::KernelNowNs() + 5'000'000'000;
  auto any_left = [&] {
    for (pid_t p : orphans_to_be)
      if (AliveNotZombie(p)) return true;
    return !Processes([&](pid_t p) { return Cmdline(p).find(dir) != std::string::npos; }).empty();
  };
  while (any_left() && gil::KernelNowNs() < give_up_ns) usleep(10'000);
  for (pid_t p : orphans_to_be) EXPECT_FALSE(AliveNotZombie(p)) << "orphan " << p << ": " << Cmdline(p);
  // The killed server could not remove its queues (ipc://gillab-RUNNER_PID-N).
  const std::string old_prefix = fmt::format("gillab-{}-", runner_pid);
  EXPECT_FALSE(ShmEntries(old_prefix).empty()) << "a serve killed by SIGKILL leaves its queues";

  // 3. --resume completes the rest and sweeps the dead run's queues on start.
  ChildProcess resume({.argv = {GILLAB_BINARY, "run", "--resume", dir, "--no-plots"}, .cpus = {}});
  const pid_t resume_pid = resume.pid();
  const bool done = WaitFor({&resume}, gil::KernelNowNs() + 40'000'000'000, [&] { return resume.exited(); });
  Pump({&resume}, 0);
  resume.KillAndReap();
  ASSERT_TRUE(done) << "the resume did not finish: " << resume.ErrTail();
  ASSERT_EQ(resume.exit_code(), 0) << resume.err();
  EXPECT_NE(resume.err().find(fmt::format("{} runs to do ({} already finished)", points - rows_before, rows_before)),
            std::string::npos) << resume.err();
  EXPECT_NE(resume.err().find("removed"), std::string::npos) << resume.err();
  EXPECT_TRUE(ShmEntries(old_prefix).empty()) << "the dead run's queues are removed by the next run";
  EXPECT_TRUE(ShmEntries(fmt::format("gillab-{}-", resume_pid)).empty()) << "a clean run leaves no queue";

  // 4. Every finished row kept as it was, every point once, every row whole, summary written.
  const std::string after = ReadFile(csv);
  EXPECT_EQ(after.substr(0, csv_before.size()), csv_before);
  ASSERT_FALSE(after.empty());
  EXPECT_EQ(after.back(), '\n');
  const auto table = ParseCsv(after);
  ASSERT_EQ(table.size(), points + 1) << after;
  std::set<std::pair<std::string, std::string>> pairs;
  for (size_t i = 1; i < table.size(); ++i) {
    EXPECT_EQ(table[i].size(), table[0].size()) << "row " << i << " is not whole";
    pairs.insert({table[i][0], table[i][1]});
  }
  EXPECT_EQ(pairs.size(), points) << "a point written twice";
  for (const auto& row : ReadRunsCsv(csv)) {
    EXPECT_EQ(row.at("status"), "ok");
    EXPECT_EQ(row.at("requests_done"), "100");
  }
  EXPECT_TRUE(fs::exists(dir + "/summary.md"));
  EXPECT_FALSE(fs::exists(dir + "/failures.log")) << ReadFile(dir + "/failures.log");
}

}  // namespace
}  // namespace gillab::experiments
