// cpython_engine.cc — see cpython_engine.h.
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "servers/cpython_engine.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <utility>

#include <fmt/format.h>

#include "gil/error.h"

#ifndef GILLAB_PYTHON_DIR
#define GILLAB_PYTHON_DIR "servers/python"
#endif
#ifndef GILLAB_PYTHON_HOME
#define GILLAB_PYTHON_HOME "/usr"
#endif

namespace gillab::servers {
namespace {

// Owns one reference; released only with the GIL held (every PyRef in this
// file lives inside a GIL-holding scope or in PyState, cleared under the GIL).
class PyRef {
 public:
  PyRef() = default;
  explicit PyRef(PyObject* o) : o_(o) {}  // steals a new reference
  PyRef(const PyRef&) = delete;
  PyRef& operator=(const PyRef&) = delete;
  PyRef(PyRef&& other) noexcept : o_(std::exchange(other.o_, nullptr)) {}
  PyRef& operator=(PyRef&& other) noexcept {
    if (this != &other) {
      Py_XDECREF(o_);
      o_ = std::exchange(other.o_, nullptr);
    }
    return *this;
  }
  ~PyRef() { Py_XDECREF(o_); }
  PyObject* get() const { return o_; }
  explicit operator bool() const { return o_ != nullptr; }

 private:
  PyObject* o_ = nullptr;
};

// Holds the GIL for a scope, from any thread (nested use is fine).
class GilScope {
 public:
  GilScope() : state_(PyGILState_Ensure()) {}
  ~GilScope() { PyGILState_Release(state_); }
  GilScope(const GilScope&) = delete;
  GilScope& operator=(const GilScope&) = delete;

 private:
  PyGILState_STATE state_;
};

void EnsurePythonInitialized() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (Py_IsInitialized()) return;  // embedded by someone else: leave their GIL alone
    PyConfig config;
    PyConfig_InitPythonConfig(&config);
    config.install_signal_handlers = 0;  // SIGINT/SIGTERM belong to the servers
    config.parse_argv = 0;
    // Debian's stdlib, whatever python3 is first on PATH (pyenv's is): the
    // interpreter otherwise derives its prefix from a `python3` found on PATH.
    PyStatus status = PyConfig_SetBytesString(&config, &config.home, GILLAB_PYTHON_HOME);
    if (!PyStatus_Exception(status)) status = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    if (PyStatus_Exception(status)) {
      throw std::runtime_error(fmt::format("cannot initialize embedded Python: {}",
                                           status.err_msg ? status.err_msg : "unknown error"));
    }
    PyEval_SaveThread();  // the initializing thread lets go; every user takes the GIL explicitly
  });
}

// The pending Python exception as "Type: message", and its traceback written
// to stderr as one block. Clears the exception. Never calls PyErr_Print,
// which would exit the process on SystemExit.
std::string ReportPythonError(std::string_view context) {
  PyObject *type = nullptr, *value = nullptr, *tb = nullptr;
  PyErr_Fetch(&type, &value, &tb);
  PyErr_NormalizeException(&type, &value, &tb);
  if (tb && value) PyException_SetTraceback(value, tb);
  PyRef t(type), v(value), b(tb);
  std::string summary = "unknown error";
  if (type) {
    summary = reinterpret_cast<PyTypeObject*>(type)->tp_name;
    if (value) {
      PyRef text(PyObject_Str(value));
      const char* utf8 = text ? PyUnicode_AsUTF8(text.get()) : nullptr;
      if (utf8 && *utf8) summary += fmt::format(": {}", utf8);
    }
  }
  std::string block;
  PyRef traceback(PyImport_ImportModule("traceback"));
  if (traceback && type) {
    PyRef lines(PyObject_CallMethod(traceback.get(), "format_exception", "OOO", type, value ? value : Py_None,
                                    tb ? tb : Py_None));
    if (lines) {
      PyRef empty(PyUnicode_FromString(""));
      PyRef joined(PyUnicode_Join(empty.get(), lines.get()));
      const char* utf8 = joined ? PyUnicode_AsUTF8(joined.get()) : nullptr;
      if (utf8) block = utf8;
    }
  }
  PyErr_Clear();  // whatever formatting itself raised
  if (block.empty()) block = summary + "\n";
  std::string out = fmt::format("gillab: {}:\n{}", context, block);
  // One write, so that concurrent threads' tracebacks do not interleave.
  ssize_t ignored = ::write(STDERR_FILENO, out.data(), out.size());
  (void)ignored;
  return summary;
}

