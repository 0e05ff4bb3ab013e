// sim_benchmark.cc — the simulator's speed (issue 16's target: >= 10^7
// simulated VM instructions per host second with 16 virtual cores).
// items_per_second is simulated VM instructions per host second.
// BM_StmWorkers16Cores: 16 stm workers on 16 virtual cores (sim_stm.h), the
// stm_tornado unit (primes_list 3000): every worker runs at once, so every
// quantum is a host switch.
//
//   build/sim/gillab_sim_bench
#include <benchmark/benchmark.h>

#include <string>

#include "sim/sim_contend.h"
#include "sim/sim_stm.h"

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

void BM_StmWorkers16Cores(benchmark::State& state) {
  StmWorkersOptions o;
  o.workers = 16;
  o.sim.os.cores = 16;
  o.transactions = 16;
  uint64_t instructions = 0;
  for (auto _ : state) {
    const StmWorkersResult r = RunStmWorkers(o);
    instructions += r.instructions;
    benchmark::DoNotOptimize(r.commits);
  }
  state.SetItemsProcessed(static_cast<int64_t>(instructions));
}

BENCHMARK(BM_StmWorkers16Cores)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);
BENCHMARK_CAPTURE(BM_SimulateContend16Cores, newgil, std::string("newgil"))->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_SimulateContend16Cores, ticket, std::string("ticket"))->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_SimulateContend16Cores, none, std::string("none"))->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);

}  // namespace
}  // namespace gillab::sim
