// commands.h — the `gillab` subcommands that live in sim/: simulate, stm-workers, simulate-serve.
#pragma once

namespace CLI { class App; }

namespace gillab::sim {
void AddSimulateCommand(CLI::App& app);  // gillab simulate: contend in virtual time on N cores
void AddStmWorkersCommand(CLI::App& app);  // gillab stm-workers: STM workers on N cores (sim_stm.h)
struct SimOptions;
// The stm cost options (--stm-unit-ns, ...) of the commands that run stm in virtual time.
void AddStmCostOptions(CLI::App& cmd, SimOptions& s);
void AddSimulateServeCommand(CLI::App& app);  // gillab simulate-serve: one serve + load run in virtual time
}  // namespace gillab::sim
