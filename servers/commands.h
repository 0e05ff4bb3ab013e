// commands.h — the `gillab` subcommands that live in servers/: serve, load.
#pragma once

namespace CLI { class App; }

namespace gillab::servers {
void AddServeCommand(CLI::App& app);  // gillab serve --server ... --engine ...
void AddLoadCommand(CLI::App& app);   // gillab load --endpoint URL ...
}  // namespace gillab::servers
