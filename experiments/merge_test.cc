// merge_test.cc — `gillab run --shard` and `gillab merge` against the deterministic stand-in
// (testdata/fake_gillab.py, as runner_test): shard directories, their resume, and the merge's
// checks, duplicates, missing runs and the union it writes.
#include "experiments/merge.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "experiments/child_process.h"
#include "experiments/results.h"
#include "experiments/runner.h"
#include "gil/error.h"

namespace gillab::experiments {
namespace {

namespace fs = std::filesystem;
using Cells = std::vector<std::string>;

// Three points x two repetitions: six runs, so three shards hold two each.
constexpr const char* kSweep = R"(
name = "fake-shards"
repetitions = 2
warmup_runs = 0
[settings]
requests = 10
think_us = 100
[sweep]
cpu_threads = [0, 1, 2]
)";

class MergeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("gillab-merge-test-" + std::to_string(getpid()) + "-" +
                                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
    unsetenv("FAKE_GILLAB_PIDS");
    unsetenv("FAKE_GILLAB_HANG_ONCE");
    ClearInterruptForTest();
  }
  void TearDown() override { fs::remove_all(root_); }

  Experiment Make(const std::string& body, const std::string& file = "exp.toml") {
    std::string path = (root_ / file).string();
    std::ofstream(path) << body;
    return LoadExperiment(path);
  }
  std::string Dir(const std::string& name) { return (root_ / name).string(); }
  // Runs shard K/N of the experiment into DIR (a shard of 1 is the whole sweep).
  std::string RunShard(const Experiment& e, int k, int n, const std::string& name) {
    RunnerOptions o{.gillab_bin = GILLAB_FAKE_BIN, .out_dir = Dir(name), .resume_dir = "", .plots = false,
                    .print_summary = false, .shard = Shard{k, n}};
    EXPECT_EQ(RunExperiment(e, o), 0) << name;
    return Dir(name);
  }
  int ResumeDir(const std::string& dir, std::optional<Shard> shard = std::nullopt) {
    Experiment nothing_given;  // `gillab run --resume DIR`
    RunnerOptions o{.gillab_bin = GILLAB_FAKE_BIN, .out_dir = "", .resume_dir = dir, .plots = false,
                    .print_summary = false, .shard = shard};
    return RunExperiment(nothing_given, o);
  }
  // runs.csv's rows as cells, header excluded.
  static std::vector<Cells> Rows(const std::string& dir) {
    auto rows = ParseCsv(ReadFile(dir + "/runs.csv"));
    EXPECT_FALSE(rows.empty());
    EXPECT_EQ(rows[0], RunColumns());
    return {rows.begin() + 1, rows.end()};
  }
  static std::set<RunId> Runs(const std::string& dir) {
    std::set<RunId> runs;
    for (const auto& row : Rows(dir)) EXPECT_TRUE(runs.insert({std::stoi(row[0]), std::stoi(row[1])}).second);
    return runs;
  }
  static std::string MergeError(const std::string& out, const std::vector<std::string>& dirs) {
    try {
      MergeResults(out, dirs, false);
    } catch (const UsageError& e) {
      return e.what();
    }
    return "(no error)";
  }

  fs::path root_;
};

TEST_F(MergeTest, AShardRunsOnlyItsRunsAndRecordsTheShardAndHost) {
  Experiment e = Make(kSweep);
  std::string dir = RunShard(e, 1, 3, "shard-1");
  auto expected = ShardRuns(e, {1, 3});
  EXPECT_EQ(Runs(dir), std::set<RunId>(expected.begin(), expected.end()));
  auto meta = nlohmann::json::parse(ReadFile(dir + "/meta.json"));
  EXPECT_EQ(meta["shard"]["index"], 1);
  EXPECT_EQ(meta["shard"]["count"], 3);
  EXPECT_EQ(meta["shard"]["runs"], ShardJson(e, {1, 3})["runs"]);
  EXPECT_EQ(meta["runs_total"], 2);
  EXPECT_FALSE(meta["hostname"].get<std::string>().empty());
  EXPECT_EQ(meta["sessions"][0]["host"], meta["hostname"]);
}

