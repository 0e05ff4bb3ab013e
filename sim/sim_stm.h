// sim_stm.h — STM workers on N cores (design §12, §13; issue 16): W worker
// threads of the `stm` model take transactions from one shared count until a
// fixed number has run, each one Vm::Call — one atomic unit — in a closed
// loop, over one shared heap. Run in virtual time by the simulator (SimModel
// over the real StmModel, on `cores` virtual cores), or on this machine's
// real threads (`real`: the same code without the simulator, for the
// validation at 2 cores). The result: transactions per second (virtual in a
// simulation), the stm's commits, aborts, conflicts and times.
//
// What a transaction is (StmWorkload):
// - kind "framework" (the default): what the `transactional` server's
//   workers run per request (servers/transactional_server.cc): the framework
//   prelude in front of the handler (interp/framework.h), the entry of the
//   framework clock called with (payload, 0). stm_tornado's point is
//   handler primes_list, payload "3000": its units share only the
//   prelude's request counter, written at their very end; framework clock
//   now_ns makes every unit inevitable (serialised), transaction_time does not.
// - kind "race": a program of `gillab race`'s convention (interp/race.h):
//   setup(workers, n) once, then each transaction is worker(n, id) (id: the
//   worker's number), and check() after the last. counter.gasm is a hot
//   counter (every unit writes it, n times); bank.gasm transfers between 100
//   accounts (check(): the sum, 100000).
// Not modelled: the server's event loop, its sockets, the clients (PyPy-STM's
// 1–4-core table measured a whole Tornado server under siege). The time of a
// point runs from the workers' start to the end of the last transaction; the
// figures of setup() and check() are not counted.
//
// Determinism: in a simulation every figure is virtual and the same seed
// gives the same output, byte for byte (ToJson); host_seconds is the only
// host figure and is printed by FormatTable only. A real run also reports
// the CPU time it got (on a shared machine the neighbours take cores).
//
//   StmWorkersOptions o;  o.workers = 4;  o.sim.os.cores = 4;
//   StmWorkersResult r = RunStmWorkers(o);   // r.per_second, r.aborts
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "interp/exec_model.h"
#include "sim/sim_model.h"
#include "sim/simulator.h"

namespace gillab::sim {

struct StmWorkload {
  std::string kind = "framework";  // "framework" or "race"
  // framework: the handler (a shipped name or a .gasm path), its request and the clock.
  std::string handler = "primes_list";
  std::string payload = "3000";
  std::string framework_clock = "transaction_time";
  // race: the program (counter, bank, or a .gasm path) and worker's n.
  std::string program = "counter";
  int64_t n = 100;
};

struct StmWorkersOptions {
  StmWorkload workload;
  int workers = 1;
  int transactions = 48;  // in all, shared by the workers
  bool real = false;      // this machine's threads instead of the simulator
  SimOptions sim;         // cores, seed, costs (simulation only)
  // A coarser quantum than `simulate`'s: the workers run at the same time,
  // so every quantum is a switch on the host; 4096 instructions are ~5 µs of
  // virtual time, against units of milliseconds.
  SimModelOptions model{.quantum_instructions = 4096};
  interp::ExecModelOptions stm;  // stm_transaction_length, stm_aborts_before_inevitable
};

struct StmWorkersResult {
  StmWorkersOptions options;
  int64_t transactions = 0;
  double seconds = 0;     // virtual in a simulation, wall on real threads
  double per_second = 0;  // transactions / seconds
  // The stm's figures over the workers' transactions (setup/check excluded).
  int64_t commits = 0, aborts = 0, inevitable_units = 0, conflicts = 0;
  int64_t committed_ns = 0, aborted_ns = 0, paused_ns = 0;
  nlohmann::json report;  // the stm's report at the end (top conflicts)
  bool checked = false;   // race: check() ran
  int64_t check = 0;      // race: check()'s value
  // Simulation only.
  SimStats stats;
  uint64_t instructions = 0;
  double host_seconds = 0;  // not deterministic: FormatTable only
  // Real threads only: the process's CPU time over the workers' span (how
  // many of the host's cores the run got: cpu_seconds / seconds).
  double cpu_seconds = 0;
};

// Throws UsageError for bad options, SimError when the simulation cannot finish.
StmWorkersResult RunStmWorkers(const StmWorkersOptions& options);

// The point as JSON: mode, cores, workers, the workload, the figures. In a
// simulation only virtual figures: the same seed gives the same bytes.
nlohmann::json ToJson(const StmWorkersResult& result);
// A table of points, one line each, and the header line.
std::string FormatStmWorkersHeader();
std::string FormatStmWorkersRow(const StmWorkersResult& result);

}  // namespace gillab::sim
