// sim_benchmark.cc — the simulator's speed (issue 16's target: >= 10^7
// simulated VM instructions per host second with 16 virtual cores).
// items_per_second is simulated VM instructions per host second.
//
//   build/sim/gillab_sim_bench
#include <benchmark/benchmark.h>

#include <string>

#include "sim/sim_contend.h"

namespace gillab::sim {
namespace {

void BM_SimulateContend16Cores(benchmark::State& state, const std::string& policy) {
  SimContendOptions o;
  o.contend.policy = policy;
  o.contend.cpu_threads = 16;
  o.contend.iterations = 10;
  o.contend.io_sleep_us = 1000;
  o.contend.switch_interval_us = 1000;
  o.contend.stall_threshold_ms = 0;
  o.sim.os.cores = 16;
  uint64_t instructions = 0;
  for (auto _ : state) {
    const SimContendResult r = RunSimContend(o);
    instructions += r.instructions;
    benchmark::DoNotOptimize(r.contend.io_steps);
  }
  state.SetItemsProcessed(static_cast<int64_t>(instructions));
}

BENCHMARK_CAPTURE(BM_SimulateContend16Cores, newgil, std::string("newgil"))->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_SimulateContend16Cores, ticket, std::string("ticket"))->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_SimulateContend16Cores, none, std::string("none"))->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);

}  // namespace
}  // namespace gillab::sim
