// merge.h — `gillab merge OUT DIR...`: shard results directories joined into one.
//
// The directories must hold the same resolved experiment (experiment.toml,
// compared setting by setting, comments aside) and come from the same git sha
// (meta.json); otherwise a UsageError names the first mismatch and the two
// directories. Each run (point, repetition) is kept once: the same run in two
// directories is kept once if the two rows are identical (a shard copied
// twice) and refused otherwise (two different measurements of one run).
// OUT then is an ordinary results directory, as one `gillab run` would have
// left it: experiment.toml, runs.csv (rows in the runner's order, repetitions
// outer), raw/ (each kept run's files, from the directory its row came from),
// failures.log (every shard's, each line tagged with its directory),
// meta.json (the first directory's machine record plus "hosts", "shards" —
// one entry per directory with its host, shard record and runs — and
// "missing_runs"), summary.md and plots/ (WriteReport). It carries no shard
// record, so `gillab run --resume OUT` runs every missing run.
//
//   MergeResult m = MergeResults("results/sweeps/x/merged", {"x/shard-0", "x/shard-1"}, /*plots=*/true);
//   if (!m.missing.empty()) ... // gillab run --resume OUT completes them
#pragma once

#include <string>
#include <vector>

#include "experiments/shard.h"

namespace gillab::experiments {

struct MergeResult {
  int runs_total = 0;          // points x repetitions of the experiment
  int runs_merged = 0;         // rows in OUT/runs.csv
  int duplicates_dropped = 0;  // identical rows found in more than one directory
  std::vector<RunId> missing;  // runs no directory holds, in the runner's order
  std::string summary;         // OUT/summary.md
};

// Throws UsageError for a bad OUT or DIR, a mismatch or a conflicting duplicate;
// nothing is written to OUT before every directory has been checked.
MergeResult MergeResults(const std::string& out_dir, const std::vector<std::string>& dirs, bool plots);

}  // namespace gillab::experiments
