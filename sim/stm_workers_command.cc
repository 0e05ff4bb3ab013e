// stm_workers_command.cc — `gillab stm-workers`: STM workers on N cores
// (sim_stm.h), a sweep of points. Each --cores value C runs the --workers
// values (default 1..C) in virtual time; --real runs the --workers values
// (default 1..2) on this machine's threads instead. One table row per point,
// or --json: {"points": [...]}.
//
//   gillab stm-workers --cores 1,2,4,8                       # W = 1..C per C, primes_list 3000
//   gillab stm-workers --real --workers 1,2 --transactions 48
//   gillab stm-workers --kind race --program counter --n 200 --cores 4 --workers 1,2,4
#include <cstdio>
#include <memory>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include "sim/commands.h"
#include "sim/sim_stm.h"

namespace gillab::sim {

void AddStmWorkersCommand(CLI::App& app) {
  struct Flags {
    StmWorkersOptions options;
    std::vector<int> cores{1, 2, 4, 8};
    std::vector<int> workers;
    bool json = false;
    int64_t max_virtual_ms = 600'000;
  };
  auto f = std::make_shared<Flags>();
  StmWorkersOptions& o = f->options;
  CLI::App* cmd = app.add_subcommand(
      "stm-workers", "STM workers on N cores: W workers run transactions of the stm model in a closed loop "
                     "(virtual time, or --real), transactions/s and aborts per point");
  cmd->add_option("--cores", f->cores, "Simulated cores, one sweep each (ignored with --real)")->delimiter(',')
      ->capture_default_str()->check(CLI::Range(1, 4096));
  cmd->add_option("--workers", f->workers, "Worker counts (default: 1..cores; with --real 1,2)")->delimiter(',')
      ->check(CLI::Range(1, 61));
  cmd->add_flag("--real", o.real, "Run on this machine's threads, not in the simulator");
  cmd->add_option("--transactions", o.transactions, "Transactions per point, shared by the workers")
      ->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--kind", o.workload.kind, "framework: the transactional server's unit; race: worker(n, id)")
      ->capture_default_str();
  cmd->add_option("--handler", o.workload.handler, "framework: the handler program")->capture_default_str();
  cmd->add_option("--payload", o.workload.payload, "framework: the request")->capture_default_str();
  cmd->add_option("--framework-clock", o.workload.framework_clock,
                  "framework: now_ns (inevitable units), transaction_time or none")->capture_default_str();
  cmd->add_option("--program", o.workload.program, "race: the program (setup/worker/check)")->capture_default_str();
  cmd->add_option("--n", o.workload.n, "race: worker's n")->capture_default_str();
  cmd->add_option("--stm-transaction-length", o.stm.stm_transaction_length,
                  "Instructions between the commits of a long inevitable unit")
      ->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--stm-aborts-before-inevitable", o.stm.stm_aborts_before_inevitable,
                  "Aborts in a row after which a unit re-runs inevitable")
      ->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--seed", o.sim.seed, "PRNG seed: the same seed gives the same output")->capture_default_str();
  cmd->add_option("--quantum-instructions", o.model.quantum_instructions,
                  "VM instructions between two charges of virtual time")
      ->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{1} << 30));
  cmd->add_option("--max-virtual-ms", f->max_virtual_ms, "Give up past this much virtual time (0: no limit)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--vm-instruction-ns", o.sim.costs.vm_instruction_ns, "Cost of one VM instruction")
      ->capture_default_str()->check(CLI::PositiveNumber);
  AddStmCostOptions(*cmd, o.sim);
  cmd->add_flag("--json", f->json, "Print JSON");
  cmd->callback([f] {
    f->options.sim.max_virtual_ns = f->max_virtual_ms * 1'000'000;
    // The points: (cores, workers) pairs.
    std::vector<std::pair<int, int>> points;
    if (f->options.real) {
      const std::vector<int> workers = f->workers.empty() ? std::vector<int>{1, 2} : f->workers;
      for (int w : workers) points.emplace_back(0, w);
    } else {
      for (int c : f->cores) {
        if (f->workers.empty()) {
          for (int w = 1; w <= c && w <= 61; ++w) points.emplace_back(c, w);
        } else {
          for (int w : f->workers) points.emplace_back(c, w);
        }
      }
    }
    nlohmann::json all = nlohmann::json::array();
    bool header_printed = false;  // after the first point: a usage error prints nothing else
    for (const auto& [c, w] : points) {
      StmWorkersOptions o = f->options;
      o.workers = w;
      if (!o.real) o.sim.os.cores = c;
      const StmWorkersResult r = RunStmWorkers(o);
      if (f->json) {
        all.push_back(ToJson(r));
      } else {
        if (!header_printed) fmt::print("{}", FormatStmWorkersHeader());
        header_printed = true;
        fmt::print("{}", FormatStmWorkersRow(r));
        std::fflush(stdout);
      }
    }
    if (f->json) fmt::print("{}\n", nlohmann::json{{"points", all}}.dump());
  });
}

}  // namespace gillab::sim
