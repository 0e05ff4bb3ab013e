// sim_json.h — the simulation's own fields in the JSON of `gillab simulate`
// and `gillab simulate-serve` (design §13): mode "simulate", cores, seed,
// quantum, the cost table and OS model used, and the simulator's counters.
// Only virtual, deterministic figures: the same seed gives the same bytes.
//
//   nlohmann::json j = ...;  j.update(SimFieldsJson(options.sim, options.model, sim.stats(), model.instructions()));
#pragma once

#include <cstdint>

#include <nlohmann/json.hpp>

#include "sim/sim_model.h"
#include "sim/simulator.h"

namespace gillab::sim {

// The cost table as JSON (every field), for the outputs that record it.
nlohmann::json CostsJson(const CostTable& costs);
// What every simulated output records: mode, cores, seed, costs, OS model, the simulator's counters.
nlohmann::json SimFieldsJson(const SimOptions& sim, const SimModelOptions& model, const SimStats& stats,
                             uint64_t instructions);

}  // namespace gillab::sim
