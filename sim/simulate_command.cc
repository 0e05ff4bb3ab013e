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

namespace gillab::sim {

void AddStmCostOptions(CLI::App& cmd, SimOptions& s) {
  cmd.add_option("--stm-unit-ns", s.costs.stm_unit_ns, "stm: cost of one unit's begin and end")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd.add_option("--stm-access-ns", s.costs.stm_access_ns, "stm: cost of one heap access's barrier")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd.add_option("--spin-pause-ns", s.costs.spin_pause_ns, "Cost of one spin round of a backoff")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd.add_option("--yield-ns", s.costs.yield_ns, "Cost of one sched_yield round of a backoff")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
}

void AddSimulateCommand(CLI::App& app) {
  struct Flags {
    SimContendOptions options;
    std::string lock_priority;
    bool json = false;
    int64_t max_virtual_ms = 600'000;  // a guard: ten virtual minutes
    int64_t time_slice_us = 0;
  };
  auto f = std::make_shared<Flags>();
  interp::ContendOptions& o = f->options.contend;
  SimOptions& s = f->options.sim;
  o.stall_threshold_ms = 0;  // no stall monitor in virtual time
  CLI::App* cmd = app.add_subcommand(
      "simulate", "`contend` in virtual time on N simulated cores: the real VM and lock policy, deterministic per seed");
  cmd->add_option("--policy", o.policy, "Lock policy or model: ticket, priority, newgil, none, stm (mutex: not modelled yet)")->capture_default_str();
  interp::AddContendOptions(*cmd, o, f->lock_priority, f->json);  // times are virtual here
  // The simulator.
  cmd->add_option("--cores", s.os.cores, "Simulated cores")->capture_default_str()->check(CLI::Range(1, 4096));
  cmd->add_option("--seed", s.seed, "PRNG seed: the same seed gives the same output, byte for byte")
      ->capture_default_str();
  cmd->add_option("--quantum-instructions", f->options.model.quantum_instructions,
                  "VM instructions between two charges of virtual time")
      ->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{1} << 30));
  cmd->add_option("--max-virtual-ms", f->max_virtual_ms, "Give up past this much virtual time (0: no limit)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  // Costs and the OS model (defaults and where they come from: sim/costs.h).
  cmd->add_option("--vm-instruction-ns", s.costs.vm_instruction_ns, "Cost of one VM instruction")
      ->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--clock-read-ns", s.costs.clock_read_ns, "Cost of one clock read")->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--lock-op-ns", s.costs.lock_op_ns, "Cost of a lock operation that does not wait")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  AddStmCostOptions(*cmd, s);
  f->time_slice_us = s.os.time_slice_ns / 1000;
  cmd->add_option("--time-slice-us", f->time_slice_us, "OS time slice")->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--wake-same-core-ns", s.os.wake_same_core_ns, "Wake-up latency onto the waker's core")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--wake-cross-core-ns", s.os.wake_cross_core_ns, "Wake-up latency onto another core")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--idle-exit-ns", s.os.idle_exit_ns, "Extra latency to wake a halted idle core")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--context-switch-ns", s.os.context_switch_ns, "Cost of a context switch on one core")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_flag("--fifo-wake-order", s.os.fifo_wake_order,
                "A wake picks the oldest sleeper (Linux's futex order), not a drawn one");
  cmd->add_option("--timer-slack-ns", s.os.timer_slack_ns, "A timed wait ends up to this much after its deadline (drawn)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->callback([f] {
    f->options.sim.max_virtual_ns = f->max_virtual_ms * 1'000'000;
    f->options.sim.os.time_slice_ns = f->time_slice_us * 1000;
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
