// simulate_serve_command.cc — `gillab simulate-serve`: one experiment run
// (`gillab serve` + `gillab load`) in virtual time (sim_serve.h).
//
// Its flags are those of `gillab serve` and `gillab load` that the runner
// passes for a point, generated from the settings table
// (servers/settings.h: every row with a serve or load flag, checked by that
// setting's one rule), plus the few flags of theirs that are not settings,
// the simulator's (sim_flags.h), the transport costs, and --json. A flag
// given twice (--server, --protocol: both commands take them) keeps its last
// value. Contract with the runner:
//   gillab simulate-serve <serve flags> <load flags> --cores N --seed S --json LOAD.json
// prints the serve exit JSON on stdout and writes the load JSON to LOAD.json;
// exit 0, 1 when the load counted errors (as `gillab load`), 2 for bad usage.
#include <cstdio>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include "gil/error.h"
#include "gil/thread_priority.h"
#include "gil/trace.h"
#include "servers/settings.h"
#include "sim/commands.h"
#include "sim/sim_flags.h"
#include "sim/sim_serve.h"

namespace gillab::sim {
namespace {

using servers::Settings;
using servers::SettingSpec;
using servers::SettingTarget;

struct Flags {
  Settings settings = servers::DefaultSettings();
  std::string trace_path;
  std::string endpoint = "sim://virtual";
  std::string json_path;
  SimFlags sim;
  SimServeOptions options;
};

int64_t Int(const Settings& s, const char* name) { return std::stoll(s.at(name)); }

// The settings (already checked by their rules) as the engine's and load's options.
SimServeOptions Resolve(const Flags& f) {
  const Settings& s = f.settings;
  SimServeOptions o = f.options;
  o.server = s.at("server");
  servers::EngineOptions& e = o.engine;
  e.engine = s.at("engine");
  e.policy = s.at("policy");
  e.gil.switch_interval_us = Int(s, "switch_interval_us");
  e.gil.check_interval = Int(s, "check_interval");
  e.cpu_threads = static_cast<int>(Int(s, "cpu_threads"));
  e.handler = s.at("handler");
  e.work_units = Int(s, "work_units");
  if (!s.at("lock_priority").empty()) e.lock_priority = gil::ParseLockPriorities(s.at("lock_priority"));
  o.max_message_bytes = Int(s, "max_message_bytes");
  o.trace_path = f.trace_path;
  if (s.at("http_parser") != "native" || !s.at("mount").empty() || !s.at("hub_release").empty()) {
    throw UsageError("simulate-serve models the frame protocol of the blocking and threaded servers: "
                     "--http-parser, --mount and --hub-release do not apply");
  }
  servers::LoadOptions& l = o.load;
  l.endpoint = f.endpoint;
  l.server = o.server;
  l.requests = Int(s, "requests");
  l.payload = s.at("payload");
  l.message_bytes = l.payload.empty() ? Int(s, "message_bytes") : static_cast<int64_t>(l.payload.size());
  l.connections = static_cast<int>(Int(s, "connections"));
  l.think_us = Int(s, "think_us");
  l.rate = std::stod(s.at("rate"));
  l.expect_echo = s.at("expect") != "any" && (s.at("expect") == "echo" || e.handler == "echo");
  l.protocol = s.at("protocol");
  l.http_target = s.at("http_target");
  l.pipeline = static_cast<int>(Int(s, "pipeline"));
  o.sim = f.sim.Resolve();
  o.model = f.sim.model;
  l.seed = o.sim.seed;  // one seed for the whole run
  return o;
}

}  // namespace

void AddSimulateServeCommand(CLI::App& app) {
  auto f = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand(
      "simulate-serve",
      "One `serve` + `load` run in virtual time on N simulated cores: the real toy engine, VM and lock policy "
      "behind a model of the server's loop (blocking, threaded) and of the connection; prints serve's exit JSON, "
      "--json gets load's. Accepted and ignored (no meaning in virtual time): --endpoint, --os-priority, "
      "--reply-timeout-ms, --workers, --framework-clock, --context-max-bytes, --trace-max-events");
  // Every serve and load flag of the settings table, with its setting's rule.
  for (const SettingSpec& spec : servers::SettingSpecs()) {
    if (spec.flag.empty() || spec.target == SettingTarget::kRunner) continue;
    const std::string flag(spec.flag);
    CLI::Option* option = nullptr;
    if (spec.pass == servers::PassWhen::kTraceRequested) {  // its flag carries the trace file, not the setting
      option = cmd->add_option(flag, f->trace_path, "Write the lock timeline (virtual ns) to FILE, as serve --trace");
    } else {
      option = cmd->add_option(flag, f->settings[std::string(spec.name)], std::string(spec.help))
                   ->check(servers::SettingValidator(spec.name));
    }
    option->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  }
  cmd->get_option("--think-us")->excludes(cmd->get_option("--rate"));
  cmd->get_option("--message-bytes")->excludes(cmd->get_option("--payload"));
  // serve's and load's flags that are not settings.
  cmd->add_option("--endpoint", f->endpoint, "Accepted and ignored (recorded as the endpoint)")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  cmd->add_option("--warmup", f->options.load.warmup, "Unmeasured requests first, over all connections")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--reply-timeout-ms", f->options.load.reply_timeout_ms, "Accepted and ignored");
  cmd->add_option("--trace-max-events", f->options.engine.trace_options.max_events_per_thread,
                  "Trace: events kept per thread")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--json", f->json_path, "Write load's result (gillab load --json's object) to FILE");
  AddSimFlags(*cmd, f->sim);  // --cores --seed and the cost/OS overrides (sim_flags.h)
  TransportCosts& t = f->options.transport;
  cmd->add_option("--send-ns", t.send_ns, "Cost of one send on the sender's core")->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--recv-ns", t.recv_ns, "Cost of one recv on the receiver's core")->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--one-way-ns", t.one_way_ns, "From a send to its message being readable (besides the wake-up)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->callback([f] {
    const SimServeOptions options = Resolve(*f);
    if (!options.trace_path.empty()) gil::CheckTracePathWritable(options.trace_path);
    const SimServeResult r = RunSimServe(options);
    if (!f->json_path.empty()) servers::WriteJsonAtomically(f->json_path, r.load.ToJson());
    fmt::print("{}\n", r.serve.dump());
    std::fflush(stdout);
    for (const auto& message : r.load.error_messages) fmt::print(stderr, "gillab simulate-serve: {}\n", message);
    if (r.load.errors > 0) throw std::runtime_error(fmt::format("load: {} error(s)", r.load.errors));
  });
}

}  // namespace gillab::sim
