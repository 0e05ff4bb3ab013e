// run_command.cc — `gillab run EXPERIMENT.toml [-s k=v]... [-o DIR] [--resume DIR] [--shard K/N] [--dry-run]`.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/core.h>
#include <fmt/format.h>

#include "experiments/commands.h"
#include "experiments/experiment.h"
#include "experiments/runner.h"
#include "experiments/shard.h"
#include "gil/error.h"

namespace gillab::experiments {

namespace {
struct RunFlags {
  std::string experiment;
  std::vector<std::string> overrides;
  std::string out_dir;
  std::string resume_dir;
  std::string shard;
  bool dry_run = false;
  bool no_plots = false;
};
}  // namespace

void AddRunCommand(CLI::App& app) {
  auto flags = std::make_shared<RunFlags>();
  CLI::App* cmd = app.add_subcommand("run", "Run an experiment: a sweep of fresh server + client runs");
  cmd->add_option("experiment", flags->experiment, "experiment file (experiments/*.toml)");
  cmd->add_option("-s,--set", flags->overrides, "override a setting: key=value (a TOML array sweeps it)")
      ->allow_extra_args(false);
  cmd->add_option("-o,--output", flags->out_dir, "results directory (default results/runs/<UTC>_<name>_<sha>)");
  cmd->add_option("--resume", flags->resume_dir, "complete an interrupted results directory");
  cmd->add_option("--shard", flags->shard,
                  "run only shard K of N (0 <= K < N): runs i = repetition * points + point with i mod N == K");
  cmd->add_flag("--dry-run", flags->dry_run, "print the resolved experiment, run count and estimated time");
  cmd->add_flag("--no-plots", flags->no_plots, "skip scripts/plot.py at the end");
  cmd->callback([flags] {
    if (flags->experiment.empty() && flags->resume_dir.empty())
      throw UsageError("run: give an experiment file (e.g. experiments/convoy.toml) or --resume DIR");
    if (!flags->resume_dir.empty() && !flags->out_dir.empty())
      throw UsageError("run: -o and --resume exclude each other");
    std::optional<Shard> shard;
    if (!flags->shard.empty()) shard = ParseShard(flags->shard);
    Experiment experiment;
    if (!flags->experiment.empty()) {
      experiment = LoadExperiment(flags->experiment, flags->overrides);
    } else {
      if (!flags->overrides.empty())
        throw UsageError("run: -s cannot change a run being resumed (its settings are in DIR/experiment.toml)");
      experiment = LoadExperiment(flags->resume_dir + "/experiment.toml");
      experiment.path.clear();  // resuming from the directory itself: nothing to compare
    }
    RunnerOptions options{.gillab_bin = GillabBinary(),
                          .out_dir = flags->out_dir,
                          .resume_dir = flags->resume_dir,
                          .plots = !flags->no_plots,
                          .print_summary = true,
                          .shard = shard};
    if (flags->dry_run) {
      fmt::print("{}", DryRunText(experiment, options.gillab_bin));
      if (shard) {
        std::vector<std::string> runs;
        for (const RunId& r : ShardRuns(experiment, *shard)) runs.push_back(fmt::format("p{}r{}", r.point, r.repetition));
        fmt::print("shard {}/{}: {} runs: {}\n", shard->index, shard->count, runs.size(), fmt::join(runs, " "));
      }
      return;
    }
    int status = RunExperiment(experiment, options);
    if (status != 0) throw CLI::RuntimeError(status);
  });
}

}  // namespace gillab::experiments
