// commands.h — the `gillab` subcommands that live in experiments/.
#pragma once

namespace CLI { class App; }

namespace gillab::experiments {
void AddRunCommand(CLI::App& app);      // gillab run EXPERIMENT.toml
void AddReportCommand(CLI::App& app);   // gillab report DIR
void AddMergeCommand(CLI::App& app);    // gillab merge OUT DIR...
void AddListCommand(CLI::App& app);     // gillab list
void AddSysinfoCommand(CLI::App& app);  // gillab sysinfo
}  // namespace gillab::experiments
