// shard_test.cc — the shard split is a partition of the sweep's runs, stable, and K/N is checked.
#include "experiments/shard.h"

#include <gtest/gtest.h>

#include <set>

#include <fmt/core.h>

#include "gil/error.h"

namespace gillab::experiments {
namespace {

Experiment Sweep(int points_a, int points_b, int repetitions) {
  std::string a, b;
  for (int i = 0; i < points_a; ++i) a += fmt::format("{}{}", i ? ", " : "", i);
  for (int i = 0; i < points_b; ++i) b += fmt::format("{}{}", i ? ", " : "", 100 + i);
  return ParseExperiment(fmt::format("repetitions = {}\n[sweep]\ncpu_threads = [{}]\nrequests = [{}]\n", repetitions,
                                     a, b),
                         "x.toml");
}

TEST(ShardAssignment, EveryRunIsInExactlyOneShard) {
  for (auto [pa, pb, reps] : {std::tuple{1, 1, 1}, {2, 3, 2}, {3, 1, 5}, {4, 2, 3}}) {
    Experiment e = Sweep(pa, pb, reps);
    const int runs = pa * pb * reps;
    for (int n : {1, 2, 3, 4, 7, runs, runs + 3}) {
      std::set<RunId> seen;
      size_t sizes_min = SIZE_MAX, sizes_max = 0;
      for (int k = 0; k < n; ++k) {
        auto shard = ShardRuns(e, {k, n});
        sizes_min = std::min(sizes_min, shard.size());
        sizes_max = std::max(sizes_max, shard.size());
        for (const RunId& r : shard) {
          EXPECT_TRUE(seen.insert(r).second) << "run p" << r.point << " r" << r.repetition << " in two shards of " << n;
          EXPECT_EQ(ShardOf(r, pa * pb, n), k);
        }
      }
      EXPECT_EQ(static_cast<int>(seen.size()), runs) << pa << "x" << pb << "x" << reps << " over " << n;
      EXPECT_LE(sizes_max - sizes_min, 1u) << "round robin balances the shards";
    }
  }
}

TEST(ShardAssignment, IsStableAndFollowsTheRunnersOrder) {
  Experiment e = Sweep(3, 1, 2);  // runs in order: p0r0 p1r0 p2r0 p0r1 p1r1 p2r1
  EXPECT_EQ(ShardRuns(e, {0, 4}), (std::vector<RunId>{{0, 0}, {1, 1}}));
  EXPECT_EQ(ShardRuns(e, {1, 4}), (std::vector<RunId>{{1, 0}, {2, 1}}));
  EXPECT_EQ(ShardRuns(e, {3, 4}), (std::vector<RunId>{{0, 1}}));
  // The same resolved experiment, loaded again (as every host does), splits the same way.
  Experiment again = ParseExperiment(e.ToToml(), "again.toml");
  for (int k = 0; k < 4; ++k) EXPECT_EQ(ShardRuns(again, {k, 4}), ShardRuns(e, {k, 4}));
  EXPECT_EQ(ShardRuns(e, {0, 1}).size(), 6u);
}

TEST(ParseShard, AcceptsKOfNAndRejectsEverythingElse) {
  EXPECT_EQ(ParseShard("0/1"), (Shard{0, 1}));
  EXPECT_EQ(ParseShard("3/4"), (Shard{3, 4}));
  for (const char* bad : {"4/4", "-1/4", "1/0", "0/0", "a/b", "1", "", "1/2/3", " 1/2", "1/2 ", "/2", "1/", "0x1/2"}) {
    EXPECT_THROW(ParseShard(bad), UsageError) << "'" << bad << "'";
  }
  try {
    ParseShard("4/4");
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("K must be 0..3"), std::string::npos) << e.what();
  }
}

TEST(ShardRecord, RoundTripsThroughMetaJson) {
  Experiment e = Sweep(2, 2, 2);
  auto record = ShardJson(e, {2, 3});
  EXPECT_EQ(ShardFromJson(record), (Shard{2, 3}));
  EXPECT_EQ(record["runs"].size(), ShardRuns(e, {2, 3}).size());
  EXPECT_EQ(record["runs"][0], nlohmann::json({2, 0}));
  EXPECT_EQ(ShardFromJson(nlohmann::json()), (Shard{0, 1}));
  EXPECT_THROW(ShardFromJson(nlohmann::json{{"index", 5}, {"count", 3}}), UsageError);
  EXPECT_THROW(ShardFromJson(nlohmann::json("1/2")), UsageError);
}

}  // namespace
}  // namespace gillab::experiments
