// toy_engine.cc — see toy_engine.h.
#include "servers/toy_engine.h"

#include <atomic>
#include <stdexcept>

#include <fmt/format.h>

#include "gil/error.h"
#include "interp/framework.h"
#include "interp/parallel_model.h"
#include "interp/vm.h"

namespace gillab::servers {

// One attached thread: its lock record and what Stats() adds to it.
struct ToyEngine::Entry {
  ThreadRecord record;                  // role, name, tid, os priority; lock figures filled at Stats()
  std::unique_ptr<interp::ExecThread> thread;  // attached to the engine's model
  std::atomic<uint64_t> blocking_sections{0};
  // CPU threads: written by the thread before it ends, read after the join.
  uint64_t iterations = 0;
  int64_t elapsed_ns = 0;
};

namespace {
// The toy I/O thread attached on this OS thread, if any, so that
// StopCpuThreads called from it can let go of the lock while it joins.
thread_local interp::ExecThread* current_io_thread = nullptr;
}  // namespace

// A handler call as a VM coroutine (design §10): parks in blocking natives.
class ToyCall final : public HandlerCall {
 public:
  ToyCall(interp::Vm& vm, std::unique_ptr<interp::Coroutine> co) : vm_(vm), co_(std::move(co)) {}
  Step Resume() override {
    interp::Value reply;
    try {
      if (vm_.Resume(*co_, &reply) == interp::Coroutine::Status::kSuspended) return Step::kParked;
    } catch (const interp::VmError& e) {
      throw std::runtime_error(e.what());
    }
    reply_ = reply.is_int() ? std::to_string(reply.as_int()) : reply.as_bytes();
    return Step::kDone;
  }
  int64_t wait_us() const override { return co_->wait().duration_us; }
  std::string TakeReply() override { return std::move(reply_); }
  std::string where() const override { return vm_.Where(*co_); }
  size_t bytes() const override { return co_->bytes(); }

 private:
  interp::Vm& vm_;
  std::unique_ptr<interp::Coroutine> co_;
  std::string reply_;
};

class ToyEngine::Io final : public IoThread {
 public:
  Io(ToyEngine& engine, std::shared_ptr<Entry> entry)
      : engine_(engine), entry_(std::move(entry)) {
    // One Vm per handler program, made before entering the model: a request
    // then costs only the call. All of them share the engine's heap.
    for (const auto& program : engine_.handlers_) {
      vms_.push_back(std::make_unique<interp::Vm>(program, *engine_.model_, *entry_->thread,
                                                  interp::VmOptions{.heap = engine_.heap_}));
    }
    engine_.model_->Enter(*entry_->thread);
    previous_io_thread_ = current_io_thread;
    current_io_thread = entry_->thread.get();
  }
  ~Io() override {
    current_io_thread = previous_io_thread_;
    if (engine_.model_->Inside(*entry_->thread)) engine_.model_->Leave(*entry_->thread);
  }

  std::string Handle(std::string_view request) override { return HandleWith(0, request); }
  std::string HandleWith(size_t id, std::string_view request) override {
    if (id >= vms_.size()) throw std::runtime_error(fmt::format("the toy engine has no handler #{}", id));
    interp::Value reply;
    try {
      reply = vms_[id]->Call(engine_.entry_, {interp::Value::Bytes(std::string(request)),
                                  interp::Value::Int(engine_.options_.work_units)});
    } catch (const interp::VmError& e) {
      throw std::runtime_error(e.what());
    }
    return reply.is_int() ? std::to_string(reply.as_int()) : reply.as_bytes();
  }
  std::unique_ptr<HandlerCall> StartCall(size_t id, std::string_view request) override {
    if (id >= vms_.size()) throw std::runtime_error(fmt::format("the toy engine has no handler #{}", id));
    // A unit that may abort (stm) cannot span a coroutine's suspensions: run
    // the handler as one plain call, whose blocking natives block the hub
    // thread (as code gevent did not patch blocks gevent's hub).
    if (engine_.model_->traits().units_may_abort) return IoThread::StartCall(id, request);
    try {
      return std::make_unique<ToyCall>(*vms_[id], vms_[id]->Start("handle", {interp::Value::Bytes(std::string(request)),
                                                                          interp::Value::Int(engine_.options_.work_units)}));
    } catch (const interp::VmError& e) {
      throw std::runtime_error(e.what());
    }
  }
  void BeginBlocking() override {
    entry_->blocking_sections.fetch_add(1, std::memory_order_relaxed);
    engine_.model_->BeginBlocking(*entry_->thread);
  }
  void EndBlocking() override { engine_.model_->EndBlocking(*entry_->thread); }
  uint64_t blocking_sections() const override {
    return entry_->blocking_sections.load(std::memory_order_relaxed);
  }