TEST_F(MergeTest, ResumeOfAShardCompletesThatShardOnly) {
  Experiment e = Make(kSweep);
  std::string dir = RunShard(e, 0, 2, "shard-0");
  auto rows = Rows(dir);
  ASSERT_EQ(rows.size(), 3u);
  // Drop the last row, as if the shard had been killed before its last run.
  std::string text = CsvLine(RunColumns()) + CsvLine(rows[0]) + CsvLine(rows[1]);
  WriteFileAtomic(dir + "/runs.csv", text);
  EXPECT_THROW(ResumeDir(dir, Shard{1, 2}), UsageError);  // not the shard this directory holds
  EXPECT_EQ(Rows(dir).size(), 2u);
  EXPECT_EQ(ResumeDir(dir, Shard{0, 2}), 0);
  auto expected = ShardRuns(e, {0, 2});
  EXPECT_EQ(Runs(dir), std::set<RunId>(expected.begin(), expected.end()));
  EXPECT_EQ(ResumeDir(dir), 0);  // complete: nothing more to run, nothing from the other shard
  EXPECT_EQ(Rows(dir).size(), 3u);
}

TEST_F(MergeTest, MergedRunsCsvIsTheUnionOfTheShardsInTheRunnersOrder) {
  Experiment e = Make(kSweep);
  std::vector<std::string> dirs;
  for (int k = 0; k < 3; ++k) dirs.push_back(RunShard(e, k, 3, "shard-" + std::to_string(k)));
  MergeResult m = MergeResults(Dir("merged"), dirs, false);
  EXPECT_EQ(m.runs_total, 6);
  EXPECT_EQ(m.runs_merged, 6);
  EXPECT_TRUE(m.missing.empty());
  std::multiset<Cells> shard_rows;
  for (const auto& d : dirs)
    for (auto& row : Rows(d)) shard_rows.insert(row);
  auto merged = Rows(Dir("merged"));
  EXPECT_EQ(std::multiset<Cells>(merged.begin(), merged.end()), shard_rows);
  for (size_t i = 0; i < merged.size(); ++i) {  // repetitions outer, points inner: as one run writes it
    EXPECT_EQ(merged[i][0], std::to_string(i % 3));
    EXPECT_EQ(merged[i][1], std::to_string(i / 3));
  }
  auto meta = nlohmann::json::parse(ReadFile(Dir("merged") + "/meta.json"));
  EXPECT_FALSE(meta.contains("shard"));
  ASSERT_EQ(meta["shards"].size(), 3u);
  EXPECT_EQ(meta["shards"][2]["shard_text"], "2/3");
  EXPECT_EQ(meta["shards"][2]["runs_kept"], 2);
  EXPECT_EQ(meta["hosts"].size(), 1u);
  EXPECT_TRUE(meta["missing_runs"].empty());
  EXPECT_EQ(ReadFile(Dir("merged") + "/experiment.toml"), ReadFile(dirs[0] + "/experiment.toml"));
  for (int p = 0; p < 3; ++p)
    for (int r = 0; r < 2; ++r)
      EXPECT_TRUE(fs::exists(fmt::format("{}/raw/p{:03}_r{}_load.json", Dir("merged"), p, r))) << p << " " << r;
  EXPECT_NE(m.summary.find("# fake-shards — summary"), std::string::npos);
  EXPECT_EQ(ReadFile(Dir("merged") + "/summary.md"), m.summary);
  // The merged directory is complete: resuming it runs nothing.
  EXPECT_EQ(ResumeDir(Dir("merged")), 0);
  EXPECT_EQ(Rows(Dir("merged")).size(), 6u);
}

TEST_F(MergeTest, RefusesADifferentExperimentNamingTheFirstMismatch) {
  Experiment e = Make(kSweep);
  std::string a = RunShard(e, 0, 2, "a");
  std::string text = kSweep;
  text.replace(text.find("requests = 10"), 13, "requests = 20");
  std::string b = RunShard(Make(text, "other.toml"), 1, 2, "b");
  std::string error = MergeError(Dir("merged"), {a, b});
  EXPECT_NE(error.find(a + " and " + b + " hold different experiments: `requests = 10` against `requests = 20`"),
            std::string::npos) << error;
  EXPECT_FALSE(fs::exists(Dir("merged"))) << "nothing written before the checks passed";
}

