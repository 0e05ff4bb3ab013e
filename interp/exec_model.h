// exec_model.h — the seam between the VM and an execution model (design §9).
//
// An execution model decides how VM threads may run at the same time: one at
// a time under a lock policy (gil_model.h wraps every gil::Gil), all at once
// under `none`, optimistically under `stm` (issue 13), as green coroutines on
// a hub (issue 12), or as a parallel context outside the lock (issue 14). The
// VM (vm.h) knows only this interface; it never names a lock. The registry at
// the bottom builds a model by its `--policy` name, so a new model is one new
// class and one row in exec_models.cc.
//
// Who calls what, on which thread. Every hook that takes an ExecThread& is
// called by the OS thread that attached it (Attach), never concurrently for
// the same ExecThread; hooks on different ExecThreads run concurrently. The
// VM calls, within one Vm::Call:
//
//   BeginUnit ─┬─ [check point: breaker set] OnCheckPoint ─┬─ EndUnit
//              ├─ [every TickInterval() instructions] OnTick│
//              ├─ [blocking native] Block                   │
//              ├─ [native with an effect outside the heap]  │
//              │   OnExternalEffect                         │
//              ├─ [set_priority] SetPriority                │
//              └─ [shared-heap access, if traits().sees_heap_accesses]
//                  OnHeapAccess ───────────────────────────┘
//
// and reads EvalBreaker(t), TickInterval() and traits() once per run of the
// unit, right after BeginUnit (a re-run unit reads them again). Servers and engines call Attach, Enter/Leave (the thread starts
// or stops running VM code: a GIL's Acquire/Release) and BeginBlocking/
// EndBlocking around their own waits (recv, accept: Py_BEGIN_ALLOW_THREADS).
// A thread is *inside* the model between Enter and Leave, outside a blocking
// section; Vm::Call requires the caller to be inside and returns inside.
//
// The fast path is free: a check point is ONE relaxed load of the flag that
// EvalBreaker returned, the virtual OnCheckPoint runs only when it is set; a
// loop pays for ticks only when TickInterval() > 0; heap accesses reach the
// model only when its traits ask for them.
//
// Atomic units (STM's transactions). A unit is one Vm::Call. A hook may end
// it early by throwing UnitAborted (e.g. a conflict seen in OnHeapAccess or at
// a check point): the VM unwinds the call, calls EndUnit(t, kAborted), and
// runs the call again from the start with the same arguments. EndUnit may
// also refuse a finished unit (a failed commit) by returning kRetry. The VM
// re-runs at most VmOptions::max_unit_retries times, then throws VmError.
// A unit that threw a VmError ends with kFailed and is never re-run.
//
//   auto model = MakeExecModel("newgil", {.switch_interval_us = 5000});
//   auto me = model->Attach(gil::Role::kIo, "io");
//   model->Enter(*me);
//   Vm vm(program, *model, *me);
//   vm.Call("handle", {...});
//   model->Leave(*me);
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "gil/gil.h"

namespace gillab::interp {

// One thread's membership in a model (for green coroutines, later: one
// coroutine's). Models subclass it; the VM and the engines only pass it back.
class ExecThread {
 public:
  virtual ~ExecThread() = default;
  ExecThread(const ExecThread&) = delete;
  ExecThread& operator=(const ExecThread&) = delete;

  // The lock's record of this thread (statistics, traces), or nullptr when
  // the model has no lock. Read it as gil::ThreadState's contract says.
  virtual const gil::ThreadState* lock_state() const { return nullptr; }