// Compiles and runs FILE as a fresh module named `module_name`. GIL held.
PyRef LoadModule(const std::string& path, const std::string& module_name) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsageError(fmt::format("cannot read Python handler '{}'", path));
  std::stringstream source;
  source << in.rdbuf();
  PyRef code(Py_CompileString(source.str().c_str(), path.c_str(), Py_file_input));
  if (!code) {
    std::string why = ReportPythonError(fmt::format("compiling {}", path));
    throw UsageError(fmt::format("{}: {}", path, why));
  }
  PyRef module(PyImport_ExecCodeModuleEx(module_name.c_str(), code.get(), path.c_str()));
  if (!module) {
    std::string why = ReportPythonError(fmt::format("running {}", path));
    throw UsageError(fmt::format("{}: {}", path, why));
  }
  return module;
}

PyRef Attribute(const PyRef& module, const char* name, const std::string& path) {
  PyRef f(PyObject_GetAttrString(module.get(), name));
  if (!f || !PyCallable_Check(f.get())) {
    PyErr_Clear();
    throw UsageError(fmt::format("{} defines no function {}()", path, name));
  }
  return f;
}

// The handler file for --handler NAME: shipped names map to PythonDir().
std::string ResolveHandler(const std::string& handler) {
  if (handler == "echo" || handler == "primes") return fmt::format("{}/{}.py", PythonDir(), handler);
  if (handler.size() > 3 && handler.compare(handler.size() - 3, 3, ".py") == 0) return handler;
  throw UsageError(fmt::format(
      "the cpython engine's handlers are echo, primes or a FILE.py; --handler {} is not available", handler));
}

}  // namespace

std::string PythonDir() {
  if (const char* env = std::getenv("GILLAB_PYTHON_DIR"); env && *env) return env;
  return GILLAB_PYTHON_DIR;
}

struct CpythonEngine::PyState {
  std::vector<PyRef> handles;  // by handler id: each handler module's handle(request, work_units)
  PyRef spin_main;   // cpu_spin.main(stop)
  PyRef stop_class;  // cpu_spin.StopFlag
  // Stop flags of the running CPU threads (borrowed: each thread owns its flag
  // and removes it, holding the GIL, before dropping it). Guarded by the GIL.
  std::vector<PyObject*> stop_flags;
  bool stopping = false;  // guarded by the GIL
};

struct CpythonEngine::IoEntry {
  ThreadRecord record;
  std::atomic<uint64_t> blocking_sections{0};
  // PyEval_RestoreThread waits (and the first acquisition). Written by the
  // I/O thread, read by Stats() once it has detached.
  gil::Histogram wait_hist_ns;
};

class CpythonEngine::Io final : public IoThread {
 public:
  Io(CpythonEngine& engine, std::shared_ptr<IoEntry> entry) : engine_(engine), entry_(std::move(entry)) {
    const int64_t asked_ns = gil::NowNs();
    gil_state_ = PyGILState_Ensure();
    entry_->wait_hist_ns.Record(gil::NowNs() - asked_ns);
  }
  ~Io() override {
    if (saved_ != nullptr) PyEval_RestoreThread(saved_);  // destroyed inside a section: take it back first
    PyGILState_Release(gil_state_);
  }

