// engine_kinds.cc — the engine table (engine_kinds.h). Data only: no engine
// code is linked from here (see the header).
#include "servers/engine_kinds.h"

#include <algorithm>

#include <fmt/core.h>
#include <fmt/ranges.h>

#include "gil/error.h"

namespace gillab::servers {

bool EngineKind::AcceptsPolicy(std::string_view policy) const {
  return policies.empty() || std::find(policies.begin(), policies.end(), policy) != policies.end();
}

const std::vector<EngineKind>& EngineKindTable() {
  static const std::vector<EngineKind> engines = {
      {.name = "native",
       .summary = "handler in C++, no lock: the \"C + 0mq\" control",
       .has_lock = false,
       .no_trace_reason = "the native engine takes no lock, so there is no lock timeline to record"},
      {.name = "toy",
       .summary = "handler and CPU threads on the toy VM under the chosen lock policy",
       .check_interval = true,
       .traceable = true,
       .toy_vm = true},
      {.name = "cpython",
       .summary = "handler and CPU threads in embedded CPython 3.11 under its real GIL",
       .no_trace_reason = "the cpython engine runs under CPython's own GIL, which gillab cannot trace; use --engine toy",
       .policies = {"newgil"},
       .policy_note = "engine cpython runs under CPython's own GIL"},
  };
  return engines;
}

const EngineKind* FindEngineKind(std::string_view name) {
  for (const EngineKind& engine : EngineKindTable())
    if (engine.name == name) return &engine;
  return nullptr;
}

const std::vector<std::string>& EngineNames() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const EngineKind& engine : EngineKindTable()) out.emplace_back(engine.name);
    return out;
  }();
  return names;
}

const EngineKind& RequireEngineKind(std::string_view name) {
  if (const EngineKind* engine = FindEngineKind(name)) return *engine;
  throw UsageError(fmt::format("unknown engine '{}' (expected one of: {})", name, fmt::join(EngineNames(), ", ")));
}

}  // namespace gillab::servers
