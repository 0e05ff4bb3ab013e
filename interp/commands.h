// commands.h — the `gillab` subcommands that live in interp/: vm, contend, race.
#pragma once

namespace CLI { class App; }

namespace gillab::interp {
void AddVmCommand(CLI::App& app);       // gillab vm FILE.gasm [ARGS]
void AddContendCommand(CLI::App& app);  // gillab contend: io thread vs K cpu threads, no servers
void AddRaceCommand(CLI::App& app);     // gillab race PROGRAM: K threads on one shared heap (race.h)
}  // namespace gillab::interp