  std::string Handle(std::string_view request) override { return HandleWith(0, request); }
  std::string HandleWith(size_t id, std::string_view request) override {
    if (id >= engine_.py_->handles.size()) throw std::runtime_error(fmt::format("the cpython engine has no handler #{}", id));
    PyRef bytes(PyBytes_FromStringAndSize(request.data(), static_cast<Py_ssize_t>(request.size())));
    PyRef units(PyLong_FromLongLong(engine_.options_.work_units));
    PyRef reply(bytes && units
                    ? PyObject_CallFunctionObjArgs(engine_.py_->handles[id].get(), bytes.get(), units.get(), nullptr)
                    : nullptr);
    if (!reply) throw std::runtime_error("handler raised " + ReportPythonError("handler raised"));
    PyObject* r = reply.get();
    if (PyBytes_Check(r)) return std::string(PyBytes_AS_STRING(r), static_cast<size_t>(PyBytes_GET_SIZE(r)));
    if (PyByteArray_Check(r)) {
      return std::string(PyByteArray_AS_STRING(r), static_cast<size_t>(PyByteArray_GET_SIZE(r)));
    }
    if (PyLong_Check(r) || PyUnicode_Check(r)) {
      PyRef text(PyObject_Str(r));
      Py_ssize_t size = 0;
      const char* utf8 = text ? PyUnicode_AsUTF8AndSize(text.get(), &size) : nullptr;
      if (!utf8) throw std::runtime_error("handler raised " + ReportPythonError("converting the reply"));
      return std::string(utf8, static_cast<size_t>(size));
    }
    throw std::runtime_error(
        fmt::format("handler returned {}, expected bytes", Py_TYPE(r)->tp_name));
  }
  void BeginBlocking() override {
    entry_->blocking_sections.fetch_add(1, std::memory_order_relaxed);
    saved_ = PyEval_SaveThread();
  }
  void EndBlocking() override {
    const int64_t asked_ns = gil::NowNs();
    PyEval_RestoreThread(saved_);
    entry_->wait_hist_ns.Record(gil::NowNs() - asked_ns);
    saved_ = nullptr;
  }
  uint64_t blocking_sections() const override {
    return entry_->blocking_sections.load(std::memory_order_relaxed);
  }

 private:
  CpythonEngine& engine_;
  std::shared_ptr<IoEntry> entry_;
  PyGILState_STATE gil_state_;
  PyThreadState* saved_ = nullptr;
};

CpythonEngine::CpythonEngine(EngineOptions options) : options_(std::move(options)) {
  if (options_.policy != "newgil") {
    throw UsageError(fmt::format("the cpython engine has one GIL (CPython's newgil); --policy {} is not available",
                                 options_.policy));
  }
  if (options_.gil.switch_interval_us <= 0) {
    throw UsageError(fmt::format("--switch-interval-us must be > 0, got {}", options_.gil.switch_interval_us));
  }
  std::vector<std::string> handler_paths = {ResolveHandler(options_.handler)};
  for (const auto& extra : options_.extra_handlers) handler_paths.push_back(ResolveHandler(extra));
  const std::string spin_path = fmt::format("{}/cpu_spin.py", PythonDir());
  EnsurePythonInitialized();

  static std::atomic<int> engines{0};
  const int id = engines.fetch_add(1);
  GilScope gil;
  py_ = std::make_unique<PyState>();
  try {
    for (size_t i = 0; i < handler_paths.size(); ++i) {
      PyRef handler = LoadModule(handler_paths[i], fmt::format("gillab_handler_{}_{}", id, i));
      py_->handles.push_back(Attribute(handler, "handle", handler_paths[i]));
    }
    PyRef spin = LoadModule(spin_path, fmt::format("gillab_cpu_spin_{}", id));
    py_->spin_main = Attribute(spin, "main", spin_path);
    py_->stop_class = Attribute(spin, "StopFlag", spin_path);
    // Process-wide, like the interpreter: the last engine created sets it.
    PyRef sys(PyImport_ImportModule("sys"));
    PyRef ok(sys ? PyObject_CallMethod(sys.get(), "setswitchinterval", "d",
                                       static_cast<double>(options_.gil.switch_interval_us) / 1e6)
                 : nullptr);
    if (!ok) throw UsageError("sys.setswitchinterval failed: " + ReportPythonError("setswitchinterval"));
  } catch (...) {
    py_.reset();  // drop the references while the GIL is held
    throw;
  }
}

