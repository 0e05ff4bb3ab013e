// toy_engine.cc — see toy_engine.h.
#include "servers/toy_engine.h"

#include <atomic>
#include <stdexcept>

#include <fmt/format.h>

#include "gil/error.h"
#include "interp/vm.h"

namespace gillab::servers {

// One attached thread: its lock record and what Stats() adds to it.
struct ToyEngine::Entry {
  ThreadRecord record;                  // role, name, tid, os priority; lock figures filled at Stats()
  std::unique_ptr<gil::ThreadState> state;
  std::atomic<uint64_t> blocking_sections{0};
  // CPU threads: written by the thread before it ends, read after the join.
  uint64_t iterations = 0;
  int64_t elapsed_ns = 0;
};

namespace {
// The toy I/O thread attached on this OS thread, if any, so that
// StopCpuThreads called from it can let go of the lock while it joins.
thread_local gil::ThreadState* current_io_state = nullptr;
}  // namespace

class ToyEngine::Io final : public IoThread {
 public:
  Io(ToyEngine& engine, std::shared_ptr<Entry> entry)
      : engine_(engine), entry_(std::move(entry)) {
    // One Vm per handler program, made before taking the lock: a request
    // then costs only the call.
    for (const auto& program : engine_.handlers_) {
      vms_.push_back(std::make_unique<interp::Vm>(program, *engine_.gil_, *entry_->state));
    }
    engine_.gil_->Acquire(*entry_->state);
    previous_io_state_ = current_io_state;
    current_io_state = entry_->state.get();
  }
  ~Io() override {
    current_io_state = previous_io_state_;
    if (engine_.gil_->HeldBy(*entry_->state)) engine_.gil_->Release(*entry_->state);
  }

  std::string Handle(std::string_view request) override { return HandleWith(0, request); }
  std::string HandleWith(size_t id, std::string_view request) override {
    if (id >= vms_.size()) throw std::runtime_error(fmt::format("the toy engine has no handler #{}", id));
    interp::Value reply;
    try {
      reply = vms_[id]->Call("handle", {interp::Value::Bytes(std::string(request)),
                                  interp::Value::Int(engine_.options_.work_units)});
    } catch (const interp::VmError& e) {
      throw std::runtime_error(e.what());
    }
    return reply.is_int() ? std::to_string(reply.as_int()) : reply.as_bytes();
  }
  void BeginBlocking() override {
    entry_->blocking_sections.fetch_add(1, std::memory_order_relaxed);
    engine_.gil_->Release(*entry_->state);
  }
  void EndBlocking() override { engine_.gil_->Acquire(*entry_->state); }
  uint64_t blocking_sections() const override {
    return entry_->blocking_sections.load(std::memory_order_relaxed);
  }

 private:
  ToyEngine& engine_;
  std::shared_ptr<Entry> entry_;
  std::vector<std::unique_ptr<interp::Vm>> vms_;  // by handler id
  gil::ThreadState* previous_io_state_ = nullptr;
};

ToyEngine::ToyEngine(EngineOptions options) : options_(std::move(options)) {
  gil_ = gil::MakeGil(options_.policy, options_.gil);  // UsageError for an unknown policy
  if (options_.trace) {
    recorder_ = std::make_unique<gil::TraceRecorder>(options_.trace_options);
    gil_->EnableTrace(recorder_.get());
  }
  if (options_.stall_threshold_ms > 0) {
    stall_monitor_ = std::make_unique<gil::StallMonitor>(*gil_, gil::StallOptions{.threshold_ms = options_.stall_threshold_ms});
  }
  handlers_.push_back(interp::LoadProgram(options_.handler));  // UsageError naming FILE:LINE:COL
  for (const auto& extra : options_.extra_handlers) handlers_.push_back(interp::LoadProgram(extra));
  cpu_spin_ = interp::LoadProgram("cpu_spin");
}

ToyEngine::~ToyEngine() { StopCpuThreads(); }

int ToyEngine::LockPriorityOf(gil::Role role) const {
  auto it = options_.lock_priority.find(role);
  return it == options_.lock_priority.end() ? 0 : it->second;
}

std::shared_ptr<ToyEngine::Entry> ToyEngine::NewEntry(gil::Role role, std::string thread_name) {
  auto entry = std::make_shared<Entry>();
  entry->state = gil_->Attach(role, thread_name, LockPriorityOf(role));
  entry->record.role = role;
  entry->record.name = std::move(thread_name);
  entry->record.tid = gil::CurrentTid();
  entry->record.os_priority = ApplyRequestedOsPriority(options_.os_priority, role);
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
    gil::ThreadState& me = *entry->state;
    const int64_t start_ns = gil::NowNs();
    uint64_t iterations = 0;
    {
      interp::Vm vm(cpu_spin_, *gil_, me);
      group.OnStop(index, [&vm] { vm.RequestStop(); });
      gil_->Acquire(me);
      try {
        const interp::Value no_limit = interp::Value::Int(0);
        while (!vm.stop_requested()) iterations += static_cast<uint64_t>(vm.Call("main", {no_limit}).as_int());
      } catch (const std::exception& e) {
        // A broken cpu_spin program is a build defect; report it and let the thread end.
        fmt::print(stderr, "gillab: cpu thread {}: {}\n", index, e.what());
      }
      gil_->Release(me);
      group.Leave(index);
    }
    entry->elapsed_ns = gil::NowNs() - start_ns;
    entry->iterations = iterations;
  });
}

void ToyEngine::StopCpuThreads() {
  gil::ThreadState* io = current_io_state;
  const bool release = io != nullptr && gil_->HeldBy(*io);
  if (release) gil_->Release(*io);
  cpu_.Stop();
  if (release) gil_->Acquire(*io);
}

nlohmann::json ToyEngine::Stats() const {
  std::vector<ThreadRecord> threads;
  {
    std::lock_guard lock(mu_);
    for (const auto& entry : entries_) {
      ThreadRecord r = entry->record;
      r.lock_priority = entry->state->lock_priority();
      r.lock = FiguresOf(*entry->state);
      if (r.role == gil::Role::kIo) r.blocking_sections = entry->blocking_sections.load(std::memory_order_relaxed);
      if (r.role == gil::Role::kCpu) {
        r.iterations = entry->iterations;
        r.elapsed_ns = entry->elapsed_ns;
      }
      threads.push_back(std::move(r));
    }
  }
  return StatsJson({.engine = "toy", .policy = std::string(gil_->name()),
                    .switch_interval_us = options_.gil.switch_interval_us, .cpu_threads = options_.cpu_threads},
                   threads, LockJson(gil_->lock_stats()));
}

void ToyEngine::WriteTrace(const std::string& path, const nlohmann::json& run) const {
  if (!recorder_) Engine::WriteTrace(path, run);  // throws: not traced
  recorder_->WriteChromeJson(path, run.dump());
}

}  // namespace gillab::servers