TEST_F(MergeTest, RefusesADifferentGitSha) {
  Experiment e = Make(kSweep);
  std::string a = RunShard(e, 0, 2, "a"), b = RunShard(e, 1, 2, "b");
  auto meta = nlohmann::json::parse(ReadFile(b + "/meta.json"));
  std::string sha = nlohmann::json::parse(ReadFile(a + "/meta.json"))["git_sha"];
  meta["git_sha"] = "0123abc";
  WriteFileAtomic(b + "/meta.json", meta.dump());
  std::string error = MergeError(Dir("merged"), {a, b});
  EXPECT_NE(error.find(a + " and " + b + " come from different gillab builds: git sha " + sha + " against 0123abc"),
            std::string::npos) << error;
}

TEST_F(MergeTest, KeepsAnIdenticalDuplicateRunOnceAndRefusesADifferentOne) {
  Experiment e = Make(kSweep);
  std::string a = RunShard(e, 0, 2, "a"), b = RunShard(e, 1, 2, "b");
  fs::copy(a, Dir("a-copy"), fs::copy_options::recursive);
  MergeResult m = MergeResults(Dir("merged"), {a, b, Dir("a-copy")}, false);
  EXPECT_EQ(m.runs_merged, 6);
  EXPECT_EQ(m.duplicates_dropped, 3);
  EXPECT_EQ(Rows(Dir("merged")).size(), 6u);

  // The copy measured one run differently: two results for one run are refused.
  auto rows = Rows(Dir("a-copy"));
  auto column = std::find(RunColumns().begin(), RunColumns().end(), "req_per_s") - RunColumns().begin();
  rows[1][column] = "999";
  std::string text = CsvLine(RunColumns());
  for (const auto& row : rows) text += CsvLine(row);
  WriteFileAtomic(Dir("a-copy") + "/runs.csv", text);
  std::string error = MergeError(Dir("merged-2"), {a, b, Dir("a-copy")});
  EXPECT_NE(error.find(fmt::format("point {} rep {} is in both {} and {} with different results", rows[1][0], rows[1][1],
                                   a, Dir("a-copy"))),
            std::string::npos) << error;
}

TEST_F(MergeTest, MissingRunsAreListedAndCompletedByResume) {
  Experiment e = Make(kSweep);
  std::string a = RunShard(e, 0, 3, "a"), c = RunShard(e, 2, 3, "c");
  MergeResult m = MergeResults(Dir("merged"), {a, c}, false);
  EXPECT_EQ(m.runs_merged, 4);
  EXPECT_EQ(m.missing, ShardRuns(e, {1, 3}));
  auto meta = nlohmann::json::parse(ReadFile(Dir("merged") + "/meta.json"));
  EXPECT_EQ(meta["missing_runs"], ShardJson(e, {1, 3})["runs"]);
  EXPECT_EQ(meta["runs_finished"], 4);
  EXPECT_EQ(ResumeDir(Dir("merged")), 0);
  EXPECT_EQ(Runs(Dir("merged")).size(), 6u);
  meta = nlohmann::json::parse(ReadFile(Dir("merged") + "/meta.json"));
  EXPECT_EQ(meta["runs_finished"], 6);
  EXPECT_EQ(meta["shards"].size(), 2u);  // the merge's record stays
}

TEST_F(MergeTest, RefusesANonEmptyOutputAndADirectoryThatHoldsNoResults) {
  Experiment e = Make(kSweep);
  std::string a = RunShard(e, 0, 2, "a");
  EXPECT_NE(MergeError(a, {a}).find("exists and is not empty"), std::string::npos);
  fs::create_directories(Dir("empty"));
  EXPECT_NE(MergeError(Dir("merged"), {a, Dir("empty")}).find(Dir("empty") + " is not a results directory"),
            std::string::npos);
  EXPECT_NE(MergeError(Dir("merged"), {}).find("at least one"), std::string::npos);
}

}  // namespace
}  // namespace gillab::experiments