CpythonEngine::~CpythonEngine() {
  StopCpuThreads();
  GilScope gil;
  py_.reset();
}

std::unique_ptr<IoThread> CpythonEngine::AttachIo(std::string thread_name) {
  auto entry = std::make_shared<IoEntry>();
  entry->record = StartThreadRecord(gil::Role::kIo, std::move(thread_name), options_.os_priority);
  {
    std::lock_guard lock(mu_);
    io_threads_.push_back(entry);
  }
  return std::make_unique<Io>(*this, std::move(entry));
}

void CpythonEngine::StartCpuThreads() {
  if (options_.cpu_threads <= 0 || cpu_.running()) return;
  {
    GilScope gil;
    py_->stopping = false;
  }
  {
    std::lock_guard lock(mu_);
    cpu_records_.clear();
  }
  cpu_.Start(options_.cpu_threads, [this](int index, CpuThreadGroup&) {
    ThreadRecord record = StartThreadRecord(gil::Role::kCpu, fmt::format("cpu-{}", index), options_.os_priority);
    const int64_t start_ns = gil::NowNs();
    uint64_t iterations = 0;
    {
      GilScope gil;
      PyRef flag(PyObject_CallNoArgs(py_->stop_class.get()));
      if (!flag) {
        ReportPythonError(fmt::format("cpu thread {}: creating its stop flag", index));
      } else {
        if (py_->stopping) PyObject_SetAttrString(flag.get(), "set", Py_True);
        py_->stop_flags.push_back(flag.get());
        PyRef count(PyObject_CallOneArg(py_->spin_main.get(), flag.get()));
        if (count) {
          iterations = PyLong_AsUnsignedLongLong(count.get());
          if (PyErr_Occurred()) ReportPythonError(fmt::format("cpu thread {}: its count", index));
        } else {
          ReportPythonError(fmt::format("cpu thread {}", index));
        }
        auto& flags = py_->stop_flags;
        flags.erase(std::remove(flags.begin(), flags.end(), flag.get()), flags.end());
      }
    }
    record.elapsed_ns = gil::NowNs() - start_ns;
    record.iterations = iterations;
    std::lock_guard lock(mu_);
    cpu_records_.push_back(std::move(record));
  });
}

void CpythonEngine::StopCpuThreads() {
  if (!cpu_.running()) return;
  GilScope gil;  // nested if the caller is an I/O thread holding the GIL
  py_->stopping = true;
  for (PyObject* flag : py_->stop_flags) {
    if (PyObject_SetAttrString(flag, "set", Py_True) != 0) ReportPythonError("setting a cpu thread's stop flag");
  }
  // The CPU threads need the GIL to see their flag and finish.
  PyThreadState* saved = PyEval_SaveThread();
  cpu_.Stop();
  PyEval_RestoreThread(saved);
}

nlohmann::json CpythonEngine::Stats() const {
  std::vector<ThreadRecord> threads;
  {
    std::lock_guard lock(mu_);
    for (const auto& entry : io_threads_) {
      ThreadRecord r = entry->record;
      r.lock = FiguresFromWaits(entry->wait_hist_ns);
      r.blocking_sections = entry->blocking_sections.load(std::memory_order_relaxed);
      threads.push_back(std::move(r));
    }
    std::vector<ThreadRecord> cpu = cpu_records_;
    std::sort(cpu.begin(), cpu.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
    threads.insert(threads.end(), cpu.begin(), cpu.end());
  }
  nlohmann::json lock = {{"switches", nullptr}, {"handoff_p50_ns", nullptr}, {"handoff_p99_ns", nullptr}};
  return StatsJson({.engine = "cpython", .policy = "newgil", .switch_interval_us = options_.gil.switch_interval_us,
                    .cpu_threads = options_.cpu_threads},
                   threads, std::move(lock));
}

}  // namespace gillab::servers
