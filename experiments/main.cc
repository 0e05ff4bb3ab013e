// main.cc — the `gillab` binary: one CLI11 app, each layer adds its subcommands.
//
// Exit status: 0 success, 1 runtime failure, 2 bad usage (unknown flag, bad
// value, unreadable file), each failure reported as one line on stderr.
#include <csignal>
#include <cstdio>
#include <exception>

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include "experiments/commands.h"
#include "gil/error.h"
#include "interp/commands.h"
#include "servers/commands.h"
#include "sim/commands.h"

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);  // a peer that hangs up is an error return, not a death
  CLI::App app{"gillab: a testbed for global-interpreter-lock contention and thread priorities"};
  app.name("gillab");
  app.require_subcommand(1);
  gillab::experiments::AddListCommand(app);
  gillab::experiments::AddSysinfoCommand(app);
  gillab::interp::AddVmCommand(app);
  gillab::interp::AddContendCommand(app);
  gillab::interp::AddRaceCommand(app);
  gillab::sim::AddSimulateCommand(app);
  gillab::sim::AddStmWorkersCommand(app);
  gillab::sim::AddSimulateServeCommand(app);
  gillab::servers::AddServeCommand(app);
  gillab::servers::AddLoadCommand(app);
  gillab::experiments::AddRunCommand(app);
  gillab::experiments::AddReportCommand(app);
  gillab::experiments::AddMergeCommand(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::RuntimeError& e) {
    return e.get_exit_code();  // a command that already reported its failure (e.g. `run` interrupted: 130)
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
