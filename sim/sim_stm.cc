// sim_stm.cc — see sim_stm.h. The worker body is one function for both
// modes; only who runs the threads differs (the simulator, or std::thread).
#include "sim/sim_stm.h"

#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>
#include <latch>
#include <memory>
#include <thread>

#include <fmt/core.h>

#include "gil/clock.h"
#include "gil/error.h"
#include "interp/framework.h"
#include "interp/heap.h"
#include "interp/stm_model.h"
#include "interp/vm.h"

namespace gillab::sim {
namespace {

using interp::Value;

// The figures of the stm's report that a point counts (end minus start).
struct StmTotals {
  int64_t commits = 0, aborts = 0, inevitable_units = 0, conflicts = 0;
  int64_t committed_ns = 0, aborted_ns = 0, paused_ns = 0;
};

StmTotals TotalsOf(const interp::StmModel& stm) {
  const interp::StmReport r = stm.Report();
  StmTotals t{r.commits, r.aborts, r.inevitable_units, 0, r.committed_ns, r.aborted_ns, r.paused_ns};
  for (const interp::StmConflict& c : r.conflicts) t.conflicts += c.count;
  return t;
}

// What every run of a point shares: the program, the transaction's call,
// the count of transactions handed out, and the time span of the workers.
struct Work {
  std::shared_ptr<const interp::Program> program;
  std::string entry;
  bool race = false;
  std::string payload;
  int64_t n = 0;
  int transactions = 0;
  std::atomic<int> next{0};
  std::atomic<int> unfinished{0};
  int64_t start_ns = 0;
  std::atomic<int64_t> end_ns{0};
};

std::vector<Value> ArgsOf(const Work& w, int id) {
  if (w.race) return {Value::Int(w.n), Value::Int(id)};
  return {Value::Bytes(w.payload), Value::Int(0)};
}

// One worker: takes transactions until none is left, then stamps the end
// time (the latest stamp wins). Returns whether it was the last to finish.
bool WorkerBody(interp::ExecModel& model, const std::shared_ptr<interp::Heap>& heap, Work& w, int id) {
  auto me = model.Attach(gil::Role::kCpu, fmt::format("worker-{}", id));
  {
    interp::Vm vm(w.program, model, *me, interp::VmOptions{.heap = heap});
    model.Enter(*me);
    while (w.next.fetch_add(1, std::memory_order_relaxed) < w.transactions) vm.Call(w.entry, ArgsOf(w, id));
    model.Leave(*me);
  }
  const int64_t now = gil::NowNs();
  int64_t end = w.end_ns.load(std::memory_order_relaxed);
  while (end < now && !w.end_ns.compare_exchange_weak(end, now, std::memory_order_relaxed)) {
  }
  return w.unfinished.fetch_sub(1, std::memory_order_acq_rel) == 1;
}

// CPU time of the whole process (user + system), in seconds.
double ProcessCpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto s = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
  return s(u.ru_utime) + s(u.ru_stime);
}

// setup(k, n) or check() of a race program, on the calling thread.
int64_t CallOnce(interp::ExecModel& model, const std::shared_ptr<interp::Heap>& heap, const Work& w,
                 const std::string& fn, const std::vector<Value>& args) {
  auto me = model.Attach(gil::Role::kIo, fn);
  interp::Vm vm(w.program, model, *me, interp::VmOptions{.heap = heap});
  model.Enter(*me);
  const Value v = vm.Call(fn, args);
  model.Leave(*me);
  return v.is_int() ? v.as_int() : 0;
}

void CheckOptions(const StmWorkersOptions& o) {
  if (o.workers < 1 || o.workers > interp::StmModel::kMaxThreads - 1) {
    throw UsageError(fmt::format("--workers must be 1..{}, got {}", interp::StmModel::kMaxThreads - 1, o.workers));
  }
  if (o.transactions < 1) throw UsageError(fmt::format("--transactions must be >= 1, got {}", o.transactions));
  if (!o.real && o.sim.os.cores < 1) throw UsageError(fmt::format("--cores must be >= 1, got {}", o.sim.os.cores));
  if (o.workload.kind != "framework" && o.workload.kind != "race") {
    throw UsageError(fmt::format("unknown workload kind '{}' (choose from framework, race)", o.workload.kind));
  }
  if (o.workload.kind == "race" && o.workload.n < 0) throw UsageError(fmt::format("--n must be >= 0, got {}", o.workload.n));
}

}  // namespace

