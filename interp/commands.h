// commands.h — the `gillab` subcommands that live in interp/: vm, contend, race.
#pragma once

#include <string>

namespace CLI { class App; }

namespace gillab::interp {
void AddVmCommand(CLI::App& app);       // gillab vm FILE.gasm [ARGS]
void AddContendCommand(CLI::App& app);  // gillab contend: io thread vs K cpu threads, no servers
void AddRaceCommand(CLI::App& app);     // gillab race PROGRAM: K threads on one shared heap (race.h)

struct ContendOptions;
// contend's options after --policy (--cpu-threads ... --duration-ms, --lock-priority, --json),
// shared with `gillab simulate`, which runs the same measurement in virtual time.
void AddContendOptions(CLI::App& cmd, ContendOptions& o, std::string& lock_priority, bool& json);
}  // namespace gillab::interp
