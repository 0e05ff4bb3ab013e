// sim_flags.cc — see sim_flags.h.
#include "sim/sim_flags.h"

#include <CLI/CLI.hpp>

#include "sim/commands.h"

namespace gillab::sim {

SimOptions SimFlags::Resolve() const {
  SimOptions o = sim;
  o.max_virtual_ns = max_virtual_ms * 1'000'000;
  o.os.time_slice_ns = time_slice_us * 1000;
  return o;
}

void AddSimFlags(CLI::App& cmd, SimFlags& f) {
  SimOptions& s = f.sim;
  cmd.add_option("--cores", s.os.cores, "Simulated cores")->capture_default_str()->check(CLI::Range(1, 4096));
  cmd.add_option("--seed", s.seed, "PRNG seed: the same seed gives the same output, byte for byte")
      ->capture_default_str();
  cmd.add_option("--quantum-instructions", f.model.quantum_instructions,
                 "VM instructions between two charges of virtual time")
      ->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{1} << 30));
  cmd.add_option("--max-virtual-ms", f.max_virtual_ms, "Give up past this much virtual time (0: no limit)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  // Costs and the OS model (defaults and where they come from: sim/costs.h).
  cmd.add_option("--vm-instruction-ns", s.costs.vm_instruction_ns, "Cost of one VM instruction")
      ->capture_default_str()->check(CLI::PositiveNumber);
  cmd.add_option("--clock-read-ns", s.costs.clock_read_ns, "Cost of one clock read")->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd.add_option("--lock-op-ns", s.costs.lock_op_ns, "Cost of a lock operation that does not wait")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  f.time_slice_us = s.os.time_slice_ns / 1000;
  cmd.add_option("--time-slice-us", f.time_slice_us, "OS time slice")->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd.add_option("--wake-same-core-ns", s.os.wake_same_core_ns, "Wake-up latency onto the waker's core")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd.add_option("--wake-cross-core-ns", s.os.wake_cross_core_ns, "Wake-up latency onto another core")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd.add_option("--wake-jitter-ns", s.os.wake_jitter_ns, "Each wake-up adds a delay drawn from [0, this]")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd.add_option("--idle-exit-ns", s.os.idle_exit_ns, "Extra latency to wake a halted idle core")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd.add_option("--context-switch-ns", s.os.context_switch_ns, "Cost of a context switch on one core")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd.add_flag("--fifo-wake-order", s.os.fifo_wake_order,
               "A wake picks the oldest sleeper (Linux's futex order), not a drawn one");
  cmd.add_option("--timer-slack-ns", s.os.timer_slack_ns, "A timed wait ends up to this much after its deadline (drawn)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  AddStmCostOptions(cmd, s);
}

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

}  // namespace gillab::sim
