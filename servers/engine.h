// engine.h — what a server calls for everything that touches the interpreter.
//
// Three implementations share this interface (design §1): `native` (handler in
// C++, no lock), `toy` (handler and CPU threads on the toy VM under a gil
// policy) and `cpython` (embedded CPython 3.11 under its real GIL). Servers are
// written once against it and hold the lock exactly as a Python server holds
// the GIL: an I/O thread holds it except inside each blocking call.
//
//   auto engine = MakeEngine(options);              // throws UsageError on bad options
//   engine->StartCpuThreads();
//   auto io = engine->AttachIo("io");               // in the I/O thread; takes the lock
//   { BlockingSection b(*io); n = recv(...); }      // lock released around the call
//   std::string reply = io->Handle(request);         // lock held
//   io.reset();                                      // releases the lock, detaches
//   engine->StopCpuThreads();
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <stdexcept>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "gil/gil.h"
#include "gil/thread_priority.h"
#include "gil/trace.h"

namespace gillab::interp {
class ExecModel;
}

namespace gillab::servers {

struct EngineOptions {
  std::string engine = "toy";          // a row of EngineKindTable(): native | toy | cpython
  std::string policy = "newgil";       // gil policy (toy); cpython accepts only newgil
  gil::GilOptions gil;                 // switch interval, check interval, forced switching
  int cpu_threads = 0;
  std::string handler = "echo";        // echo | primes | FILE.gasm (toy) / FILE.py (cpython)
  // More handlers, loaded beside `handler` and called by IoThread::HandleWith
  // with id i+1 (the http routes of design §11: one engine serves several
  // targets, each by its own program). Same names as `handler`.
  std::vector<std::string> extra_handlers;
  int64_t work_units = 0;              // loop iterations the echo handler does per request
  // Toy engine: run every handler call behind the framework prelude
  // (interp/framework.h) stamping with this clock (now_ns | transaction_time |
  // none); "" runs the handler alone. Set by the servers that run a framework
  // (the `transactional` kind, design §12).
  std::string framework_clock;
  std::map<gil::Role, int> lock_priority;              // e.g. io=1, cpu=0
  std::map<gil::Role, gil::OsPriority> os_priority;    // e.g. cpu=nice:10
  // Record a lock timeline of every thread (gil/trace.h), written by
  // Engine::WriteTrace. Only the toy engine has a lock gillab can trace:
  // MakeEngine refuses it for native (no lock) and cpython (CPython's own GIL).
  bool trace = false;
  gil::TraceOptions trace_options;
  // Toy engine: report on stderr a thread that holds the lock this long while
  // another asks for it (gil/stall_monitor.h); 0 turns the monitor off.
  int64_t stall_threshold_ms = 1000;
  // Simulation hooks (sim/sim_serve.h, design §13), empty in a real run. Toy
  // engine: wrap_model wraps the execution model it makes (the simulator's
  // SimModel charges virtual time around the real policy); spawn_thread
  // starts its CPU threads (Simulator::Spawn) instead of std::thread.
  std::function<std::unique_ptr<interp::ExecModel>(std::unique_ptr<interp::ExecModel>)> wrap_model;
  std::function<void(std::string name, std::function<void()> body)> spawn_thread;
};

// One handler call that may suspend (design §10: a green server's
// coroutine). The toy engine runs it as a VM coroutine that parks in
// blocking natives (sleep_us, backend_us) and hands the wait to its caller;
// other engines run the handler to its end at the first Resume. Made and
// resumed by its IoThread's thread, lock held; destroy it there too.
class HandlerCall {
 public:
  enum class Step { kDone, kParked };
  virtual ~HandlerCall() = default;
  // Lock held. Runs until the handler returns (kDone: TakeReply()) or parks
  // (kParked: wait the wait_us() µs, lock released, then Resume again).
  // Throws std::runtime_error when the handler fails (the call is then over).
  virtual Step Resume() = 0;
  virtual int64_t wait_us() const = 0;
  virtual std::string TakeReply() = 0;
  // Where it is, for the hub's "blocked by" line: "PROGRAM:LINE (function)".
  virtual std::string where() const { return "handler"; }
  // Memory it holds while parked (the coroutine's stack and frames), in bytes.
  virtual size_t bytes() const { return 0; }
};

// One I/O thread's handle: created in that thread, holding the lock from
// creation to destruction except inside blocking sections.
class IoThread {
 public:
  virtual ~IoThread() = default;
  // Lock held on entry and on return. Throws std::runtime_error when the
  // handler fails; the server answers that client with an error and goes on.
  virtual std::string Handle(std::string_view request) = 0;
  // Handler `id`: 0 is EngineOptions::handler (same as Handle), i >= 1 is
  // EngineOptions::extra_handlers[i-1]. Lock held, as Handle. An engine that
  // loads no extra handlers keeps this default, which knows only id 0.
  virtual std::string HandleWith(size_t id, std::string_view request) {
    if (id == 0) return Handle(request);
    throw std::runtime_error("this engine has no handler #" + std::to_string(id) + " (it loads only its --handler)");
  }
  // Handler `id` on `request` as a call that may suspend (HandlerCall). The
  // default runs HandleWith at the first Resume and never parks; the toy
  // engine returns a VM coroutine.
  virtual std::unique_ptr<HandlerCall> StartCall(size_t id, std::string_view request);
  virtual void BeginBlocking() = 0;  // release the lock before a blocking call
  virtual void EndBlocking() = 0;    // re-acquire it after the call
  virtual uint64_t blocking_sections() const = 0;  // lock releases so far (for tests)
};

// RAII: the lock is released for the lifetime of the section.
class BlockingSection {
 public:
  explicit BlockingSection(IoThread& io) : io_(io) { io_.BeginBlocking(); }
  ~BlockingSection() { io_.EndBlocking(); }
  BlockingSection(const BlockingSection&) = delete;
  BlockingSection& operator=(const BlockingSection&) = delete;