 protected:
  ExecThread() = default;
};

// What a model is, as data, read once per Call or by the tools around it.
struct ExecTraits {
  // At most one thread runs VM code at a time (the GILs).
  bool exclusive = true;
  // The VM reports shared-heap accesses (OnHeapAccess). Off for the GILs and
  // `none`: their heap accesses cost what an unguarded access costs.
  bool sees_heap_accesses = false;
  // EndUnit may return kRetry and hooks may throw UnitAborted (STM).
  bool units_may_abort = false;
};

// Where in a program the VM is: for a model's reports (the STM's conflict
// report names both sides of a conflict by program:function:line). The views
// point into the running Program.
struct SourceSite {
  std::string_view program;
  std::string_view function;
  int line = 0;
};

// A timed wait of a blocking native. Every kind is a wait that uses no CPU
// and leaves the heap alone (an STM model treats it as an outside effect).
struct BlockingWait {
  enum class Kind : uint8_t {
    kSleep,    // sleep_us: time.sleep
    kBackend,  // backend_us: a simulated downstream call (a database, another service)
  };
  std::string_view native;  // the native's name, for traces and logs
  int64_t duration_us = 0;  // >= 0
  Kind kind = Kind::kSleep;
  // The caller is a coroutine (Vm::Resume, design §10) that can suspend here
  // and let whoever resumes it perform the wait; false for Vm::Call.
  bool parkable = false;
  SourceSite site{};  // the native's call site
};

struct BlockResult {
  // From the end of the wait until the thread was inside the model again
  // (a GIL: the re-acquisition, the convoy-effect figure), in ns.
  int64_t resume_wait_ns = 0;
  // The model did not wait: the coroutine suspends at this native and the
  // resumer (a green hub) performs the wait. Only when wait.parkable.
  bool parked = false;
};

// A shared-heap access the VM reports when traits().sees_heap_accesses.
// kCreate: a table the unit has just made (TNEW), reported after it exists:
// nobody else can see it until the unit stores it somewhere.
struct HeapAccess {
  enum class Kind : uint8_t { kRead, kWrite, kCreate };
  enum class Target : uint8_t { kCell, kTable };
  Kind kind = Kind::kRead;
  const void* cell = nullptr;  // the global cell or table touched: its identity, not its value
  Target target = Target::kCell;  // what `cell` points to: a Cell or a Table (heap.h)
  SourceSite site{};              // the instruction making the access
};

enum class UnitEnd : uint8_t {
  kCommitted,  // the call returned a value
  kFailed,     // the call threw a VmError (never re-run)
  kAborted,    // a hook threw UnitAborted (re-run)
};
enum class UnitVerdict : uint8_t { kDone, kRetry };

// Thrown by a hook to abort the running atomic unit (see above). Never
// escapes Vm::Call except as the VmError that reports too many retries.
struct UnitAborted : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Thrown by a hook (OnHeapAccess) or by a parallel context's arena to refuse
// one operation (a write to a main-heap object, an allocation past the
// context's limit, design §12): the VM turns it into a VmError naming the
// program, line, instruction and object, and the unit fails (never re-run).
struct AccessRefused : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class ExecModel {
 public:
  virtual ~ExecModel() = default;
  ExecModel(const ExecModel&) = delete;
  ExecModel& operator=(const ExecModel&) = delete;

  // The registry name (`--policy`).
  virtual std::string_view name() const = 0;
  virtual const ExecTraits& traits() const = 0;
  // The lock behind the model, for observers only (stall monitor, trace,
  // lock statistics); nullptr when it has none. The VM never calls it.
  virtual gil::Gil* lock() { return nullptr; }

  // --- threads (engines, servers, tests) ---------------------------------
  // Registers the calling OS thread. The ExecThread must be used by that
  // thread only, must outlive every call that names it, and must not
  // outlive the model.
  virtual std::unique_ptr<ExecThread> Attach(gil::Role role, std::string name, int priority = 0) = 0;
  // The calling thread starts (Enter) or stops (Leave) running VM code. Enter
  // may block (a GIL: Acquire). Leave only from inside.
  virtual void Enter(ExecThread& t) = 0;
  virtual void Leave(ExecThread& t) = 0;
  // Whether t is inside (entered, not in a blocking section). Only t's own
  // thread may ask, or anyone once t's thread is done with the model.
  virtual bool Inside(const ExecThread& t) const = 0;
  // Around a wait that is not VM code (recv, accept, a join): others may run
  // meanwhile. From inside; EndBlocking returns inside (and may block).
  virtual void BeginBlocking(ExecThread& t) = 0;
  virtual void EndBlocking(ExecThread& t) = 0;

