// sim_contend.cc — see sim_contend.h. The body of each thread mirrors
// interp/contend.cc's; what differs is that the threads are the simulator's.
#include "sim/sim_contend.h"

#include <algorithm>
#include <chrono>
#include <exception>
#include <memory>
#include <optional>
#include <vector>

#include <fmt/core.h>

#include "gil/error.h"
#include "gil/trace.h"
#include "interp/heap.h"
#include "interp/stm_model.h"
#include "interp/vm.h"
#include "sim/sim_json.h"

namespace gillab::sim {
namespace {

// The io thread starts this long after the cpu threads (see sim_contend.h).
constexpr int64_t kIoStartDelayNs = 100'000;

}  // namespace

SimContendResult RunSimContend(const SimContendOptions& options) {
  using interp::Value;
  using interp::Vm;
  using interp::VmOptions;
  const interp::ContendOptions& o = options.contend;
  if (o.cpu_threads < 0) throw UsageError(fmt::format("--cpu-threads must be >= 0, got {}", o.cpu_threads));
  if (o.iterations < 1) throw UsageError(fmt::format("--iterations must be >= 1, got {}", o.iterations));
  if (o.io_sleep_us < 0) throw UsageError(fmt::format("--io-sleep-us must be >= 0, got {}", o.io_sleep_us));
  if (o.io_work_units < 0) throw UsageError(fmt::format("--io-work-units must be >= 0, got {}", o.io_work_units));
  if (o.duration_ms < 0) throw UsageError(fmt::format("--duration-ms must be >= 0, got {}", o.duration_ms));
  if (options.sim.os.cores < 1) throw UsageError(fmt::format("--cores must be >= 1, got {}", options.sim.os.cores));
  // `mutex` (uses_ticks) yields by releasing and re-taking its word in one
  // step, with no virtual time between: a woken waiter always finds it taken
  // again and the io thread would starve forever (the real run has a window
  // of a few ns that sometimes lets it in). Not modelled yet.
  const auto& policies = gil::PolicyNames();
  const bool is_lock_policy = std::find(policies.begin(), policies.end(), o.policy) != policies.end();
  if (is_lock_policy && gil::PolicyTraitsOf(o.policy).uses_ticks) {
    throw UsageError(fmt::format("simulate does not model policy '{}' yet (its tick yield leaves no window in virtual time)", o.policy));
  }

  const auto host_t0 = std::chrono::steady_clock::now();
  Simulator sim(options.sim);
  SimModel model(interp::MakeExecModel(o.policy, {.gil = {.switch_interval_us = o.switch_interval_us,
                                                          .check_interval = o.check_interval}}),
                 sim, options.model);
  // nullptr under a model without a lock (stm): no lock figures, no trace.
  gil::Gil* gil = model.lock();
  if (gil == nullptr && !o.trace_path.empty()) {
    throw UsageError(fmt::format("--trace needs a lock policy; '{}' has no lock", o.policy));
  }
  std::unique_ptr<gil::TraceRecorder> recorder;
  if (!o.trace_path.empty()) {
    recorder = std::make_unique<gil::TraceRecorder>(gil::TraceOptions{.max_events_per_thread = o.trace_max_events});
    gil->EnableTrace(recorder.get());
  }
  auto cpu_program = interp::LoadProgram(o.cpu_program);
  auto io_program = interp::LoadProgram("io_step");
  auto heap = std::make_shared<interp::Heap>(interp::HeapOptions{.concurrent = !model.traits().exclusive});

  // Only one simulated thread runs at a time (the baton), so these need no lock.
  const auto k = static_cast<size_t>(o.cpu_threads);
  std::vector<std::unique_ptr<interp::ExecThread>> cpu_states(k);
  std::vector<int64_t> cpu_counts(k, 0);
  std::vector<double> cpu_seconds(k, 0);
  std::vector<Vm*> cpu_vms(k, nullptr);
  bool stopping = false;
  auto stop_all = [&] {
    stopping = true;
    for (Vm* vm : cpu_vms) {
      if (vm != nullptr) vm->RequestStop();
    }
  };

  SimContendResult out;
  out.options = options;
  interp::ContendResult& result = out.contend;
  result.options = o;

  for (size_t i = 0; i < k; ++i) {
    sim.Spawn(fmt::format("cpu-{}", i), [&, i] {
      cpu_states[i] = model.Attach(gil::Role::kCpu, fmt::format("cpu-{}", i), interp::PriorityOf(o, gil::Role::kCpu));
      Vm vm(cpu_program, model, *cpu_states[i], VmOptions{.heap = heap});
      cpu_vms[i] = &vm;
      if (stopping) vm.RequestStop();
      const int64_t t0 = sim.now_ns();  // before the first acquire, as contend.cc
      model.Enter(*cpu_states[i]);
      cpu_counts[i] = vm.Call("main", {Value::Int(0)}).as_int();
      cpu_seconds[i] = static_cast<double>(sim.now_ns() - t0) / 1e9;
      model.Leave(*cpu_states[i]);
      cpu_vms[i] = nullptr;
    });
  }
  std::unique_ptr<interp::ExecThread> io_state;
  sim.Spawn("io", [&] {
    sim.Sleep(kIoStartDelayNs);
    io_state = model.Attach(gil::Role::kIo, "io", interp::PriorityOf(o, gil::Role::kIo));
    {
      Vm vm(io_program, model, *io_state, VmOptions{.heap = heap});
      model.Enter(*io_state);
      const int64_t t0 = sim.now_ns();
      const int64_t end_ns = o.duration_ms > 0 ? t0 + o.duration_ms * 1'000'000 : INT64_MAX;
      for (int n = 0; n < o.iterations && sim.now_ns() < end_ns; ++n) {
        vm.Call("step", {Value::Int(o.io_sleep_us), Value::Int(o.io_work_units)});
        result.io_steps = n + 1;
      }
      result.seconds = static_cast<double>(sim.now_ns() - t0) / 1e9;
      model.Leave(*io_state);
      result.io_wait_ns = vm.reacquire_wait_ns();
    }
    stop_all();
  });
  sim.Run();
  out.host_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - host_t0).count();
  out.stats = sim.stats();
  out.instructions = model.instructions();