 private:
  ToyEngine& engine_;
  std::shared_ptr<Entry> entry_;
  std::vector<std::unique_ptr<interp::Vm>> vms_;  // by handler id
  interp::ExecThread* previous_io_thread_ = nullptr;
};

// One parallel-server worker: its context thread and what Stats() reports.
struct ToyEngine::WorkerEntry {
  std::string name;
  std::unique_ptr<interp::ExecThread> thread;  // attached to contexts_; its arena outlives the worker
  std::atomic<uint64_t> contexts{0};
  std::atomic<uint64_t> failed{0};
  std::atomic<uint64_t> stopped{0};
};

class ToyEngine::Worker final : public ContextWorker {
 public:
  Worker(ToyEngine& engine, std::shared_ptr<WorkerEntry> entry) : engine_(engine), entry_(std::move(entry)) {
    for (const auto& program : engine_.handlers_) {
      vms_.push_back(std::make_unique<interp::Vm>(program, *engine_.contexts_, *entry_->thread,
                                                  interp::VmOptions{.heap = engine_.heap_}));
    }
    engine_.contexts_->Enter(*entry_->thread);
  }
  ~Worker() override { engine_.contexts_->Leave(*entry_->thread); }

  std::string Handle(std::string_view request) override { return HandleWith(0, request); }
  std::string HandleWith(size_t id, std::string_view request) override {
    if (id >= vms_.size()) throw std::runtime_error(fmt::format("the toy engine has no handler #{}", id));
    std::string out;
    std::string error;
    entry_->contexts.fetch_add(1, std::memory_order_relaxed);
    try {
      const interp::Value reply = vms_[id]->Call("handle", {interp::Value::Bytes(std::string(request)),
                                                             interp::Value::Int(engine_.options_.work_units)});
      out = reply.is_int() ? std::to_string(reply.as_int()) : reply.as_bytes();  // copied out of the arena
    } catch (const interp::VmError& e) {
      error = e.what();
    }
    engine_.contexts_->EndContext(*entry_->thread);  // the context, freed whole
    if (!error.empty()) {
      entry_->failed.fetch_add(1, std::memory_order_relaxed);
      throw std::runtime_error(error);
    }
    return out;
  }
  void BeginBlocking() override {}
  void EndBlocking() override {}
  uint64_t blocking_sections() const override { return 0; }
  int64_t StopIfRunningLongerThan(int64_t threshold_ms) override {
    const int64_t ran_ns = engine_.contexts_->StopIfRunningLonger(*entry_->thread, threshold_ms * 1'000'000);
    if (ran_ns > 0) entry_->stopped.fetch_add(1, std::memory_order_relaxed);
    return ran_ns / 1'000'000;
  }

