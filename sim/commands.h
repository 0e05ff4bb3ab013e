// commands.h — the `gillab` subcommands that live in sim/: simulate, simulate-serve.
#pragma once

namespace CLI { class App; }

namespace gillab::sim {
void AddSimulateCommand(CLI::App& app);  // gillab simulate: contend in virtual time on N cores
void AddSimulateServeCommand(CLI::App& app);  // gillab simulate-serve: one serve + load run in virtual time
}  // namespace gillab::sim
