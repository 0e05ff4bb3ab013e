// commands.h — the `gillab` subcommand that lives in sim/: simulate.
#pragma once

namespace CLI { class App; }

namespace gillab::sim {
void AddSimulateCommand(CLI::App& app);  // gillab simulate: contend in virtual time on N cores
struct SimOptions;
// The stm cost options (--stm-unit-ns, ...) of the commands that run stm in virtual time.
void AddStmCostOptions(CLI::App& cmd, SimOptions& s);
}  // namespace gillab::sim
