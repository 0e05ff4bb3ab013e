// engine.cc — MakeEngine: the factory of each engine. The engines' data
// (summary, traits) is EngineKindTable() (engine_kinds.cc); this table adds
// the code, one row per engine.
#include "servers/engine.h"

#include <fmt/format.h>

#include "gil/error.h"
#include "servers/cpython_engine.h"
#include "servers/engine_kinds.h"
#include "servers/native_engine.h"
#include "servers/toy_engine.h"

namespace gillab::servers {
namespace {

template <typename E>
std::unique_ptr<Engine> Make(const EngineOptions& options) {
  return std::make_unique<E>(options);
}

struct EngineFactory {
  std::string_view engine;
  std::unique_ptr<Engine> (*make)(const EngineOptions&);
};

constexpr EngineFactory kFactories[] = {
    {"native", Make<NativeEngine>}, {"toy", Make<ToyEngine>}, {"cpython", Make<CpythonEngine>}};

}  // namespace

std::unique_ptr<Engine> MakeEngine(const EngineOptions& options) {
  if (options.cpu_threads < 0) {
    throw UsageError(fmt::format("--cpu-threads must be >= 0, got {}", options.cpu_threads));
  }
  if (options.work_units < 0) {
    throw UsageError(fmt::format("--work-units must be >= 0, got {}", options.work_units));
  }
  const EngineKind& kind = RequireEngineKind(options.engine);
  if (options.trace && !kind.traceable) throw UsageError(fmt::format("--trace: {}", kind.no_trace_reason));
  for (const EngineFactory& factory : kFactories)
    if (factory.engine == kind.name) return factory.make(options);
  throw std::logic_error(fmt::format("engine '{}' has no factory in engine.cc", kind.name));
}

bool HasEngineFactory(std::string_view engine) {
  for (const EngineFactory& factory : kFactories)
    if (factory.engine == engine) return true;
  return false;
}

std::unique_ptr<ContextWorker> Engine::AttachContextWorker(std::string, int64_t) {
  throw UsageError(fmt::format("the parallel server runs handlers in the toy VM's parallel contexts; the {} engine has "
                               "none (use --engine toy)",
                               name()));
}

void Engine::WriteTrace(const std::string&, const nlohmann::json&) const {
  throw UsageError(fmt::format("the {} engine was not traced (no lock timeline to write)", name()));
}

}  // namespace gillab::servers
