// sysinfo_command.cc — `gillab sysinfo`: the machine, the priorities this user may set, noise.
#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include "experiments/commands.h"
#include "experiments/sysinfo.h"

namespace gillab::experiments {

void AddSysinfoCommand(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand("sysinfo", "Cores, CPU, kernel, which OS priorities this user may set, noise");
  cmd->callback([] { fmt::print("{}", FormatSystemInfo(CollectSystemInfo(/*sample_busy_ms=*/300))); });
}

}  // namespace gillab::experiments
