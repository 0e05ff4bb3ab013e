// shard.h — splitting a sweep's runs (point, repetition) into N shards (design §13).
//
// The runs are numbered in the runner's own order, repetitions outer and points
// inner: run i = repetition * points + point. Shard K of N holds the runs with
// i mod N == K (round robin), so:
//   - every run is in exactly one shard and the shards together are the sweep;
//   - the split depends only on the resolved experiment (its point count and
//     repetitions), so every host computes the same split without talking;
//   - the shards' run counts differ by at most one, and consecutive runs go to
//     different shards. (When N divides the point count, shard K holds the same
//     points in every repetition: a much slower point makes its shard longer.)
// Shard K of N is written "K/N" on the command line, 0 <= K < N (Slurm's
// SLURM_ARRAY_TASK_ID counts from 0 with --array=0-(N-1)).
//
//   Shard shard = ParseShard("1/4");
//   for (const RunId& run : ShardRuns(experiment, shard)) ...
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "experiments/experiment.h"

namespace gillab::experiments {

struct Shard {
  int index = 0;  // K
  int count = 1;  // N; 1 = the whole sweep
  bool whole() const { return count == 1; }
  bool operator==(const Shard&) const = default;
};

struct RunId {
  int point = 0;
  int repetition = 0;
  auto operator<=>(const RunId&) const = default;
};

// "K/N" -> {K, N}. Throws UsageError ("--shard 4/4: K must be 0..N-1 ...") on anything else.
Shard ParseShard(std::string_view text);

// Which shard of `count` run (point, repetition) of a sweep with `points` points belongs to.
int ShardOf(RunId run, int points, int count);

// The runs of one shard, in the order the runner runs them.
std::vector<RunId> ShardRuns(const Experiment& experiment, Shard shard);

// The shard record of a shard's meta.json: {"index": K, "count": N, "assignment": ..., "runs": [[p, r], ...]}.
nlohmann::json ShardJson(const Experiment& experiment, Shard shard);
// Reads it back (meta.json's "shard"); a missing or null record is the whole sweep. Throws UsageError.
Shard ShardFromJson(const nlohmann::json& record);

}  // namespace gillab::experiments
