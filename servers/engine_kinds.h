// engine_kinds.h — the table of engines (design §1): what every command knows
// about an engine, as data.
//
// One row per engine: name, summary, and the traits the commands test instead
// of comparing names — whether it has a lock at all (the native engine has
// none, so lock settings are neither validated against it nor passed to it),
// whether --check-interval tunes it, whether gillab can trace its lock, which
// gil policies it accepts. `gillab list`, `serve` (flag check), MakeEngine,
// the experiment loader and the runner's command lines read it. The factories
// are a table of their own in engine.cc, so that code which only checks names
// (the experiment loader and its fuzzer) links without the engines.
//
// A new engine: its own files (class + constructor), one row here, one row in
// engine.cc's factory table, its source in servers/CMakeLists.txt.
//
//   const EngineKind& e = RequireEngineKind("cpython");
//   if (!e.AcceptsPolicy("ticket")) ...
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace gillab::servers {

struct EngineKind {
  std::string_view name{};
  std::string_view summary{};
  bool has_lock = true;         // false: policy, switch interval, lock priorities do not apply
  bool check_interval = false;  // --check-interval applies (the toy VM's mutex ticks)
  bool traceable = false;       // gillab records its lock timeline (--trace)
  bool toy_vm = false;          // runs toy programs under its lock (--http-parser vm)
  std::string_view no_trace_reason{};      // why --trace is refused, when !traceable
  std::vector<std::string_view> policies{};  // accepted gil policies; empty: every one
  std::string_view policy_note{};          // why only those, when restricted

  bool AcceptsPolicy(std::string_view policy) const;
};

const std::vector<EngineKind>& EngineKindTable();
const EngineKind* FindEngineKind(std::string_view name);
// Throws UsageError "unknown engine 'X' (expected one of: native, toy, cpython)".
const EngineKind& RequireEngineKind(std::string_view name);
// The names, in table order.
const std::vector<std::string>& EngineNames();

}  // namespace gillab::servers