 private:
  IoThread& io_;
};

// A worker of the parallel server (design §12): runs handlers in parallel
// contexts outside the engine's lock, on the thread that attached it
// (Engine::AttachContextWorker). Handle/HandleWith as IoThread's, except that
// no lock is held or taken; each call's context (its arena) is freed whole
// before the call returns, once the reply is copied out. Blocking sections
// are no-ops: a context holds nothing to release.
class ContextWorker : public IoThread {
 public:
  // Thread-safe (the server's stall report): a handler call running on this
  // worker for longer than threshold_ms fails at its next check point, with
  // an error naming the stall. Returns how long it had run (ms), 0: nothing stopped.
  virtual int64_t StopIfRunningLongerThan(int64_t threshold_ms) = 0;
};

class Engine {
 public:
  virtual ~Engine() = default;
  virtual std::string_view name() const = 0;
  // Call from the thread that will do I/O; returns holding the lock.
  virtual std::unique_ptr<IoThread> AttachIo(std::string thread_name) = 0;
  // The parallel server's workers: call from the worker thread. The caller
  // (the server) must guarantee that no thread changes the engine's heap
  // while any worker runs a handler. context_max_bytes: each context's
  // limit (0: none). The default refuses (UsageError): only the toy engine
  // has parallel contexts.
  virtual std::unique_ptr<ContextWorker> AttachContextWorker(std::string thread_name, int64_t context_max_bytes);
  virtual void StartCpuThreads() = 0;
  virtual void StopCpuThreads() = 0;   // joins them; idempotent
  // Per-thread lock stats, OS priorities requested/applied, CPU iterations/s:
  // {"engine","policy","threads":[{"role","name","acquisitions","wait_ns",
  //  "hold_ns","forced_drops",...}], "cpu_iterations_per_s", ...}. Call after StopCpuThreads.
  virtual nlohmann::json Stats() const = 0;
  // With EngineOptions::trace: writes the timeline as Chrome trace-event JSON
  // (`run` goes into its metadata). Call after StopCpuThreads, once every
  // IoThread is gone. Throws UsageError when the engine was not traced.
  virtual void WriteTrace(const std::string& path, const nlohmann::json& run) const;
};

// The engine named by options.engine (a row of EngineKindTable(),
// engine_kinds.h); throws UsageError for bad options.
std::unique_ptr<Engine> MakeEngine(const EngineOptions& options);
// Whether engine.cc has a factory for this engine (a test checks every table row has one).
bool HasEngineFactory(std::string_view engine);

}  // namespace gillab::servers
