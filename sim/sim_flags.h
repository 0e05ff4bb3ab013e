// sim_flags.h — the simulator's command-line flags, shared by `gillab
// simulate` and `gillab simulate-serve`: --cores, --seed, the quantum, the
// virtual-time guard, and the cost/OS overrides (defaults and where they come
// from: costs.h).
//
//   SimFlags flags;                        // holds the values
//   AddSimFlags(*cmd, flags);              // before parsing
//   SimOptions o = flags.Resolve();        // in the callback
#pragma once

#include <cstdint>

#include "sim/sim_model.h"
#include "sim/simulator.h"

namespace CLI { class App; }

namespace gillab::sim {

struct SimFlags {
  SimOptions sim;
  SimModelOptions model;
  int64_t max_virtual_ms = 600'000;  // a guard: ten virtual minutes
  int64_t time_slice_us = 0;         // AddSimFlags sets it from sim.os

  // sim with the flags that are given in other units applied.
  SimOptions Resolve() const;
};

void AddSimFlags(CLI::App& cmd, SimFlags& flags);

}  // namespace gillab::sim