StmWorkersResult RunStmWorkers(const StmWorkersOptions& options) {
  CheckOptions(options);
  const StmWorkload& wl = options.workload;
  Work w;
  w.race = wl.kind == "race";
  w.transactions = options.transactions;
  w.payload = wl.payload;
  w.n = wl.n;
  if (w.race) {
    w.program = interp::LoadProgram(wl.program);
    for (const char* fn : {"setup", "worker", "check"}) {
      if (w.program->Find(fn) == nullptr) {
        throw UsageError(fmt::format("program '{}' has no function '{}' (gillab race's convention: setup, worker, check)",
                                     wl.program, fn));
      }
    }
    w.entry = "worker";
  } else {
    w.entry = interp::FrameworkEntry(wl.framework_clock);
    w.program = interp::LoadProgramWithFramework(wl.handler);
  }
  w.unfinished = options.workers;

  StmWorkersResult out;
  out.options = options;
  auto heap = std::make_shared<interp::Heap>(interp::HeapOptions{.concurrent = true});
  StmTotals start, end;
  const auto host_t0 = std::chrono::steady_clock::now();

  if (options.real) {
    auto model = interp::MakeExecModel("stm", options.stm);
    auto& stm = static_cast<interp::StmModel&>(*model);
    if (w.race) CallOnce(*model, heap, w, "setup", {Value::Int(options.workers), Value::Int(w.n)});
    start = TotalsOf(stm);
    std::latch ready(options.workers + 1);
    std::vector<std::exception_ptr> errors(static_cast<size_t>(options.workers));
    std::vector<std::thread> pool;
    for (int id = 0; id < options.workers; ++id) {
      pool.emplace_back([&, id] {
        ready.arrive_and_wait();
        try {
          WorkerBody(*model, heap, w, id);
        } catch (...) {
          errors[static_cast<size_t>(id)] = std::current_exception();
          w.next.store(w.transactions, std::memory_order_relaxed);  // the others stop too
        }
      });
    }
    const double cpu0 = ProcessCpuSeconds();
    w.start_ns = gil::NowNs();
    ready.arrive_and_wait();
    for (auto& t : pool) t.join();
    out.cpu_seconds = ProcessCpuSeconds() - cpu0;
    for (const auto& e : errors) {
      if (e) std::rethrow_exception(e);
    }
    end = TotalsOf(stm);
    out.report = stm.ReportJson();
    if (w.race) {
      out.check = CallOnce(*model, heap, w, "check", {});
      out.checked = true;
    }
  } else {
    Simulator sim(options.sim);
    SimModel model(interp::MakeExecModel("stm", options.stm), sim, options.model);
    auto& stm = static_cast<interp::StmModel&>(model.inner());
    // Everything runs in virtual threads (one at a time): setup, then the
    // workers, then check() after the last of them.
    sim.Spawn("main", [&] {
      if (w.race) CallOnce(model, heap, w, "setup", {Value::Int(options.workers), Value::Int(w.n)});
      start = TotalsOf(stm);
      w.start_ns = gil::NowNs();
      for (int id = 0; id < options.workers; ++id) {
        sim.Spawn(fmt::format("worker-{}", id), [&, id] {
          if (WorkerBody(model, heap, w, id)) {
            end = TotalsOf(stm);
            out.report = stm.ReportJson();
            if (w.race) {
              out.check = CallOnce(model, heap, w, "check", {});
              out.checked = true;
            }
          }
        });
      }
    });
    sim.Run();
    out.stats = sim.stats();
    out.instructions = model.instructions();
  }
  out.host_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - host_t0).count();
  out.transactions = options.transactions;
  out.seconds = static_cast<double>(w.end_ns.load() - w.start_ns) / 1e9;
  out.per_second = out.seconds > 0 ? static_cast<double>(out.transactions) / out.seconds : 0;
  out.commits = end.commits - start.commits;
  out.aborts = end.aborts - start.aborts;
  out.inevitable_units = end.inevitable_units - start.inevitable_units;
  out.conflicts = end.conflicts - start.conflicts;
  out.committed_ns = end.committed_ns - start.committed_ns;
  out.aborted_ns = end.aborted_ns - start.aborted_ns;
  out.paused_ns = end.paused_ns - start.paused_ns;
  return out;
}

