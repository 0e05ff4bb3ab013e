// contend.h — the first experiment, without servers: one `io` VM thread that
// repeatedly blocks with the lock released (sleep_us) and then needs it back
// for a little work, against K `cpu` VM threads running cpu_spin. The figure
// of merit is how long the io thread waits to re-acquire the lock after each
// blocking call: the convoy effect in its purest form (Beazley 2010).
//
// All threads share one gil::Gil of the chosen policy. The cpu threads start
// first; the io thread runs `iterations` steps of io_step.gasm; then the cpu
// threads are stopped (Vm::RequestStop) and every thread's lock statistics
// are collected. Used by `gillab contend` and by the tests.
//
//   ContendOptions o;  o.policy = "priority";  o.lock_priority = {{gil::Role::kIo, 1}};
//   ContendResult r = RunContend(o);
//   double p50_us = r.io_wait_ns.Percentile(50) / 1e3;
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "gil/gil.h"
#include "gil/histogram.h"

namespace gillab::interp {

class ExecThread;

struct ContendOptions {
  std::string policy = "newgil";
  int cpu_threads = 1;
  int64_t io_sleep_us = 1000;     // each io step blocks this long, lock released
  int iterations = 200;           // io steps
  int64_t io_work_units = 100;    // loop iterations under the lock after each sleep
  int64_t switch_interval_us = 5000;
  int64_t check_interval = 100;   // mutex only
  std::map<gil::Role, int> lock_priority;  // roles not named get 0
  // Non-empty: record a lock timeline (gil/trace.h) and write it here as
  // Chrome trace-event JSON, with ToJson's object as the run metadata.
  std::string trace_path;
  int64_t trace_max_events = 1 << 20;  // per thread
  // What the cpu threads run: main(0) of a shipped program or a .gasm path.
  std::string cpu_program = "cpu_spin";
  // > 0: the run also ends this long after it started, even with io steps
  // left; every VM is then asked to stop (a spin_holding_us returns early).
  int64_t duration_ms = 0;
  // > 0: report on stderr a thread that holds the lock this long while
  // another waits and asked for it (gil/stall_monitor.h); 0: no monitor.
  int64_t stall_threshold_ms = 1000;
};

struct ContendThread {
  gil::Role role = gil::Role::kOther;
  std::string name;
  int lock_priority = 0;
  gil::ThreadStats stats;
  uint64_t handoffs = 0;
  int64_t iterations = 0;  // cpu threads: cpu_spin's count
  double seconds = 0;      // time inside the VM
};

struct ContendResult {
  ContendOptions options;
  gil::Histogram io_wait_ns;           // one sample per io step: re-acquire after sleep_us
  double cpu_iterations_per_s = 0;     // summed over the cpu threads
  double seconds = 0;                  // the io thread's run
  uint64_t lock_switches = 0;
  gil::Histogram handoff_ns;           // LockStats::handoff_ns: release/drop to the next holder running
  int64_t trace_dropped_events = 0;    // with trace_path: events over trace_max_events
  uint64_t stalls = 0;                 // stalls the monitor reported
  int io_steps = 0;                    // io steps run (fewer than iterations when duration_ms ended the run)
  std::vector<ContendThread> threads;  // io first, then cpu-0, cpu-1, ...
};

// Throws UsageError for bad options (unknown policy, negative counts).
ContendResult RunContend(const ContendOptions& options);

// A thread's record after the run; a model without a lock (stm) has no lock
// figures to give, so its record has only the role and name.
ContendThread Snapshot(const ExecThread& et, gil::Role role, std::string name);
// The lock priority the options give a role (0 when not set).
int PriorityOf(const ContendOptions& o, gil::Role role);

// Fills result.threads: `io` first (its run's seconds and io steps), then each
// cpu thread with the iterations it ran in its seconds, and sums
// cpu_iterations_per_s. Shared by contend and `gillab simulate`.
void AddThreadRows(ContendResult& result, ContendThread io, std::vector<ContendThread> cpu,
                   const std::vector<int64_t>& cpu_counts, const std::vector<double>& cpu_seconds);

// The `--json` object of design §5 (policy, io_wait_us, cpu_iterations_per_s, threads, settings),
// plus handoff_us: the lock's hand-off latency percentiles and its CDF as [[percent, us], ...].
nlohmann::json ToJson(const ContendResult& result);
// The short table `gillab contend` prints without --json.
std::string FormatTable(const ContendResult& result);

}  // namespace gillab::interp