  if (gil != nullptr) {
    result.lock_switches = gil->lock_stats().switches;
    result.handoff_ns = gil->lock_stats().handoff_ns;
  }
  out.model_report = model.ReportJson();
  std::vector<interp::ContendThread> cpu;
  for (size_t i = 0; i < k; ++i) cpu.push_back(interp::Snapshot(*cpu_states[i], gil::Role::kCpu, fmt::format("cpu-{}", i)));
  interp::AddThreadRows(result, interp::Snapshot(*io_state, gil::Role::kIo, "io"), std::move(cpu), cpu_counts, cpu_seconds);
  if (recorder) {
    result.trace_dropped_events = recorder->dropped_events();
    recorder->WriteChromeJson(o.trace_path, ToJson(out).dump());
  }
  return out;
}

nlohmann::json ToJson(const SimContendResult& r) {
  nlohmann::json j = interp::ToJson(r.contend);
  j.update(SimFieldsJson(r.options.sim, r.options.model, r.stats, r.instructions));
  if (!r.model_report.is_null()) j["model_report"] = r.model_report;
  return j;
}

std::string FormatTable(const SimContendResult& r) {
  std::string out = fmt::format("simulated: {} cores, seed {} (times are virtual)\n", r.options.sim.os.cores,
                                r.options.sim.seed);
  out += interp::FormatTable(r.contend);
  if (!r.model_report.is_null() && r.options.contend.policy == "stm") out += "\n" + interp::FormatStmReport(r.model_report);
  const double per_s = r.host_seconds > 0 ? static_cast<double>(r.instructions) / r.host_seconds : 0;
  out += fmt::format(
      "\nsimulator: {} VM instructions, {} events, {} switches, {} preemptions, {} migrations; "
      "{:.3f} host s ({:.3g} instructions per host s)\n",
      r.instructions, r.stats.events, r.stats.switches, r.stats.preemptions, r.stats.migrations, r.host_seconds,
      per_s);
  return out;
}

}  // namespace gillab::sim
