// report_command.cc — `gillab report DIR`: regenerate summary.md and plots/ from runs.csv.
#include <memory>
#include <string>

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include "experiments/commands.h"
#include "experiments/report.h"

namespace gillab::experiments {

void AddReportCommand(CLI::App& app) {
  auto dir = std::make_shared<std::string>();
  auto no_plots = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand("report", "Regenerate summary.md and plots/ of a results directory");
  cmd->add_option("dir", *dir, "results directory (holding runs.csv)")->required();
  cmd->add_flag("--no-plots", *no_plots, "write summary.md only");
  cmd->callback([dir, no_plots] { fmt::print("{}", WriteReport(*dir, !*no_plots)); });
}

}  // namespace gillab::experiments
