// toy_engine.h — handler and CPU threads on the toy VM under one gil policy.
//
// One execution model (interp::MakeExecModel(options.policy, ...): a lock
// policy behind interp::GilModel) is shared by every thread of the engine. An
// I/O thread attaches with role io, runs the handler program on its own Vm and
// is inside the model (holds the lock) from AttachIo until its IoThread is
// destroyed, except inside BlockingSections (the model's BeginBlocking before
// the blocking call, EndBlocking after): the way CPython's socket module wraps
// recv/send in Py_BEGIN_ALLOW_THREADS. CPU threads attach with role cpu and
// run cpu_spin's main() until StopCpuThreads, yielding at the VM's check
// points when a waiter asks. Every thread's record (interp::ExecThread and the
// gil::ThreadState behind it) lives as long as the engine: the next holder
// counts hand-offs into the previous holder's record, and Stats() reports
// threads that detached long ago. The trace, the stall monitor and Stats()
// read the model's lock (ExecModel::lock()).
// In a simulation (sim/sim_serve.h) EngineOptions::wrap_model wraps the model
// it makes and spawn_thread starts its CPU threads; a real run sets neither
// and pays nothing for them (both are read once, in the constructor).
//
//   ToyEngine engine({.policy = "newgil", .cpu_threads = 1});
//   engine.StartCpuThreads();
//   auto io = engine.AttachIo("io");                 // holds the lock
//   { BlockingSection b(*io); wait_for_request(); }  // released
//   io->Handle(request);
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "gil/stall_monitor.h"
#include "interp/heap.h"
#include "servers/cpu_thread_group.h"
#include "servers/engine.h"
#include "servers/engine_stats.h"

namespace gillab::interp {
struct Program;
class ExecModel;
class ParallelContextModel;
}

namespace gillab::servers {

class ToyEngine final : public Engine {
 public:
  // Throws UsageError for an unknown policy or an unreadable handler program.
  explicit ToyEngine(EngineOptions options);
  ~ToyEngine() override;

  std::string_view name() const override { return "toy"; }
  std::unique_ptr<IoThread> AttachIo(std::string thread_name) override;
  // A parallel-server worker (design §12): its own Vm per handler program on
  // the engine's heap, under interp::ParallelContextModel (no lock; arenas;
  // main-heap writes refused). Refused under a non-exclusive policy with CPU
  // threads (they would change the heap while contexts read it).
  std::unique_ptr<ContextWorker> AttachContextWorker(std::string thread_name, int64_t context_max_bytes) override;
  void StartCpuThreads() override;
  // Joins the CPU threads. If the calling thread is an attached I/O thread
  // holding the lock, it releases it while joining (the CPU threads need it to finish).
  void StopCpuThreads() override;
  nlohmann::json Stats() const override;
  void WriteTrace(const std::string& path, const nlohmann::json& run) const override;

  gil::Gil& gil() { return *gil_; }

 private:
  class Io;
  class Worker;
  struct Entry;
  struct WorkerEntry;

  std::shared_ptr<Entry> NewEntry(gil::Role role, std::string thread_name);
  int LockPriorityOf(gil::Role role) const;

  EngineOptions options_;
  std::unique_ptr<gil::TraceRecorder> recorder_;  // with options_.trace; outlives the lock
  std::unique_ptr<interp::ExecModel> model_;  // declared first: outlives every thread below
  gil::Gil* gil_ = nullptr;                   // model_'s lock
  std::unique_ptr<gil::StallMonitor> stall_monitor_;  // with options_.stall_threshold_ms > 0; watches gil_
  // handlers_[0] is options_.handler, handlers_[i] options_.extra_handlers[i-1].
  std::vector<std::shared_ptr<const interp::Program>> handlers_;
  std::shared_ptr<const interp::Program> cpu_spin_;
  std::string entry_ = "handle";  // the function a request calls: `handle`, or the framework's entry
  std::shared_ptr<interp::Heap> heap_;  // one shared heap (design §8) for every Vm of the engine
  mutable std::mutex mu_;
  std::vector<std::shared_ptr<Entry>> entries_;  // every thread ever attached, in attach order
  CpuThreadGroup cpu_;
  // The parallel server's workers (AttachContextWorker), made on first use.
  std::unique_ptr<interp::ParallelContextModel> contexts_;
  std::vector<std::shared_ptr<WorkerEntry>> workers_;  // guarded by mu_
};

}  // namespace gillab::servers
