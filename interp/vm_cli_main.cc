// vm_cli_main.cc — `gillab_vm_cli`: only the interp/ subcommands (vm,
// contend), for working on this layer before or without the full `gillab`
// binary (experiments/main.cc), which offers the same commands.
#include <cstdio>
#include <exception>

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include "gil/error.h"
#include "interp/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"gillab_vm_cli: the toy VM's commands of gillab"};
  app.require_subcommand(1);
  gillab::interp::AddVmCommand(app);
  gillab::interp::AddContendCommand(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    fmt::print(stderr, "gillab: error: {}\n", e.what());
    return 2;
  } catch (const gillab::UsageError& e) {
    fmt::print(stderr, "gillab: error: {}\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    fmt::print(stderr, "gillab: {}\n", e.what());
    return 1;
  }
  return 0;
}
