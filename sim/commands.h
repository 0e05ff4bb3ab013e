// commands.h — the `gillab` subcommand that lives in sim/: simulate.
#pragma once

namespace CLI { class App; }

namespace gillab::sim {
void AddSimulateCommand(CLI::App& app);  // gillab simulate: contend in virtual time on N cores
}  // namespace gillab::sim