nlohmann::json ToJson(const StmWorkersResult& r) {
  const StmWorkersOptions& o = r.options;
  nlohmann::json j = {
      {"mode", o.real ? "real" : "simulate"},
      {"workers", o.workers},
      {"transactions", r.transactions},
      {"seconds", r.seconds},
      {"transactions_per_s", r.per_second},
      {"commits", r.commits},
      {"aborts", r.aborts},
      {"inevitable_units", r.inevitable_units},
      {"conflicts", r.conflicts},
      {"committed_ns", r.committed_ns},
      {"aborted_ns", r.aborted_ns},
      {"paused_ns", r.paused_ns},
      {"stm_transaction_length", o.stm.stm_transaction_length},
      {"stm_aborts_before_inevitable", o.stm.stm_aborts_before_inevitable},
      {"report", r.report},
  };
  if (o.workload.kind == "race") {
    j["workload"] = {{"kind", "race"}, {"program", o.workload.program}, {"n", o.workload.n}};
  } else {
    j["workload"] = {{"kind", "framework"},
                     {"handler", o.workload.handler},
                     {"payload", o.workload.payload},
                     {"framework_clock", o.workload.framework_clock}};
  }
  if (r.checked) j["check"] = r.check;
  if (o.real) j["cpu_seconds"] = r.cpu_seconds;
  if (!o.real) {
    j["cores"] = o.sim.os.cores;
    j["seed"] = o.sim.seed;
    j["quantum_instructions"] = o.model.quantum_instructions;
    j["sim"] = {{"instructions", r.instructions}, {"events", r.stats.events},
                {"switches", r.stats.switches},   {"preemptions", r.stats.preemptions},
                {"migrations", r.stats.migrations}};
  }
  return j;
}

std::string FormatStmWorkersHeader() {
  return fmt::format("{:<9} {:>5} {:>7} {:>6} {:>10} {:>10} {:>8} {:>7} {:>9} {:>10} {:>10} {:>8} {:>8}\n", "mode",
                     "cores", "workers", "tx", "seconds", "tx/s", "aborts", "inev", "conflicts", "aborted_ms",
                     "paused_ms", "host_s", "cpu_s");
}

std::string FormatStmWorkersRow(const StmWorkersResult& r) {
  const StmWorkersOptions& o = r.options;
  return fmt::format("{:<9} {:>5} {:>7} {:>6} {:>10.4f} {:>10.1f} {:>8} {:>7} {:>9} {:>10.1f} {:>10.1f} {:>8.2f} {:>8}\n",
                     o.real ? "real" : "simulate", o.real ? std::string("host") : std::to_string(o.sim.os.cores),
                     o.workers, r.transactions, r.seconds, r.per_second, r.aborts, r.inevitable_units, r.conflicts,
                     static_cast<double>(r.aborted_ns) / 1e6, static_cast<double>(r.paused_ns) / 1e6, r.host_seconds,
                     o.real ? fmt::format("{:.2f}", r.cpu_seconds) : std::string("-"));
}

}  // namespace gillab::sim
