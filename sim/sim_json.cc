// sim_json.cc — see sim_json.h.
#include "sim/sim_json.h"

namespace gillab::sim {

nlohmann::json CostsJson(const CostTable& c) {
  return {{"vm_instruction_ns", c.vm_instruction_ns}, {"clock_read_ns", c.clock_read_ns},
          {"lock_op_ns", c.lock_op_ns},               {"stm_unit_ns", c.stm_unit_ns},
          {"stm_access_ns", c.stm_access_ns},         {"spin_pause_ns", c.spin_pause_ns},
          {"yield_ns", c.yield_ns}};
}

nlohmann::json SimFieldsJson(const SimOptions& s, const SimModelOptions& model, const SimStats& stats,
                             uint64_t instructions) {
  return {{"mode", "simulate"},
          {"cores", s.os.cores},
          {"seed", s.seed},
          {"quantum_instructions", model.quantum_instructions},
          {"costs", CostsJson(s.costs)},
          {"os",
           {{"time_slice_ns", s.os.time_slice_ns},
            {"wakeup_granularity_ns", s.os.wakeup_granularity_ns},
            {"wake_same_core_ns", s.os.wake_same_core_ns},
            {"wake_cross_core_ns", s.os.wake_cross_core_ns},
            {"wake_jitter_ns", s.os.wake_jitter_ns},
            {"idle_exit_ns", s.os.idle_exit_ns},
            {"context_switch_ns", s.os.context_switch_ns},
            {"fifo_wake_order", s.os.fifo_wake_order},
            {"timer_slack_ns", s.os.timer_slack_ns}}},
          {"sim",
           {{"instructions", instructions},
            {"events", stats.events},
            {"switches", stats.switches},
            {"fast_settles", stats.fast_settles},
            {"wakes", stats.wakes},
            {"timeouts", stats.timeouts},
            {"preemptions", stats.preemptions},
            {"migrations", stats.migrations}}}};
}

}  // namespace gillab::sim
