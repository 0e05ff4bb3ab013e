// commands.h — the `gillab` subcommands that live in interp/: vm, contend.
#pragma once

namespace CLI { class App; }

namespace gillab::interp {
void AddVmCommand(CLI::App& app);       // gillab vm FILE.gasm [ARGS]
void AddContendCommand(CLI::App& app);  // gillab contend: io thread vs K cpu threads, no servers
}  // namespace gillab::interp
