// engine_stats.h — the one place that turns an engine's per-thread records
// into the Stats() JSON of design §5, so that native, toy and cpython report
// the same keys with the same meaning.
//
// Each engine keeps one ThreadRecord per thread that ever attached (I/O
// threads that detached long ago included: a threaded server's per-connection
// threads are gone by the time `gillab serve` prints its stats). A figure an
// engine cannot measure is left empty and reported as null (lock figures, so
// that every thread object has the same keys) or omitted (the rest), never as
// 0: CPython exposes no per-thread hold time, for instance.
//
//   std::vector<ThreadRecord> threads = ...;            // snapshot under the engine's mutex
//   nlohmann::json j = StatsJson({.engine = "toy", .policy = "newgil"}, threads, LockJson(gil->lock_stats()));
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "gil/gil.h"
#include "gil/thread_priority.h"

namespace gillab::servers {

// Lock figures of one thread. Every field is optional: absent means "this
// engine cannot measure it", which the JSON shows as null.
struct LockFigures {
  std::optional<uint64_t> acquisitions;
  std::optional<uint64_t> wait_ns;
  std::optional<int64_t> wait_p50_ns, wait_p99_ns, wait_max_ns;
  std::optional<uint64_t> hold_ns;
  std::optional<uint64_t> voluntary_releases;
  std::optional<uint64_t> forced_drops;
  std::optional<uint64_t> handoffs;
  std::optional<uint64_t> yield_requests;
};

// Everything gil::ThreadState knows. Read once the thread is done with the
// lock (a live thread's counters are a stale snapshot).
LockFigures FiguresOf(const gil::ThreadState& state);
// Figures for a thread that never takes a lock (native engine): all zero, and true.
LockFigures NoLockFigures();
// Acquisitions and wait figures from a wait histogram the engine kept itself (cpython).
LockFigures FiguresFromWaits(const gil::Histogram& wait_hist_ns);

struct ThreadRecord {
  gil::Role role = gil::Role::kOther;
  std::string name;
  pid_t tid = 0;
  // nullopt: the engine's lock has no priorities; reported as "not applicable".
  std::optional<int> lock_priority;
  std::optional<gil::OsPriorityResult> os_priority;  // only when one was requested
  LockFigures lock;
  std::optional<uint64_t> blocking_sections;  // I/O threads
  std::optional<uint64_t> iterations;         // CPU threads
  std::optional<int64_t> elapsed_ns;          // CPU threads: how long they ran
  // A model's own figures, not lock-shaped (e.g. STM commits and aborts, a
  // coroutine scheduler's switches), by name; reported under "model". Names
  // that ModelFigureSpecs() lists also get runs.csv columns.
  std::map<std::string, double> model{};
};

// The one builder of a thread's record, called on the thread itself: role,
// name, its tid, and the OS priority requested for its role applied to it
// (options.os_priority). Each engine adds its lock and work figures.
ThreadRecord StartThreadRecord(gil::Role role, std::string name,
                               const std::map<gil::Role, gil::OsPriority>& requested_os_priority);

// A model figure that runs.csv carries as a column per role ("io_stm_aborts"):
// one row per figure, summed over the role's threads or the worst thread's.
// A figure no engine of a run reports is an empty cell (NA); a runs.csv
// written before a figure existed reads it as empty too.
struct ModelFigureSpec {
  std::string_view name;  // key in a thread's "model" object, with its unit
  bool summed;            // true: sum over the role's threads; false: the largest
  std::string_view help;
};
const std::vector<ModelFigureSpec>& ModelFigureSpecs();

struct EngineHeader {
  std::string engine;
  std::string policy;            // "none" for native
  int64_t switch_interval_us = 0;
  int cpu_threads = 0;
  std::map<std::string, double> model{};  // engine-wide model figures, reported under "model"
};

nlohmann::json OsPriorityJson(const gil::OsPriorityResult& result);
nlohmann::json ThreadJson(const ThreadRecord& record);
// {"switches","handoff_p50_ns","handoff_p99_ns"} from a gil's lock-wide stats.
nlohmann::json LockJson(const gil::LockStats& stats);
// Sum over CPU threads of iterations / elapsed seconds.
double CpuIterationsPerS(const std::vector<ThreadRecord>& threads);
// The whole Stats() object; `lock` may be null when the engine has no lock figures.
nlohmann::json StatsJson(const EngineHeader& header, const std::vector<ThreadRecord>& threads,
                         nlohmann::json lock);

// Applies `options.os_priority[role]` to the calling thread if one was requested.
std::optional<gil::OsPriorityResult> ApplyRequestedOsPriority(
    const std::map<gil::Role, gil::OsPriority>& requested, gil::Role role);

}  // namespace gillab::servers
