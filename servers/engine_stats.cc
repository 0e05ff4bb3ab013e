// engine_stats.cc — Stats() JSON shared by every engine (see engine_stats.h).
#include "servers/engine_stats.h"

namespace gillab::servers {
namespace {

template <typename T>
void PutIf(nlohmann::json& j, const char* key, const std::optional<T>& value) {
  if (value) j[key] = *value;
}

// Lock figures are always present: null when the engine cannot measure them.
template <typename T>
void PutOrNull(nlohmann::json& j, const char* key, const std::optional<T>& value) {
  if (value) {
    j[key] = *value;
  } else {
    j[key] = nullptr;
  }
}

}  // namespace

ThreadRecord StartThreadRecord(gil::Role role, std::string name,
                               const std::map<gil::Role, gil::OsPriority>& requested_os_priority) {
  ThreadRecord r;
  r.role = role;
  r.name = std::move(name);
  r.tid = gil::CurrentTid();
  r.os_priority = ApplyRequestedOsPriority(requested_os_priority, role);
  return r;
}

const std::vector<ModelFigureSpec>& ModelFigureSpecs() {
  // The figures design part two's models report (§10 STM, §9 coroutines).
  static const std::vector<ModelFigureSpec> specs = {
      {"stm_commits", true, "transactions committed"},
      {"stm_aborts", true, "transactions aborted and retried"},
      {"stm_paused_ns", true, "time threads spent paused for a serial (irrevocable) transaction"},
      {"stm_committed_ns", true, "time in stm units that committed"},
      {"stm_aborted_ns", true, "time in stm units that aborted (work thrown away)"},
      {"stm_inevitable_units", true, "stm units that ran inevitable (an outside effect, or starvation)"},
      {"green_switches", true, "coroutine switches by the scheduler"},
      {"ready_queue_p99_ns", false, "99th percentile of the time a ready coroutine waited to run"},
  };
  return specs;
}

LockFigures FiguresOf(const gil::ThreadState& state) {
  const gil::ThreadStats& s = state.stats();
  LockFigures f;
  f.acquisitions = s.acquisitions;
  f.wait_ns = s.wait_ns;
  f.wait_p50_ns = s.wait_hist_ns.Percentile(50);
  f.wait_p99_ns = s.wait_hist_ns.Percentile(99);
  f.wait_max_ns = s.wait_hist_ns.max();
  f.hold_ns = s.hold_ns;
  f.voluntary_releases = s.voluntary_releases;
  f.forced_drops = s.forced_drops;
  f.handoffs = state.handoffs();
  f.yield_requests = s.yield_requests;
  return f;
}

LockFigures NoLockFigures() {
  LockFigures f;
  f.acquisitions = 0;
  f.wait_ns = 0;
  f.wait_p50_ns = 0;
  f.wait_p99_ns = 0;
  f.wait_max_ns = 0;
  f.hold_ns = 0;
  f.voluntary_releases = 0;
  f.forced_drops = 0;
  f.handoffs = 0;
  f.yield_requests = 0;
  return f;
}

LockFigures FiguresFromWaits(const gil::Histogram& wait_hist_ns) {
  LockFigures f;
  f.acquisitions = wait_hist_ns.count();
  f.wait_ns = static_cast<uint64_t>(wait_hist_ns.sum());
  f.wait_p50_ns = wait_hist_ns.Percentile(50);
  f.wait_p99_ns = wait_hist_ns.Percentile(99);
  f.wait_max_ns = wait_hist_ns.max();
  return f;
}

nlohmann::json OsPriorityJson(const gil::OsPriorityResult& result) {
  return {{"requested", result.requested},
          {"applied", result.applied},
          {"refused", result.refused},
          {"readback", result.readback}};
}

nlohmann::json ThreadJson(const ThreadRecord& r) {
  nlohmann::json j;
  j["role"] = std::string(gil::RoleName(r.role));
  j["name"] = r.name;
  j["tid"] = r.tid;
  if (r.lock_priority) {
    j["lock_priority"] = *r.lock_priority;
  } else {
    j["lock_priority"] = nullptr;
    j["lock_priority_note"] = "not applicable: this engine's lock has no priorities";
  }
  if (r.os_priority) j["os_priority"] = OsPriorityJson(*r.os_priority);
  const LockFigures& f = r.lock;
  PutOrNull(j, "acquisitions", f.acquisitions);
  PutOrNull(j, "wait_ns", f.wait_ns);
  PutOrNull(j, "wait_p50_ns", f.wait_p50_ns);
  PutOrNull(j, "wait_p99_ns", f.wait_p99_ns);
  PutOrNull(j, "wait_max_ns", f.wait_max_ns);
  PutOrNull(j, "hold_ns", f.hold_ns);
  PutOrNull(j, "voluntary_releases", f.voluntary_releases);
  PutOrNull(j, "forced_drops", f.forced_drops);
  PutOrNull(j, "handoffs", f.handoffs);
  PutOrNull(j, "yield_requests", f.yield_requests);
  PutIf(j, "blocking_sections", r.blocking_sections);
  PutIf(j, "iterations", r.iterations);
  PutIf(j, "elapsed_ns", r.elapsed_ns);
  if (!r.model.empty()) j["model"] = r.model;
  return j;
}

nlohmann::json LockJson(const gil::LockStats& stats) {
  return {{"switches", stats.switches},
          {"handoff_p50_ns", stats.handoff_ns.Percentile(50)},
          {"handoff_p99_ns", stats.handoff_ns.Percentile(99)}};
}

double CpuIterationsPerS(const std::vector<ThreadRecord>& threads) {
  double sum = 0;
  for (const ThreadRecord& r : threads) {
    if (r.role != gil::Role::kCpu || !r.iterations || !r.elapsed_ns || *r.elapsed_ns <= 0) continue;
    sum += static_cast<double>(*r.iterations) * 1e9 / static_cast<double>(*r.elapsed_ns);
  }
  return sum;
}

nlohmann::json StatsJson(const EngineHeader& header, const std::vector<ThreadRecord>& threads,
                         nlohmann::json lock) {
  nlohmann::json j;
  j["engine"] = header.engine;
  j["policy"] = header.policy;
  j["switch_interval_us"] = header.switch_interval_us;
  j["cpu_threads"] = header.cpu_threads;
  j["cpu_iterations_per_s"] = CpuIterationsPerS(threads);
  nlohmann::json list = nlohmann::json::array();
  for (const ThreadRecord& r : threads) list.push_back(ThreadJson(r));
  j["threads"] = std::move(list);
  j["lock"] = lock.is_null() ? nlohmann::json::object() : std::move(lock);
  if (!header.model.empty()) j["model"] = header.model;
  return j;
}

std::optional<gil::OsPriorityResult> ApplyRequestedOsPriority(
    const std::map<gil::Role, gil::OsPriority>& requested, gil::Role role) {
  auto it = requested.find(role);
  if (it == requested.end()) return std::nullopt;
  return gil::ApplyOsPriority(gil::CurrentTid(), it->second);
}

}  // namespace gillab::servers
