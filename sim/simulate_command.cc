// simulate_command.cc — `gillab simulate`: `gillab contend`'s options plus
// --cores N --seed S and the cost/OS overrides, run in virtual time
// (sim_contend.h). Prints contend's table (or --json) with the simulator's figures.
#include <cstdio>

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include "gil/thread_priority.h"
#include "gil/trace.h"
#include "interp/commands.h"
#include "sim/commands.h"
#include "sim/sim_contend.h"
#include "sim/sim_flags.h"

namespace gillab::sim {

void AddSimulateCommand(CLI::App& app) {
  struct Flags {
    SimContendOptions options;
    std::string lock_priority;
    bool json = false;
    SimFlags sim;
  };
  auto f = std::make_shared<Flags>();
  interp::ContendOptions& o = f->options.contend;
  o.stall_threshold_ms = 0;  // no stall monitor in virtual time
  CLI::App* cmd = app.add_subcommand(
      "simulate", "`contend` in virtual time on N simulated cores: the real VM and lock policy, deterministic per seed");
  cmd->add_option("--policy", o.policy, "Lock policy or model: ticket, priority, newgil, none, stm (mutex: not modelled yet)")->capture_default_str();
  interp::AddContendOptions(*cmd, o, f->lock_priority, f->json);  // times are virtual here
  AddSimFlags(*cmd, f->sim);  // --cores --seed and the cost/OS overrides (sim_flags.h)
  cmd->callback([f] {
    f->options.sim = f->sim.Resolve();
    f->options.model = f->sim.model;
    if (!f->lock_priority.empty()) f->options.contend.lock_priority = gil::ParseLockPriorities(f->lock_priority);
    if (!f->options.contend.trace_path.empty()) gil::CheckTracePathWritable(f->options.contend.trace_path);
    const SimContendResult r = RunSimContend(f->options);
    if (f->json) {
      fmt::print("{}\n", ToJson(r).dump());
    } else {
      fmt::print("{}", FormatTable(r));
    }
  });
}

}  // namespace gillab::sim
