// sim_contend.h — `gillab contend` in virtual time on N simulated cores
// (design §13): the same io thread (io_step: sleep_us, then a little work)
// against the same K cpu_spin threads, the same real VM and the same lock
// policy, run by the simulator (simulator.h) through SimModel (sim_model.h).
//
// Differences from the real run (contend.h), all deliberate: times are
// virtual (io waits, cpu iterations/s, seconds); the io thread starts 100 µs
// of virtual time after the cpu threads (the real run waits for them on a
// latch); duration_ms is virtual; there is no stall monitor (nothing can
// stall in virtual time that the deadlock check would not report).
// Under `stm` (no lock) there are no lock figures and no trace, as in the
// real run; the io wait is what contend reports under stm, the time from the
// end of the blocking call to running VM code again; the stm report
// (commits, aborts, conflicts) comes with the result.
// The result is a ContendResult, so ToJson / FormatTable print it; the
// simulation's own figures are in SimContendResult.
//
//   SimContendOptions o;  o.contend.policy = "ticket";  o.sim.os.cores = 16;  o.sim.seed = 7;
//   SimContendResult r = RunSimContend(o);
#pragma once

#include <cstdint>

#include <nlohmann/json.hpp>

#include "interp/contend.h"
#include "sim/sim_model.h"
#include "sim/simulator.h"

namespace gillab::sim {

struct SimContendOptions {
  interp::ContendOptions contend;
  SimOptions sim;
  SimModelOptions model;
};

struct SimContendResult {
  interp::ContendResult contend;
  SimContendOptions options;
  SimStats stats;
  uint64_t instructions = 0;  // simulated VM instructions (charged quanta)
  double host_seconds = 0;    // wall time of the simulation on this host (not deterministic)
  nlohmann::json model_report;  // the model's report (stm: commits, aborts, conflicts), null when none
};

// Throws UsageError for bad options, SimError when the simulation cannot finish.
SimContendResult RunSimContend(const SimContendOptions& options);

// contend's JSON (interp::ToJson) plus mode "simulate", cores, seed, the
// cost table and OS model used, the simulator's counters and the model's
// report (model_report, stm only). Only virtual,
// deterministic figures: the same seed gives the same bytes.
nlohmann::json ToJson(const SimContendResult& result);
// contend's table plus one line of simulator figures (host speed included).
std::string FormatTable(const SimContendResult& result);

}  // namespace gillab::sim
