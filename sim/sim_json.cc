// sim_json.cc — see sim_json.h.
#include "sim/sim_json.h"

namespace gillab::sim {

nlohmann::json SimFieldsJson(const SimOptions& s, const SimModelOptions& model, const SimStats& stats,
                             uint64_t instructions) {
  return {{"mode", "simulate"},
          {"cores", s.os.cores},
          {"seed", s.seed},
          {"quantum_instructions", model.quantum_instructions},
          {"costs",
           {{"vm_instruction_ns", s.costs.vm_instruction_ns},
            {"clock_read_ns", s.costs.clock_read_ns},
            {"lock_op_ns", s.costs.lock_op_ns}}},
          {"os",
           {{"time_slice_ns", s.os.time_slice_ns},
            {"wakeup_granularity_ns", s.os.wakeup_granularity_ns},
            {"wake_same_core_ns", s.os.wake_same_core_ns},
            {"wake_cross_core_ns", s.os.wake_cross_core_ns},
            {"wake_jitter_ns", s.os.wake_jitter_ns},
            {"idle_exit_ns", s.os.idle_exit_ns},
            {"context_switch_ns", s.os.context_switch_ns},
            {"random_wake_order", s.os.random_wake_order}}},
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
