// cpython_engine.h — handler and CPU threads in embedded CPython 3.11 (Debian's
// libpython3.11), under CPython's real GIL.
//
// The interpreter is initialized once per process, by the first CpythonEngine
// (Py_InitializeEx(0): no signal handlers, the servers own SIGINT/SIGTERM), and
// the initializing thread then lets go of the GIL. It is never finalized:
// Py_FinalizeEx would wait on every Python thread and its atexit work, and an
// engine's threads are all C++ threads that are joined before the engine
// dies, so there is nothing left for finalization to do; the OS reclaims the
// rest at exit.
//
// An I/O thread gets its own thread state (PyGILState_Ensure) at AttachIo and
// holds the GIL until its IoThread is destroyed, except inside
// BlockingSections: BeginBlocking is PyEval_SaveThread, EndBlocking is
// PyEval_RestoreThread, exactly what Py_BEGIN/END_ALLOW_THREADS do around
// recv() in CPython's socket module. The wait inside each PyEval_RestoreThread
// is timed: it is the one GIL figure CPython lets us measure. Figures CPython
// does not expose (hold time, drops, hand-offs) are reported as null.
//
// CPU threads are C++ std::threads, each with its own Python thread state,
// running cpu_spin.main(stop) in pure Python. Not threading.Thread: a C++
// thread knows its kernel tid before it runs Python, so the OS priority can be
// applied and recorded per thread like the other engines, and it is joined in
// C++ with no help from the interpreter.
//
// Handlers are .py files defining handle(request: bytes, work_units: int) ->
// bytes: `echo` and `primes` from the python/ directory beside this file
// (GILLAB_PYTHON_DIR overrides it), or a path to the user's FILE.py.
//
//   CpythonEngine engine({.engine = "cpython", .cpu_threads = 1});
//   engine.StartCpuThreads();
//   auto io = engine.AttachIo("io");                 // holds the GIL
//   { BlockingSection b(*io); recv(...); }           // released, as in socketmodule.c
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "servers/cpu_thread_group.h"
#include "servers/engine.h"
#include "servers/engine_stats.h"

namespace gillab::servers {

// Where echo.py, primes.py and cpu_spin.py live: $GILLAB_PYTHON_DIR or the build-time default.
std::string PythonDir();

class CpythonEngine final : public Engine {
 public:
  // Throws UsageError for --policy other than newgil, an unknown handler name,
  // an unreadable file, a syntax error or a module without handle().
  explicit CpythonEngine(EngineOptions options);
  ~CpythonEngine() override;

  std::string_view name() const override { return "cpython"; }
  std::unique_ptr<IoThread> AttachIo(std::string thread_name) override;
  void StartCpuThreads() override;
  // Sets every CPU thread's stop flag and joins them, letting go of the GIL
  // while joining if the calling thread holds it.
  void StopCpuThreads() override;
  nlohmann::json Stats() const override;

 private:
  class Io;
  struct IoEntry;
  struct PyState;  // the engine's Python objects; touched only with the GIL held

  EngineOptions options_;
  std::unique_ptr<PyState> py_;
  mutable std::mutex mu_;
  std::vector<std::shared_ptr<IoEntry>> io_threads_;  // every I/O thread ever attached
  std::vector<ThreadRecord> cpu_records_;             // one per CPU thread, written as it ends
  CpuThreadGroup cpu_;
};

}  // namespace gillab::servers
