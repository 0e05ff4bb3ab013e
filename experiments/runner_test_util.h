// runner_test_util.h — the fixture of the runner tests that drive `gillab run`
// against the stand-in program (testdata/fake_gillab.py, GILLAB_FAKE_BIN):
// a fresh directory per test, the environment the stand-in reads
// (FAKE_GILLAB_PIDS: every pid it started; FAKE_GILLAB_ARGS: every command
// line), and the checks every such test ends with.
//
//   class RunnerTest : public StandInRunnerTest {};
//   TEST_F(RunnerTest, X) { EXPECT_EQ(RunExperiment(Make("..."), Options()), 0); ExpectNoChildLeft(); }
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "experiments/runner.h"
#include "experiments/child_process.h"
#include "gil/error.h"

namespace gillab::experiments {

class StandInRunnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    root_ = std::filesystem::temp_directory_path() /
            ("gillab-" + std::string(info->test_suite_name()) + "-" + std::to_string(getpid()) + "-" + info->name());
    std::filesystem::remove_all(root_);
    std::filesystem::create_directories(root_);
    pids_file_ = (root_ / "pids").string();
    args_file_ = (root_ / "args").string();
    setenv("FAKE_GILLAB_PIDS", pids_file_.c_str(), 1);
    setenv("FAKE_GILLAB_ARGS", args_file_.c_str(), 1);
    unsetenv("FAKE_GILLAB_HANG_ONCE");
    ClearInterruptForTest();
  }
  void TearDown() override {
    unsetenv("FAKE_GILLAB_ARGS");
    ClearInterruptForTest();
    std::filesystem::remove_all(root_);
  }

  Experiment Make(const std::string& body) {
    std::string path = (root_ / "exp.toml").string();
    std::ofstream(path) << body;
    return LoadExperiment(path);
  }
  RunnerOptions Options(const std::string& dir_name = "out") {
    return {.gillab_bin = GILLAB_FAKE_BIN, .out_dir = Dir(dir_name), .resume_dir = "", .plots = false,
            .print_summary = false};
  }
  std::string Dir(const std::string& name = "out") { return (root_ / name).string(); }
  // The stand-in's command lines, one per child it ran.
  std::vector<std::string> ChildArgLines() {
    std::ifstream in(args_file_);
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
  }
  // Every process the stand-in started has been reaped: none is left running.
  void ExpectNoChildLeft() {
    std::ifstream in(pids_file_);
    int count = 0;
    for (int pid; in >> pid; ++count) {
      errno = 0;
      EXPECT_TRUE(kill(pid, 0) != 0 && errno == ESRCH) << "process " << pid << " is still there";
    }
    EXPECT_GT(count, 0) << "the stand-in never ran";
  }

  std::filesystem::path root_;
  std::string pids_file_, args_file_;
};

}  // namespace gillab::experiments
