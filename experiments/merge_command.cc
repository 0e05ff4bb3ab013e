// merge_command.cc — `gillab merge OUT DIR... [--no-plots]`: join shard results directories.
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/core.h>
#include <fmt/format.h>

#include "experiments/commands.h"
#include "experiments/merge.h"

namespace gillab::experiments {

namespace {
struct MergeFlags {
  std::string out_dir;
  std::vector<std::string> dirs;
  bool no_plots = false;
};
}  // namespace

void AddMergeCommand(CLI::App& app) {
  auto flags = std::make_shared<MergeFlags>();
  CLI::App* cmd = app.add_subcommand("merge", "Join shard results directories (gillab run --shard) into one");
  cmd->add_option("out", flags->out_dir, "the merged results directory (new, or empty)")->required();
  cmd->add_option("dirs", flags->dirs, "results directories of the same experiment and git sha")->required();
  cmd->add_flag("--no-plots", flags->no_plots, "skip scripts/plot.py at the end");
  cmd->callback([flags] {
    MergeResult m = MergeResults(flags->out_dir, flags->dirs, !flags->no_plots);
    fmt::print("{}", m.summary);
    fmt::print(stderr, "gillab merge: {} directories, {} of {} runs{} -> {}\n", flags->dirs.size(), m.runs_merged,
               m.runs_total,
               m.duplicates_dropped ? fmt::format(" ({} identical duplicates kept once)", m.duplicates_dropped) : "",
               flags->out_dir);
    if (m.missing.empty()) return;
    std::vector<std::string> missing;
    for (const RunId& r : m.missing) missing.push_back(fmt::format("point {} rep {}", r.point, r.repetition));
    fmt::print(stderr, "gillab merge: {} runs missing: {}\ngillab merge: complete them with:\n  gillab run --resume {}\n",
               m.missing.size(), fmt::join(missing, ", "), flags->out_dir);
    throw CLI::RuntimeError(1);
  });
}

}  // namespace gillab::experiments
