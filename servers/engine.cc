// engine.cc — MakeEngine: the engine named by options.engine.
#include "servers/engine.h"

#include <fmt/format.h>

#include "gil/error.h"
#include "servers/cpython_engine.h"
#include "servers/native_engine.h"
#include "servers/toy_engine.h"

namespace gillab::servers {

std::unique_ptr<Engine> MakeEngine(const EngineOptions& options) {
  if (options.cpu_threads < 0) {
    throw UsageError(fmt::format("--cpu-threads must be >= 0, got {}", options.cpu_threads));
  }
  if (options.work_units < 0) {
    throw UsageError(fmt::format("--work-units must be >= 0, got {}", options.work_units));
  }
  if (options.trace && options.engine == "native") {
    throw UsageError("--trace: the native engine takes no lock, so there is no lock timeline to record");
  }
  if (options.trace && options.engine == "cpython") {
    throw UsageError("--trace: the cpython engine runs under CPython's own GIL, which gillab cannot trace; use --engine toy");
  }
  if (options.engine == "native") return std::make_unique<NativeEngine>(options);
  if (options.engine == "toy") return std::make_unique<ToyEngine>(options);
  if (options.engine == "cpython") return std::make_unique<CpythonEngine>(options);
  throw UsageError(fmt::format("unknown engine '{}' (expected native, toy or cpython)", options.engine));
}

void Engine::WriteTrace(const std::string&, const nlohmann::json&) const {
  throw UsageError(fmt::format("the {} engine was not traced (no lock timeline to write)", name()));
}

}  // namespace gillab::servers
