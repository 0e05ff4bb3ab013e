// settings.h — the typed settings schema (design §6): every setting an
// experiment may name, with its type, its one validation rule, its default,
// its help and the `gillab serve`/`load` flag it maps to.
//
// The same rule checks a value wherever it comes from: an experiment file's
// TOML, a `gillab run -s key=value` override, and the `serve`/`load` flags
// (CheckSetting, and SettingValidator for CLI11), so a bad value gets the same
// message everywhere ("switch_interval_us must be at least 1 (got 0)"). The
// runner builds the `serve`/`load` command lines from this table
// (SettingFlags); when a flag is passed is data too (PassWhen), e.g. lock
// settings only to an engine that has a lock (engine_kinds.h).
//
// The schema lives in servers/ (not experiments/) because `serve` and `load`
// check their flags with it and servers/ must not depend on experiments/.
// It links only gil/ and the kind tables, so the experiment loader's fuzzer
// needs no server code.
//
// A new setting: one row in SettingSpecs() (settings.cc); a new flag on the
// command that consumes it (`->check(SettingValidator("name"))`) when it has one.
//
//   const SettingSpec& spec = *FindSetting("switch_interval_us");
//   std::string canonical = CheckSetting(spec, "5000");   // throws UsageError
//   std::vector<std::string> flags = SettingFlags(SettingTarget::kServe, settings, trace_path);
#pragma once

#include <limits>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <CLI/Error.hpp>  // Validators.hpp needs it first
#include <CLI/Validators.hpp>

namespace gillab::servers {

enum class SettingType { kInt, kDouble, kBool, kString, kPriorities };
// Who consumes a setting: `gillab serve`, `gillab load`, or the runner itself.
enum class SettingTarget { kServe, kLoad, kRunner };

// When the runner passes a setting's flag (SettingFlags). Conditions on other
// settings read the engine table, never an engine's name.
enum class PassWhen {
  kAlways,
  kNonEmpty,               // the value is not ""
  kEngineHasLock,          // the engine has a lock (EngineKind::has_lock)
  kEngineHasLockNonEmpty,  // both of the above
  kEngineChecksInterval,   // EngineKind::check_interval
  kTraceRequested,         // value true, engine traceable and a trace path given: --trace PATH
  kOpenLoop,               // rate > 0
  kClosedLoop,             // rate == 0
  kNoPayload,              // payload == ""
  kHttp,                   // the server speaks http: protocol = http, or an outside server_command
  kHttpPipelined,          // kHttp and pipeline > 1
  kGillabServer,           // not an outside server_command (e.g. `load --server`)
  kServerHasWorkers,       // the server kind runs a worker pool (ServerKind::worker_pool)
  kServerRunsFramework,    // the server kind runs a framework (ServerKind::runs_framework)
  kServerRunsContexts,     // the server kind runs parallel contexts (ServerKind::parallel_contexts)
  kNever,                  // a runner setting: no flag
};

using Settings = std::map<std::string, std::string>;  // name -> canonical text

struct SettingSpec;
// A string setting's rule: returns the canonical text or throws UsageError.
// `base_dir` resolves relative file names (an experiment file's folder).
using StringRule = std::string (*)(const SettingSpec& spec, const std::string& text, const std::string& base_dir);
// The value a flag carries when it is not the setting's text (e.g. expect "" -> echo|any).
using ArgValue = std::string (*)(const Settings& settings);

struct SettingSpec {
  std::string_view name{};
  SettingType type = SettingType::kString;
  SettingTarget target = SettingTarget::kServe;
  std::string_view default_value{};  // canonical text
  std::string_view help{};
  double min_value = 0;                                       // numeric settings
  double max_value = std::numeric_limits<double>::infinity();  // numeric settings
  StringRule rule = nullptr;  // string settings: nullptr accepts any text
  std::string_view flag{};    // "--switch-interval-us"; empty: none
  PassWhen pass = PassWhen::kAlways;
  bool also_load = false;     // a serve setting that `gillab load` needs too (--server)
  ArgValue arg_value = nullptr;
};

// Every setting, in the order runs.csv lists them.
const std::vector<SettingSpec>& SettingSpecs();
const SettingSpec* FindSetting(std::string_view name);
// Every setting at its default.
Settings DefaultSettings();

// The one rule of a setting: the canonical text of a valid value, or
// UsageError("NAME must be ... (got 'TEXT')").
std::string CheckSetting(const SettingSpec& spec, const std::string& text, const std::string& base_dir = "");
// The same rule as a CLI11 check for the flag that sets `name`.
CLI::Validator SettingValidator(std::string_view name);

// The flags of `gillab serve` (kServe) or `gillab load` (kLoad) for these
// settings, in table order, as their rows' PassWhen say. `trace_path` is the
// value of --trace (serve) when the trace setting is on.
std::vector<std::string> SettingFlags(SettingTarget target, const Settings& settings,
                                      const std::string& trace_path = "");

// The values of the `client` setting: the load generators of
// experiments/clients.h, by name (clients_test checks that both lists agree).
const std::vector<std::string>& LoadClientSettingNames();

// "0-1,3" -> {0, 1, 3}; "" -> {}. Throws UsageError.
std::vector<int> ParseCpuList(std::string_view text);

}  // namespace gillab::servers
