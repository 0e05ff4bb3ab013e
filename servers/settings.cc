// settings.cc — the settings table and its rules (settings.h).
#include "servers/settings.h"

#include "interp/exec_model.h"
#include "interp/framework.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include <fmt/core.h>
#include <fmt/ranges.h>

#include "gil/error.h"
#include "gil/gil.h"
#include "gil/thread_priority.h"
#include "interp/exec_model.h"
#include "interp/framework.h"
#include "servers/engine_kinds.h"
#include "servers/server_kinds.h"

namespace gillab::servers {
namespace {

using Type = SettingType;
using Target = SettingTarget;

std::string OneOf(const SettingSpec& spec, const std::string& text, const std::vector<std::string>& names) {
  if (std::find(names.begin(), names.end(), text) == names.end())
    throw UsageError(fmt::format("{} must be one of {} (got '{}')", spec.name, fmt::join(names, ", "), text));
  return text;
}

// String rules, one per string setting that has one.
std::string ServerRule(const SettingSpec& spec, const std::string& text, const std::string&) {
  return OneOf(spec, text, ServerKinds());
}
std::string EngineRule(const SettingSpec& spec, const std::string& text, const std::string&) {
  return OneOf(spec, text, EngineNames());
}
std::string PolicyRule(const SettingSpec& spec, const std::string& text, const std::string&) {
  return OneOf(spec, text, interp::ExecModelNames());  // the lock policies and stm
}
std::string FrameworkClockRule(const SettingSpec& spec, const std::string& text, const std::string&) {
  return OneOf(spec, text, interp::FrameworkClockNames());
}
std::string ExpectRule(const SettingSpec& spec, const std::string& text, const std::string&) {
  return text.empty() ? text : OneOf(spec, text, {"echo", "any"});
}
std::string ProtocolRule(const SettingSpec& spec, const std::string& text, const std::string&) {
  return OneOf(spec, text, StreamProtocolNames());
}
std::string HttpParserRule(const SettingSpec& spec, const std::string& text, const std::string&) {
  return OneOf(spec, text, HttpParserNames());
}
// The load generators of experiments/clients.h (a test checks both lists agree).
std::string ClientRule(const SettingSpec& spec, const std::string& text, const std::string&) {
  return OneOf(spec, text, LoadClientSettingNames());
}
std::string HttpTargetRule(const SettingSpec&, const std::string& text, const std::string&) {
  if (text.empty() || text[0] != '/' || text.find_first_of(" \t\r\n") != std::string::npos)
    throw UsageError(fmt::format("http_target must be a path starting with '/' and without spaces (got '{}')", text));
  return text;
}
std::string ServerCommandRule(const SettingSpec&, const std::string& text, const std::string&) {
  if (!text.empty() && text.find("{port}") == std::string::npos)
    throw UsageError("server_command must pass the port the runner chose: put {port} in it");
  return text;
}
// The run modes (design §13): real processes on this machine, or one
// `gillab simulate-serve` child running the point in virtual time.
std::string ModeRule(const SettingSpec& spec, const std::string& text, const std::string&) {
  const std::vector<std::string> modes = {"real", "simulate"};
  if (std::find(modes.begin(), modes.end(), text) != modes.end()) return text;
  for (const auto& mode : modes)
    if (text.size() >= 3 && (text.starts_with(mode) || mode.starts_with(text)))
      throw UsageError(fmt::format("{} must be real or simulate (got '{}'; did you mean '{}'?)", spec.name, text, mode));
  throw UsageError(fmt::format("{} must be real or simulate (got '{}')", spec.name, text));
}
std::string HubReleaseRule(const SettingSpec& spec, const std::string& text, const std::string&) {
  return text.empty() ? text : OneOf(spec, text, HubReleaseNames());
}
std::string CpuListRule(const SettingSpec&, const std::string& text, const std::string&) {
  ParseCpuList(text);
  return text;
}
std::string HandlerRule(const SettingSpec&, const std::string& text, const std::string& base_dir) {
  // The shipped handlers by name (interp/programs/); anything else is a file.
  if (text == "echo" || text == "primes" || text == "primes_list") return text;
  namespace fs = std::filesystem;
  fs::path path(text);
  if (path.is_relative() && !base_dir.empty() && fs::exists(fs::path(base_dir) / path)) path = fs::path(base_dir) / path;
  if (!fs::is_regular_file(path))
    throw UsageError(fmt::format("handler must be echo, primes, primes_list or a readable program file (no file '{}')", text));
  return fs::absolute(path).lexically_normal().string();
}

// `/PATH=PROGRAM` (serve's --mount): a handler program served at an http path;
// the program as the handler setting takes it (a shipped name or a file).
std::string MountRule(const SettingSpec& spec, const std::string& text, const std::string& base_dir) {
  if (text.empty()) return text;
  const size_t eq = text.find('=');
  if (text[0] != '/' || eq == std::string::npos || eq < 2 || eq + 1 == text.size())
    throw UsageError(fmt::format("mount must be /PATH=PROGRAM (got '{}')", text));
  return text.substr(0, eq + 1) + HandlerRule(spec, text.substr(eq + 1), base_dir);
}

bool SpeaksHttp(const Settings& s) {
  auto command = s.find("server_command");
  return (command != s.end() && !command->second.empty()) || s.at("protocol") == "http";
}
// A server that speaks http is driven with --protocol http whatever served it.
std::string HttpProtocol(const Settings&) { return "http"; }

// expect "" means: echo for the echo handler, any reply otherwise.
std::string ResolvedExpect(const Settings& s) {
  const std::string& expect = s.at("expect");
  if (!expect.empty()) return expect;
  return s.at("handler") == "echo" ? "echo" : "any";
}

std::string CanonicalPriorities(const SettingSpec& spec, const std::string& text) {
  if (text.empty()) return "";
  std::vector<std::string> parts;
  if (spec.name == "lock_priority") {
    for (const auto& [role, value] : gil::ParseLockPriorities(text))
      parts.push_back(fmt::format("{}={}", gil::RoleName(role), value));
  } else {
    for (const auto& [role, value] : gil::ParseOsPriorities(text))
      parts.push_back(fmt::format("{}={}", gil::RoleName(role), value.ToString()));
  }
  return fmt::format("{}", fmt::join(parts, ","));
}

std::string FormatLimit(double value) { return fmt::format("{}", value); }

bool Passed(const SettingSpec& spec, const Settings& s, const std::string& trace_path) {
  const std::string& value = s.at(std::string(spec.name));
  const EngineKind* engine = FindEngineKind(s.at("engine"));
  const bool has_lock = engine && engine->has_lock;
  const ServerKind* kind = FindServerKind(s.at("server"));
  switch (spec.pass) {
    case PassWhen::kAlways: return true;
    case PassWhen::kNonEmpty: return !value.empty();
    case PassWhen::kEngineHasLock: return has_lock;
    case PassWhen::kEngineHasLockNonEmpty: return has_lock && !value.empty();
    case PassWhen::kEngineChecksInterval: return engine && engine->check_interval;
    case PassWhen::kTraceRequested: return value == "true" && engine && engine->traceable && !trace_path.empty();
    case PassWhen::kOpenLoop: return std::stod(s.at("rate")) > 0;
    case PassWhen::kClosedLoop: return !(std::stod(s.at("rate")) > 0);
    case PassWhen::kNoPayload: return s.at("payload").empty();
    case PassWhen::kHttp: return SpeaksHttp(s);
    case PassWhen::kHttpPipelined: return SpeaksHttp(s) && std::stoll(s.at("pipeline")) > 1;
    case PassWhen::kGillabServer: {
      auto command = s.find("server_command");
      return command == s.end() || command->second.empty();
    }
    case PassWhen::kServerHasWorkers: return kind != nullptr && kind->worker_pool;
    case PassWhen::kServerRunsFramework: return kind != nullptr && kind->runs_framework;
    case PassWhen::kServerRunsContexts: return kind != nullptr && kind->parallel_contexts;
    case PassWhen::kNever: return false;
  }
  return false;
}

}  // namespace

const std::vector<SettingSpec>& SettingSpecs() {
  using enum PassWhen;
  constexpr double kInf = std::numeric_limits<double>::infinity();
  static const std::vector<SettingSpec> specs = {
      // name, type, target, default, help, min, max, rule, flag, pass, also_load, arg_value
      {"server", Type::kString, Target::kServe, "blocking", "server kind (gillab list)", 0, kInf, ServerRule,
       "--server", kGillabServer, true},
      {"engine", Type::kString, Target::kServe, "toy", "native | toy | cpython", 0, kInf, EngineRule, "--engine"},
      {"policy", Type::kString, Target::kServe, "newgil", "execution model: a lock policy or stm (toy engine; cpython: newgil only)", 0, kInf,
       PolicyRule, "--policy", kEngineHasLock},
      {"switch_interval_us", Type::kInt, Target::kServe, "5000", "ticket/priority/newgil switch interval", 1, kInf,
       nullptr, "--switch-interval-us", kEngineHasLock},
      {"check_interval", Type::kInt, Target::kServe, "100", "mutex: instructions between releases", 1, kInf, nullptr,
       "--check-interval", kEngineChecksInterval},
      {"cpu_threads", Type::kInt, Target::kServe, "0", "CPU-bound threads beside the I/O thread", 0, 1024, nullptr,
       "--cpu-threads"},
      {"handler", Type::kString, Target::kServe, "echo", "echo | primes | primes_list | FILE.gasm / FILE.py", 0, kInf, HandlerRule,
       "--handler"},
      {"work_units", Type::kInt, Target::kServe, "0", "loop iterations the echo handler does per request", 0, kInf,
       nullptr, "--work-units"},
      {"lock_priority", Type::kPriorities, Target::kServe, "", "lock priority per role, \"io=1,cpu=0\"", 0, kInf,
       nullptr, "--lock-priority", kEngineHasLockNonEmpty},
      {"os_priority", Type::kPriorities, Target::kServe, "", "OS priority per role, \"cpu=nice:10\"", 0, kInf, nullptr,
       "--os-priority", kNonEmpty},
      {"max_message_bytes", Type::kInt, Target::kServe, "16777216", "largest request the server accepts", 1,
       4294967295.0, nullptr, "--max-message-bytes"},
      {"trace", Type::kBool, Target::kServe, "false", "write a Perfetto trace per run under raw/", 0, kInf, nullptr,
       "--trace", kTraceRequested},
      // Stream servers over HTTP/1.1 (design §11); frame is serve's default and is not passed.
      {"protocol", Type::kString, Target::kServe, "frame", "stream servers: frame | http (design §11)", 0, kInf,
       ProtocolRule, "--protocol", kHttp, true, HttpProtocol},
      // The servers with a worker pool (design §12): transactional, parallel.
      {"workers", Type::kInt, Target::kServe, "2",
       "transactional, parallel: worker threads running the handler calls", 1, 256, nullptr, "--workers",
       kServerHasWorkers},
      // The transactional server (interp/framework.h).
      {"framework_clock", Type::kString, Target::kServe, "none",
       "transactional: the framework's request clock: now_ns (inevitable under stm) | transaction_time | none", 0,
       kInf, FrameworkClockRule, "--framework-clock", kServerRunsFramework},
      {"http_parser", Type::kString, Target::kServe, "native",
       "http: native (Beast, lock released) | vm (toy program, under the lock; toy engine)", 0, kInf, HttpParserRule,
       "--http-parser", kHttp},
      {"mount", Type::kString, Target::kServe, "",
       "http: a handler program served at a path, /PATH=PROGRAM (GET /PATH/TAIL hands it TAIL)", 0, kInf, MountRule,
       "--mount", kNonEmpty},
      // The parallel server (interp/context_arena.h).
      {"context_max_bytes", Type::kInt, Target::kServe, "0",
       "parallel: bytes one handler's context may allocate (0: no limit)", 0, kInf, nullptr, "--context-max-bytes",
       kServerRunsContexts},
      {"hub_release", Type::kString, Target::kServe, "",
       "green: the hub releases the lock around every socket call (every_call, as gevent; empty = that) or only "
       "around epoll_wait (poll)", 0, kInf, HubReleaseRule, "--hub-release", kNonEmpty},
      {"message_bytes", Type::kInt, Target::kLoad, "64", "request size", 0, kInf, nullptr, "--message-bytes",
       kNoPayload},
      {"requests", Type::kInt, Target::kLoad, "1000", "measured requests per run", 1, kInf, nullptr, "--requests"},
      {"connections", Type::kInt, Target::kLoad, "1", "client connections", 1, 10000, nullptr, "--connections"},
      {"think_us", Type::kInt, Target::kLoad, "0", "closed loop: pause between requests", 0, kInf, nullptr,
       "--think-us", kClosedLoop},
      {"rate", Type::kDouble, Target::kLoad, "0", "open loop: requests/s (0 = closed loop)", 0, kInf, nullptr,
       "--rate", kOpenLoop},
      {"payload", Type::kString, Target::kLoad, "",
       "fixed request bytes instead of random ones (e.g. \"20000\" for primes)", 0, kInf, nullptr, "--payload",
       kNonEmpty},
      {"expect", Type::kString, Target::kLoad, "", "echo | any (empty: echo for the echo handler)", 0, kInf,
       ExpectRule, "--expect", kAlways, false, ResolvedExpect},
      // HTTP load generators and outside servers (design §11, experiments/clients.h).
      {"client", Type::kString, Target::kRunner, "gillab", "load generator: gillab | wrk | siege | ab", 0, kInf,
       ClientRule, "", kNever},
      {"http_target", Type::kString, Target::kLoad, "/static",
       "http request target: POST /echo sends the payload, others are GETs", 0, kInf, HttpTargetRule, "--target",
       kHttp},
      {"duration_s", Type::kDouble, Target::kRunner, "10", "wrk/siege/ab: seconds of load per run (gillab: requests)",
       1, kInf, nullptr, "", kNever},
      {"client_threads", Type::kInt, Target::kRunner, "2", "wrk -t: client threads", 1, 1024, nullptr, "", kNever},
      {"pipeline", Type::kInt, Target::kLoad, "1", "gillab load over http: requests in flight per connection", 1,
       1024, nullptr, "--pipeline", kHttpPipelined},
      {"server_command", Type::kString, Target::kRunner, "",
       "an outside HTTP server run instead of gillab serve ({port} {source} {cpu_threads}; see runner.h)", 0, kInf,
       ServerCommandRule, "", kNever},
      {"timeout_s", Type::kDouble, Target::kRunner, "60", "a run taking longer is killed and retried on --resume",
       0.001, kInf, nullptr, "", kNever},
      {"server_cpus", Type::kString, Target::kRunner, "", "CPUs the server is pinned to (\"0\", \"0-1\"; empty: any)",
       0, kInf, CpuListRule, "", kNever},
      {"client_cpus", Type::kString, Target::kRunner, "", "CPUs the client is pinned to", 0, kInf, CpuListRule, "",
       kNever},
      // Many cores in virtual time (design §13): a simulate run is one `gillab
      // simulate-serve` child (experiments/runner.h); cores and seed are its
      // --cores and --seed (repetition r runs seed + r) and mean nothing to a
      // real run, whose runs.csv row records the CPUs it had in `cores`.
      {"mode", Type::kString, Target::kRunner, "real", "real | simulate (the point in virtual time, design §13)", 0,
       kInf, ModeRule, "", kNever},
      {"cores", Type::kInt, Target::kRunner, "2", "simulate: virtual cores (real runs: the CPUs the server had)", 1,
       1024, nullptr, "", kNever},
      {"seed", Type::kInt, Target::kRunner, "1", "simulate: the PRNG seed of repetition 0 (repetition r: seed + r)", 0,
       1e15, nullptr, "", kNever},
  };
  return specs;
}

const SettingSpec* FindSetting(std::string_view name) {
  for (const auto& spec : SettingSpecs())
    if (spec.name == name) return &spec;
  return nullptr;
}

Settings DefaultSettings() {
  Settings s;
  for (const auto& spec : SettingSpecs()) s[std::string(spec.name)] = std::string(spec.default_value);
  return s;
}

std::string CheckSetting(const SettingSpec& spec, const std::string& text, const std::string& base_dir) {
  switch (spec.type) {
    case Type::kInt:
    case Type::kDouble: {
      double value = 0;
      size_t used = 0;
      try {
        value = spec.type == Type::kInt ? static_cast<double>(std::stoll(text, &used)) : std::stod(text, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used == 0 || used != text.size() || !std::isfinite(value))
        throw UsageError(fmt::format("{} must be {} (got '{}')", spec.name,
                                     spec.type == Type::kInt ? "an integer" : "a number", text));
      if (value < spec.min_value)
        throw UsageError(fmt::format("{} must be at least {} (got {})", spec.name, FormatLimit(spec.min_value), text));
      if (value > spec.max_value)
        throw UsageError(fmt::format("{} must be at most {} (got {})", spec.name, FormatLimit(spec.max_value), text));
      return spec.type == Type::kInt ? text : fmt::format("{}", value);
    }
    case Type::kBool:
      if (text != "true" && text != "false")
        throw UsageError(fmt::format("{} must be true or false (got '{}')", spec.name, text));
      return text;
    case Type::kPriorities:
      return CanonicalPriorities(spec, text);
    case Type::kString:
      return spec.rule ? spec.rule(spec, text, base_dir) : text;
  }
  return text;
}

CLI::Validator SettingValidator(std::string_view name) {
  const SettingSpec* spec = FindSetting(name);
  if (!spec) throw std::logic_error(fmt::format("no setting '{}' in SettingSpecs()", name));
  return CLI::Validator(
      [spec](std::string& text) -> std::string {
        try {
          CheckSetting(*spec, text);
          return "";
        } catch (const std::exception& e) {
          return e.what();
        }
      },
      std::string(spec->help), std::string(spec->name));
}

std::vector<std::string> SettingFlags(SettingTarget target, const Settings& settings, const std::string& trace_path) {
  std::vector<std::string> args;
  for (const SettingSpec& spec : SettingSpecs()) {
    const bool mine = spec.target == target || (target == Target::kLoad && spec.also_load);
    if (!mine || spec.flag.empty() || !Passed(spec, settings, trace_path)) continue;
    args.emplace_back(spec.flag);
    if (spec.pass == PassWhen::kTraceRequested) args.push_back(trace_path);
    else if (spec.arg_value) args.push_back(spec.arg_value(settings));
    else args.push_back(settings.at(std::string(spec.name)));
  }
  return args;
}

std::vector<int> ParseCpuList(std::string_view text) {
  std::vector<int> cpus;
  auto bad = [&] { throw UsageError(fmt::format("bad CPU list '{}' (expected e.g. \"0\", \"0-1\" or \"0,2\")", text)); };
  size_t i = 0;
  auto number = [&]() {
    if (i >= text.size() || !isdigit(static_cast<unsigned char>(text[i]))) bad();
    int n = 0;
    while (i < text.size() && isdigit(static_cast<unsigned char>(text[i]))) {
      n = n * 10 + (text[i++] - '0');
      if (n > 4095) bad();
    }
    return n;
  };
  while (i < text.size()) {
    int first = number(), last = first;
    if (i < text.size() && text[i] == '-') ++i, last = number();
    if (last < first) bad();
    for (int c = first; c <= last; ++c) cpus.push_back(c);
    if (i < text.size() && text[i++] != ',') bad();
    if (i == text.size() && text.back() == ',') bad();
  }
  return cpus;
}

const std::vector<std::string>& LoadClientSettingNames() {
  static const std::vector<std::string> names = {"gillab", "wrk", "siege", "ab"};
  return names;
}

}  // namespace gillab::servers
