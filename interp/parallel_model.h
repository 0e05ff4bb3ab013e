// parallel_model.h — parallel contexts (design §12, issue 14): the execution
// model of a handler call that runs outside the engine's lock, PyParallel's
// idea without its crashes.
//
// Each thread attached to a ParallelContextModel is one worker; every unit it
// runs (one Vm::Call, one handler call) is one parallel context:
//   - it runs at the same time as the other workers, with no lock at all;
//   - every table and string it makes goes to the worker's ContextArena
//     (context_arena.h), installed for the unit's duration; the owner frees
//     it whole with EndContext() once the reply has been copied out;
//   - it may read main-heap globals and tables (the heap's own ordinary
//     reads); it may not change them: every write the VM reports
//     (traits().sees_heap_accesses) to an object outside the worker's arena
//     — a global cell, a main-heap table — is refused (AccessRefused, which
//     the VM reports as a VmError naming program, line and object). Storing a
//     context value into a main-heap object is such a write, so nothing from
//     a freed arena can be reached again;
//   - writes to its own tables are charged to the arena (its limit,
//     --context-max-bytes, bounds what one request may make);
//   - StopIfRunningLonger (any thread: the server's stall report) makes a
//     unit that has run too long fail with a VmError at its next check point.
//
// The model guarantees reads are safe only while nobody changes the main
// heap: the caller (the parallel server) runs contexts only while its main
// thread holds the engine's lock and runs no VM code (between batches).
//
//   ParallelContextModel contexts({.context_max_bytes = 1 << 20});
//   auto me = contexts.Attach(gil::Role::kIo, "worker-0");
//   Vm vm(program, contexts, *me, {.heap = engine_heap});
//   contexts.Enter(*me);
//   Value reply = vm.Call("handle", {...});  std::string out = reply.as_bytes();
//   reply = Value(); contexts.EndContext(*me);  // the arena, freed whole
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "interp/context_arena.h"
#include "interp/exec_model.h"

namespace gillab::interp {

struct ParallelContextOptions {
  int64_t context_max_bytes = 0;  // per context; 0: no limit
};

class ParallelContextModel final : public ExecModel {
 public:
  explicit ParallelContextModel(ParallelContextOptions options = {}) : options_(options) {}

  std::string_view name() const override { return "parallel-context"; }
  const ExecTraits& traits() const override { return traits_; }

  std::unique_ptr<ExecThread> Attach(gil::Role role, std::string name, int priority = 0) override;
  void Enter(ExecThread& t) override;
  void Leave(ExecThread& t) override;
  bool Inside(const ExecThread& t) const override;
  void BeginBlocking(ExecThread& t) override;
  void EndBlocking(ExecThread& t) override;

  const std::atomic<bool>& EvalBreaker(const ExecThread& t) const override;
  int64_t TickInterval() const override { return 0; }

  void BeginUnit(ExecThread& t) override;
  UnitVerdict EndUnit(ExecThread& t, UnitEnd how) override;
  void OnCheckPoint(ExecThread& t) override;
  void OnTick(ExecThread&) override {}
  void OnExternalEffect(ExecThread&, std::string_view) override {}
  void OnHeapAccess(ExecThread& t, const HeapAccess& access) override;
  void SetPriority(ExecThread&, int) override {}

  // --- the owner of the worker (the parallel server, tests) ---------------
  // Frees the context's arena whole; call after the reply is copied out.
  void EndContext(ExecThread& t);
  // Thread-safe (the stall report): if the unit running on t started more
  // than threshold_ns ago, it fails at its next check point with a VmError
  // saying so; returns how long it has run (ns), 0 when nothing was stopped.
  // A unit that ended meanwhile is never affected, nor the next one.
  int64_t StopIfRunningLonger(ExecThread& t, int64_t threshold_ns);
  static const ContextArena& ArenaOf(const ExecThread& t);

  // What each heap write to a context table is charged (one entry's worth).
  static constexpr size_t kEntryChargeBytes = 64;

 private:
  class Worker;
  static Worker& Of(ExecThread& t);
  static const Worker& Of(const ExecThread& t);

  const ParallelContextOptions options_;
  const ExecTraits traits_{.exclusive = false, .sees_heap_accesses = true, .units_may_abort = false};
};

}  // namespace gillab::interp