 private:
  ToyEngine& engine_;
  std::shared_ptr<WorkerEntry> entry_;
  std::vector<std::unique_ptr<interp::Vm>> vms_;  // by handler id
};

std::unique_ptr<ContextWorker> ToyEngine::AttachContextWorker(std::string thread_name, int64_t context_max_bytes) {
  if (!model_->traits().exclusive && options_.cpu_threads > 0) {
    throw UsageError(fmt::format("the parallel server's contexts read the heap while its main thread holds the lock; "
                                 "under policy '{}' the lock excludes nobody, so --cpu-threads must be 0",
                                 options_.policy));
  }
  auto entry = std::make_shared<WorkerEntry>();
  {
    std::lock_guard lock(mu_);
    if (!contexts_) {
      contexts_ = std::make_unique<interp::ParallelContextModel>(
          interp::ParallelContextOptions{.context_max_bytes = context_max_bytes});
    }
    entry->name = std::move(thread_name);
    entry->thread = contexts_->Attach(gil::Role::kIo, entry->name);
    workers_.push_back(entry);
  }
  return std::make_unique<Worker>(*this, std::move(entry));
}

ToyEngine::ToyEngine(EngineOptions options) : options_(std::move(options)) {
  model_ = interp::MakeExecModel(options_.policy, {.gil = options_.gil});  // UsageError for an unknown policy
  if (options_.wrap_model) model_ = options_.wrap_model(std::move(model_));  // a simulation (engine.h)
  if (options_.spawn_thread) cpu_.SetSpawner(options_.spawn_thread);
  // The lock behind the model: what the trace, the stall monitor and Stats() read.
  // nullptr under a model without a lock (stm): no trace, no lock figures,
  // and the model's own stall lines instead of the stall monitor.
  gil_ = model_->lock();
  if (gil_ == nullptr && options_.trace) {
    throw UsageError(fmt::format("--trace needs a lock policy; '{}' has no lock", options_.policy));
  }
  if (options_.trace) {
    recorder_ = std::make_unique<gil::TraceRecorder>(options_.trace_options);
    gil_->EnableTrace(recorder_.get());
  }
  if (options_.stall_threshold_ms > 0 && gil_ != nullptr) {
    stall_monitor_ = std::make_unique<gil::StallMonitor>(*gil_, gil::StallOptions{.threshold_ms = options_.stall_threshold_ms});
  }
  // With a framework every handler runs behind its prelude, in the same unit.
  auto load = [this](const std::string& name) {
    return options_.framework_clock.empty() ? interp::LoadProgram(name) : interp::LoadProgramWithFramework(name);
  };
  if (!options_.framework_clock.empty()) entry_ = interp::FrameworkEntry(options_.framework_clock);
  handlers_.push_back(load(options_.handler));  // UsageError naming FILE:LINE:COL
  for (const auto& extra : options_.extra_handlers) handlers_.push_back(load(extra));
  cpu_spin_ = interp::LoadProgram("cpu_spin");
  // Concurrent when VM threads may run at the same time (policy `none`).
  heap_ = std::make_shared<interp::Heap>(interp::HeapOptions{.concurrent = !model_->traits().exclusive});
}

ToyEngine::~ToyEngine() { StopCpuThreads(); }

int ToyEngine::LockPriorityOf(gil::Role role) const {
  auto it = options_.lock_priority.find(role);
  return it == options_.lock_priority.end() ? 0 : it->second;
}

std::shared_ptr<ToyEngine::Entry> ToyEngine::NewEntry(gil::Role role, std::string thread_name) {
  auto entry = std::make_shared<Entry>();
  entry->thread = model_->Attach(role, thread_name, LockPriorityOf(role));
  entry->record = StartThreadRecord(role, std::move(thread_name), options_.os_priority);
  std::lock_guard lock(mu_);
  entries_.push_back(entry);
  return entry;
}

std::unique_ptr<IoThread> ToyEngine::AttachIo(std::string thread_name) {
  return std::make_unique<Io>(*this, NewEntry(gil::Role::kIo, std::move(thread_name)));
}

void ToyEngine::StartCpuThreads() {
  if (options_.cpu_threads <= 0 || cpu_.running()) return;
  cpu_.Start(options_.cpu_threads, [this](int index, CpuThreadGroup& group) {
    std::shared_ptr<Entry> entry = NewEntry(gil::Role::kCpu, fmt::format("cpu-{}", index));
    interp::ExecThread& me = *entry->thread;
    const int64_t start_ns = gil::NowNs();
    uint64_t iterations = 0;
    {
      interp::Vm vm(cpu_spin_, *model_, me, interp::VmOptions{.heap = heap_});
      group.OnStop(index, [&vm] { vm.RequestStop(); });
      model_->Enter(me);
      try {
        const interp::Value no_limit = interp::Value::Int(0);
        while (!vm.stop_requested()) iterations += static_cast<uint64_t>(vm.Call("main", {no_limit}).as_int());
      } catch (const std::exception& e) {
        // A broken cpu_spin program is a build defect; report it and let the thread end.
        fmt::print(stderr, "gillab: cpu thread {}: {}\n", index, e.what());
      }
      model_->Leave(me);
      group.Leave(index);
    }
    entry->elapsed_ns = gil::NowNs() - start_ns;
    entry->iterations = iterations;
  });
}

void ToyEngine::StopCpuThreads() {
  interp::ExecThread* io = current_io_thread;
  const bool release = io != nullptr && model_->Inside(*io);
  if (release) model_->BeginBlocking(*io);
  cpu_.Stop();
  if (release) model_->EndBlocking(*io);
}

nlohmann::json ToyEngine::Stats() const {
  std::vector<ThreadRecord> threads;
  {
    std::lock_guard lock(mu_);
    for (const auto& entry : entries_) {
      ThreadRecord r = entry->record;
      const gil::ThreadState* state = entry->thread->lock_state();  // nullptr: a model without a lock (stm)
      if (state != nullptr) {
        r.lock_priority = state->lock_priority();
        r.lock = FiguresOf(*state);
      } else {
        r.lock = NoLockFigures();
      }
      r.model = model_->Figures(*entry->thread);
      if (r.role == gil::Role::kIo) r.blocking_sections = entry->blocking_sections.load(std::memory_order_relaxed);
      if (r.role == gil::Role::kCpu) {
        r.iterations = entry->iterations;
        r.elapsed_ns = entry->elapsed_ns;
      }
      threads.push_back(std::move(r));
    }
  }
  nlohmann::json stats = StatsJson({.engine = "toy", .policy = std::string(model_->name()),
                                    .switch_interval_us = options_.gil.switch_interval_us,
                                    .cpu_threads = options_.cpu_threads, .model = model_->RunFigures()},
                                   threads, gil_ != nullptr ? LockJson(gil_->lock_stats()) : nlohmann::json());
  const nlohmann::json report = model_->ReportJson();
  if (!report.is_null()) stats["model_report"] = report;
  std::lock_guard lock(mu_);
  if (!workers_.empty() && stats.is_object()) {
    // Each worker's contexts: how many, how many failed or were stopped, and
    // the arena's high-water mark (the most one context of it held, bytes).
    nlohmann::json contexts = nlohmann::json::array();
    for (const auto& w : workers_) {
      const interp::ContextArena& arena = interp::ParallelContextModel::ArenaOf(*w->thread);
      contexts.push_back({{"name", w->name},
                          {"contexts", w->contexts.load(std::memory_order_relaxed)},
                          {"failed", w->failed.load(std::memory_order_relaxed)},
                          {"stopped", w->stopped.load(std::memory_order_relaxed)},
                          {"arena_high_water_bytes", arena.high_water_bytes()},
                          {"arena_chunks", arena.chunk_count()},
                          {"arena_max_bytes", arena.max_bytes()}});
    }
    stats["parallel_contexts"] = std::move(contexts);
  }
  return stats;
}

void ToyEngine::WriteTrace(const std::string& path, const nlohmann::json& run) const {
  if (!recorder_) Engine::WriteTrace(path, run);  // throws: not traced
  recorder_->WriteChromeJson(path, run.dump());
}

}  // namespace gillab::servers