  // --- read once per run of a unit, right after BeginUnit --------------------
  // The eval breaker the VM polls at every check point with one relaxed load.
  // The flag lives as long as t; a stale read only delays OnCheckPoint to the
  // next check point, so the model must keep it set until it is served.
  virtual const std::atomic<bool>& EvalBreaker(const ExecThread& t) const = 0;
  // Instructions between OnTick calls; 0: no ticks.
  virtual int64_t TickInterval() const = 0;

  // --- the VM's hooks, on t's thread, t inside ----------------------------
  // One atomic unit (one Vm::Call) starts / ends. EndUnit's verdict is read
  // only for kCommitted; kRetry re-runs the unit.
  virtual void BeginUnit(ExecThread& t) = 0;
  virtual UnitVerdict EndUnit(ExecThread& t, UnitEnd how) = 0;
  // A check point (backward jump, call, return) found the breaker set.
  // Returns inside (a GIL: Yield). May throw UnitAborted.
  virtual void OnCheckPoint(ExecThread& t) = 0;
  // TickInterval() instructions have run since the last tick. Returns inside.
  virtual void OnTick(ExecThread& t) = 0;
  // A blocking native: perform the wait, letting others run meanwhile, and
  // return inside. The default: a coroutine that can park (wait.parkable)
  // parks ({.parked = true}, no wait: the hub that resumes it waits, design
  // §10); a thread does BeginBlocking, the wait on this OS thread,
  // EndBlocking. The same program thus blocks its OS thread under Vm::Call
  // and yields to the hub under Vm::Resume (gevent's monkey-patching).
  virtual BlockResult Block(ExecThread& t, const BlockingWait& wait);
  // A native whose effect leaves the heap (now_ns, print) is about to run: an
  // STM unit becomes inevitable here. The GILs do nothing.
  virtual void OnExternalEffect(ExecThread& t, std::string_view native) = 0;
  // The same with the native's call site; the VM calls this one. The default
  // forwards to OnExternalEffect (models that do not report sites).
  virtual void OnExternalEffectAt(ExecThread& t, std::string_view native, const SourceSite& site) {
    (void)site;
    OnExternalEffect(t, native);
  }
  // A shared-heap access, reported only when traits().sees_heap_accesses.
  // May throw UnitAborted. The GILs do nothing (and are never asked).
  virtual void OnHeapAccess(ExecThread& t, const HeapAccess& access) = 0;
  // The set_priority native: a scheduling hint; models without priorities ignore it.
  virtual void SetPriority(ExecThread& t, int priority) = 0;

  // --- statistics, for engines and tools (any thread, once t's own thread is
  // done with it, or concurrently where the model says so) ------------------
  // A thread's model figures (ModelFigureSpecs names, e.g. stm_commits); the
  // lock models have none.
  virtual std::map<std::string, double> Figures(const ExecThread& t) const {
    (void)t;
    return {};
  }
  // Run-wide figures (the STM's committed / aborted / paused time) and the
  // model's report as JSON (the STM's conflict report; null: none).
  virtual std::map<std::string, double> RunFigures() const { return {}; }
  virtual nlohmann::json ReportJson() const { return nullptr; }

 protected:
  ExecModel() = default;
};

// Options every model may read (each reads the ones it knows).
struct ExecModelOptions {
  gil::GilOptions gil;  // the lock policies' options (switch interval, check interval, ...)
  // stm (stm_model.h): instructions between the commits of a long inevitable
  // unit (served at the next check point), and aborts after which a unit
  // re-runs inevitable.
  int64_t stm_transaction_length = 100000;
  int stm_aborts_before_inevitable = 10;
};

// The model names, in `gillab list` order (today: the lock policies).
const std::vector<std::string>& ExecModelNames();
// Builds a model by name. Throws UsageError for an unknown name or invalid options.
std::unique_ptr<ExecModel> MakeExecModel(std::string_view name, const ExecModelOptions& options = {});

}  // namespace gillab::interp
