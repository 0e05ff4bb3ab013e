#include "interp/contend.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <latch>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include <fmt/core.h>

#include "gil/error.h"
#include "gil/stall_monitor.h"
#include "gil/trace.h"
#include "interp/heap.h"
#include "interp/vm.h"

namespace gillab::interp {
namespace {

// Lets the orchestrating thread stop cpu VMs that live on other threads,
// including one that registers only after the stop was decided.
class StopBoard {
 public:
  void Register(Vm* vm) {
    std::lock_guard lock(mu_);
    vms_.push_back(vm);
    if (stopping_) vm->RequestStop();
  }
  void Unregister(Vm* vm) {
    std::lock_guard lock(mu_);
    std::erase(vms_, vm);
  }
  void StopAll() {
    std::lock_guard lock(mu_);
    stopping_ = true;
    for (Vm* vm : vms_) vm->RequestStop();
  }

 private:
  std::mutex mu_;
  std::vector<Vm*> vms_;
  bool stopping_ = false;
};


double Us(int64_t ns) { return static_cast<double>(ns) / 1e3; }

// Whether the policy reads check_interval (false for models that are not lock policies, e.g. stm).
bool UsesTicks(const std::string& policy) {
  const auto& policies = gil::PolicyNames();
  return std::find(policies.begin(), policies.end(), policy) != policies.end() && gil::PolicyTraitsOf(policy).uses_ticks;
}

}  // namespace

ContendThread Snapshot(const ExecThread& et, gil::Role role, std::string name) {
  ContendThread out;
  out.role = role;
  out.name = std::move(name);
  if (et.lock_state() == nullptr) return out;
  const gil::ThreadState& t = *et.lock_state();
  out.name = t.name();
  out.lock_priority = t.lock_priority();
  out.stats = t.stats();
  out.handoffs = t.handoffs();
  return out;
}

int PriorityOf(const ContendOptions& o, gil::Role role) {
  auto it = o.lock_priority.find(role);
  return it == o.lock_priority.end() ? 0 : it->second;
}

ContendResult RunContend(const ContendOptions& options) {
  if (options.cpu_threads < 0) throw UsageError(fmt::format("--cpu-threads must be >= 0, got {}", options.cpu_threads));
  if (options.iterations < 1) throw UsageError(fmt::format("--iterations must be >= 1, got {}", options.iterations));
  if (options.io_sleep_us < 0) throw UsageError(fmt::format("--io-sleep-us must be >= 0, got {}", options.io_sleep_us));
  if (options.io_work_units < 0) throw UsageError(fmt::format("--io-work-units must be >= 0, got {}", options.io_work_units));
  if (options.duration_ms < 0) throw UsageError(fmt::format("--duration-ms must be >= 0, got {}", options.duration_ms));
  if (options.stall_threshold_ms < 0) {
    throw UsageError(fmt::format("--stall-threshold-ms must be >= 0, got {}", options.stall_threshold_ms));
  }
  auto model = MakeExecModel(options.policy, {.gil = {.switch_interval_us = options.switch_interval_us,
                                                      .check_interval = options.check_interval}});
  // The lock statistics, the trace and the stall monitor read the model's lock.
  // nullptr under a model without a lock (stm): no trace, no stall monitor.
  gil::Gil* gil = model->lock();
  if (gil == nullptr && !options.trace_path.empty()) {
    throw UsageError(fmt::format("--trace needs a lock policy; '{}' has no lock", options.policy));
  }
  std::unique_ptr<gil::TraceRecorder> recorder;
  if (!options.trace_path.empty()) {
    recorder = std::make_unique<gil::TraceRecorder>(gil::TraceOptions{.max_events_per_thread = options.trace_max_events});
    gil->EnableTrace(recorder.get());
  }
  // Declared after the lock, so destroyed before it.
  std::optional<gil::StallMonitor> stall_monitor;
  if (options.stall_threshold_ms > 0 && gil != nullptr) stall_monitor.emplace(*gil, gil::StallOptions{.threshold_ms = options.stall_threshold_ms});
  auto cpu_program = LoadProgram(options.cpu_program);
  auto io_program = LoadProgram("io_step");
  // One shared heap for the run (design §8); concurrent when threads may run at once.
  auto heap = std::make_shared<Heap>(HeapOptions{.concurrent = !model->traits().exclusive});

  const auto k = static_cast<size_t>(options.cpu_threads);
  std::vector<std::unique_ptr<ExecThread>> cpu_states(k);
  std::vector<int64_t> cpu_counts(k, 0);
  std::vector<double> cpu_seconds(k, 0);
  std::vector<std::exception_ptr> errors(k + 1);
  std::latch cpu_started(static_cast<std::ptrdiff_t>(k));
  StopBoard board;

  std::vector<std::thread> cpu_threads;
  for (size_t i = 0; i < k; ++i) {
    cpu_threads.emplace_back([&, i] {
      bool counted = false;
      try {
        cpu_states[i] = model->Attach(gil::Role::kCpu, fmt::format("cpu-{}", i), PriorityOf(options, gil::Role::kCpu));
        Vm vm(cpu_program, *model, *cpu_states[i], VmOptions{.heap = heap});
        board.Register(&vm);
        cpu_started.count_down();
        counted = true;
        // From before the first acquire: a thread that waits long to get in
        // must not report a high rate over a short window of its own (the
        // per-thread rates are summed).
        const int64_t t0 = gil::NowNs();
        model->Enter(*cpu_states[i]);
        try {
          cpu_counts[i] = vm.Call("main", {Value::Int(0)}).as_int();
        } catch (...) {
          model->Leave(*cpu_states[i]);
          board.Unregister(&vm);
          throw;
        }
        cpu_seconds[i] = static_cast<double>(gil::NowNs() - t0) / 1e9;
        model->Leave(*cpu_states[i]);
        board.Unregister(&vm);
      } catch (...) {
        errors[i + 1] = std::current_exception();
        if (!counted) cpu_started.count_down();
      }
    });
  }

  ContendResult result;
  result.options = options;
  std::atomic<bool> time_up{false};  // duration_ms passed: the io thread stops after its current step
  std::mutex done_mu;
  std::condition_variable done_cv;
  bool io_done = false;
  std::unique_ptr<ExecThread> io_state;
  std::thread io_thread([&] {
    try {
      cpu_started.wait();
      io_state = model->Attach(gil::Role::kIo, "io", PriorityOf(options, gil::Role::kIo));
      Vm vm(io_program, *model, *io_state, VmOptions{.heap = heap});
      model->Enter(*io_state);
      const int64_t t0 = gil::NowNs();
      try {
        for (int n = 0; n < options.iterations && !time_up.load(std::memory_order_relaxed); ++n) {
          vm.Call("step", {Value::Int(options.io_sleep_us), Value::Int(options.io_work_units)});
          result.io_steps = n + 1;
        }
      } catch (...) {
        model->Leave(*io_state);
        throw;
      }
      result.seconds = static_cast<double>(gil::NowNs() - t0) / 1e9;
      model->Leave(*io_state);
      result.io_wait_ns = vm.reacquire_wait_ns();
    } catch (...) {
      errors[0] = std::current_exception();
    }
    {
      std::lock_guard lock(done_mu);
      io_done = true;
    }
    done_cv.notify_one();
  });
  if (options.duration_ms > 0) {
    std::unique_lock lock(done_mu);
    if (!done_cv.wait_for(lock, std::chrono::milliseconds(options.duration_ms), [&] { return io_done; })) {
      // Time is up: stop the cpu VMs first (one may be spinning while holding
      // the lock the io thread waits for), then let the io thread finish its step.
      time_up.store(true);
      lock.unlock();
      board.StopAll();
    }
  }
  io_thread.join();
  board.StopAll();
  for (std::thread& t : cpu_threads) t.join();
  for (const std::exception_ptr& e : errors) {
    if (e) std::rethrow_exception(e);
  }

  if (gil != nullptr) {
    result.lock_switches = gil->lock_stats().switches;
    result.handoff_ns = gil->lock_stats().handoff_ns;
  }
  std::vector<ContendThread> cpu;
  for (size_t i = 0; i < k; ++i) cpu.push_back(Snapshot(*cpu_states[i], gil::Role::kCpu, fmt::format("cpu-{}", i)));
  AddThreadRows(result, Snapshot(*io_state, gil::Role::kIo, "io"), std::move(cpu), cpu_counts, cpu_seconds);
  if (stall_monitor) result.stalls = stall_monitor->stalls_reported();
  if (recorder) {
    result.trace_dropped_events = recorder->dropped_events();
    recorder->WriteChromeJson(options.trace_path, ToJson(result).dump());
  }
  return result;
}

nlohmann::json ToJson(const ContendResult& r) {
  using nlohmann::json;
  const gil::Histogram& h = r.io_wait_ns;
  json threads = json::array();
  for (const ContendThread& t : r.threads) {
    threads.push_back({
        {"role", std::string(gil::RoleName(t.role))},
        {"name", t.name},
        {"lock_priority", t.lock_priority},
        {"acquisitions", t.stats.acquisitions},
        {"wait_ns", t.stats.wait_ns},
        {"wait_p50_us", Us(t.stats.wait_hist_ns.Percentile(50))},
        {"wait_max_us", Us(t.stats.wait_hist_ns.max())},
        {"hold_ns", t.stats.hold_ns},
        {"forced_drops", t.stats.forced_drops},
        {"voluntary_releases", t.stats.voluntary_releases},
        {"yield_requests", t.stats.yield_requests},
        {"handoffs", t.handoffs},
        {"iterations", t.iterations},
        {"seconds", t.seconds},
    });
  }
  const gil::Histogram& hh = r.handoff_ns;
  json handoff_cdf = json::array();
  for (const auto& [p, ns] : hh.Cdf()) handoff_cdf.push_back({p, Us(ns)});
  json priorities = json::object();
  for (const auto& [role, p] : r.options.lock_priority) priorities[std::string(gil::RoleName(role))] = p;
  return {
      {"policy", r.options.policy},
      {"io_wait_us",
       {{"p50", Us(h.Percentile(50))},
        {"p90", Us(h.Percentile(90))},
        {"p99", Us(h.Percentile(99))},
        {"max", Us(h.max())},
        {"mean", h.Mean() / 1e3},
        {"count", h.count()}}},
      {"cpu_iterations_per_s", r.cpu_iterations_per_s},
      {"threads", threads},
      {"lock_switches", r.lock_switches},
      {"handoff_us",
       {{"p50", Us(hh.Percentile(50))},
        {"p90", Us(hh.Percentile(90))},
        {"p99", Us(hh.Percentile(99))},
        {"max", Us(hh.max())},
        {"mean", hh.Mean() / 1e3},
        {"count", hh.count()},
        {"cdf", handoff_cdf}}},
      {"seconds", r.seconds},
      {"cpu_threads", r.options.cpu_threads},
      {"io_sleep_us", r.options.io_sleep_us},
      {"iterations", r.options.iterations},
      {"io_work_units", r.options.io_work_units},
      {"switch_interval_us", r.options.switch_interval_us},
      {"check_interval", r.options.check_interval},
      {"lock_priority", priorities},
      {"trace", r.options.trace_path.empty() ? json(nullptr) : json(r.options.trace_path)},
      {"trace_dropped_events", r.trace_dropped_events},
      {"cpu_program", r.options.cpu_program},
      {"duration_ms", r.options.duration_ms},
      {"io_steps", r.io_steps},
      {"stall_threshold_ms", r.options.stall_threshold_ms},
      {"stalls", r.stalls},
  };
}

std::string FormatTable(const ContendResult& r) {
  const ContendOptions& o = r.options;
  const gil::Histogram& h = r.io_wait_ns;
  std::string out = fmt::format(
      "policy {}, {} cpu thread(s), io: {} x (sleep_us {} + {} work units), switch interval {} us{}\n",
      o.policy, o.cpu_threads, o.iterations, o.io_sleep_us, o.io_work_units, o.switch_interval_us,
      UsesTicks(o.policy) ? fmt::format(", check interval {}", o.check_interval) : "");
  out += fmt::format("io re-acquire wait (us): p50 {:.1f}  p90 {:.1f}  p99 {:.1f}  max {:.1f}  (n={})\n",
                     Us(h.Percentile(50)), Us(h.Percentile(90)), Us(h.Percentile(99)), Us(h.max()), h.count());
  out += fmt::format("cpu iterations/s: {:.4g}   run: {:.3f} s   lock switches: {}\n", r.cpu_iterations_per_s,
                     r.seconds, r.lock_switches);
  out += fmt::format("hand-off (us): p50 {:.1f}  p90 {:.1f}  p99 {:.1f}  max {:.1f}  (n={})\n",
                     Us(r.handoff_ns.Percentile(50)), Us(r.handoff_ns.Percentile(90)),
                     Us(r.handoff_ns.Percentile(99)), Us(r.handoff_ns.max()), r.handoff_ns.count());
  if (!o.trace_path.empty()) {
    out += fmt::format("trace: {} ({} events dropped)\n", o.trace_path, r.trace_dropped_events);
  }
  if (r.stalls > 0) out += fmt::format("stalls (a holder kept the lock >= {} ms while another waited for it): {}\n", o.stall_threshold_ms, r.stalls);
  if (r.io_steps < o.iterations) out += fmt::format("io steps: {} of {} (--duration-ms {} ended the run)\n", r.io_steps, o.iterations, o.duration_ms);
  out += "\n";
  out += fmt::format("{:<8} {:>4} {:>12} {:>11} {:>11} {:>8} {:>9} {:>9} {:>12}\n", "thread", "prio", "acquisitions",
                     "wait_ms", "hold_ms", "forced", "releases", "handoffs", "iterations");
  for (const ContendThread& t : r.threads) {
    out += fmt::format("{:<8} {:>4} {:>12} {:>11.1f} {:>11.1f} {:>8} {:>9} {:>9} {:>12}\n", t.name, t.lock_priority,
                       t.stats.acquisitions, static_cast<double>(t.stats.wait_ns) / 1e6,
                       static_cast<double>(t.stats.hold_ns) / 1e6, t.stats.forced_drops, t.stats.voluntary_releases,
                       t.handoffs, t.iterations);
  }
  return out;
}

void AddThreadRows(ContendResult& result, ContendThread io, std::vector<ContendThread> cpu,
                   const std::vector<int64_t>& cpu_counts, const std::vector<double>& cpu_seconds) {
  io.seconds = result.seconds;
  io.iterations = result.io_steps;
  result.threads.push_back(std::move(io));
  for (size_t i = 0; i < cpu.size(); ++i) {
    cpu[i].iterations = cpu_counts[i];
    cpu[i].seconds = cpu_seconds[i];
    if (cpu[i].seconds > 0) result.cpu_iterations_per_s += static_cast<double>(cpu[i].iterations) / cpu[i].seconds;
    result.threads.push_back(std::move(cpu[i]));
  }
}

}  // namespace gillab::interp
