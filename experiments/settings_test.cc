// settings_test.cc — the settings schema (servers/settings.h) and the kind
// tables (servers/server_kinds.h, engine_kinds.h) as every command sees them:
// one rule per setting whatever the source of the value, command lines built
// from the table as they were by hand, `gillab list` printing every row.
#include "servers/settings.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/core.h>
#include <fmt/ranges.h>

#include "experiments/commands.h"
#include "experiments/experiment.h"
#include "experiments/runner.h"
#include "experiments/sysinfo.h"
#include "gil/error.h"
#include "servers/client_connection.h"
#include "servers/commands.h"
#include "servers/engine.h"
#include "servers/engine_kinds.h"
#include "servers/server.h"
#include "servers/server_kinds.h"

namespace gillab::experiments {
namespace {

// The message of the UsageError/CLI error `f` throws, or "" when it does not throw.
template <typename F>
std::string ErrorOf(F f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

// Parses `gillab COMMAND ARGS...` with the real serve/load option sets (the
// callbacks, which would serve or connect, run only after a successful parse).
std::string CommandLineError(const std::vector<std::string>& args) {
  CLI::App app("gillab");
  servers::AddServeCommand(app);
  servers::AddLoadCommand(app);
  std::vector<std::string> reversed(args.rbegin(), args.rend());  // CLI11 takes argv reversed
  return ErrorOf([&] { app.parse(reversed); });
}

struct BadValue {
  std::string setting;
  std::string toml;  // the value as written in an experiment file
  std::string text;  // the same value on a command line
  std::string message;
};

// Every rule rejects the same bad value from TOML, from -s and from the flag
// of the command that consumes the setting, with the same message.
TEST(SettingRules, TheSameBadValueGetsTheSameMessageFromTomlOverrideAndFlag) {
  const std::vector<BadValue> cases = {
      {"switch_interval_us", "0", "0", "switch_interval_us must be at least 1 (got 0)"},
      {"check_interval", "0", "0", "check_interval must be at least 1 (got 0)"},
      {"cpu_threads", "-1", "-1", "cpu_threads must be at least 0 (got -1)"},
      {"cpu_threads", "2000", "2000", "cpu_threads must be at most 1024 (got 2000)"},
      {"work_units", "-5", "-5", "work_units must be at least 0 (got -5)"},
      {"max_message_bytes", "0", "0", "max_message_bytes must be at least 1 (got 0)"},
      {"server", "\"bogus\"", "bogus", "server must be one of zmq, multiprocessing, blocking, nonblocking, threaded, green, transactional, parallel (got 'bogus')"},
      {"workers", "0", "0", "workers must be at least 1 (got 0)"},
      {"context_max_bytes", "-1", "-1", "context_max_bytes must be at least 0 (got -1)"},
      {"engine", "\"bogus\"", "bogus", "engine must be one of native, toy, cpython (got 'bogus')"},
      {"policy", "\"bogus\"", "bogus", "policy must be one of"},
      {"handler", "\"/nonexistent/h.gasm\"", "/nonexistent/h.gasm",
       "handler must be echo, primes, primes_list or a readable program file (no file '/nonexistent/h.gasm')"},
      {"lock_priority", "\"gpu=3\"", "gpu=3", "gpu"},
      {"os_priority", "\"cpu=nice:lots\"", "cpu=nice:lots", "nice:lots"},
      {"requests", "0", "0", "requests must be at least 1 (got 0)"},
      {"connections", "0", "0", "connections must be at least 1 (got 0)"},
      {"connections", "20000", "20000", "connections must be at most 10000 (got 20000)"},
      {"think_us", "-1", "-1", "think_us must be at least 0 (got -1)"},
      {"rate", "-1", "-1", "rate must be at least 0 (got -1)"},
      {"message_bytes", "-1", "-1", "message_bytes must be at least 0 (got -1)"},
      {"expect", "\"maybe\"", "maybe", "expect must be one of echo, any (got 'maybe')"},
  };
  for (const BadValue& c : cases) {
    SCOPED_TRACE(c.setting + " = " + c.text);
    const SettingSpec* spec = FindSetting(c.setting);
    ASSERT_NE(spec, nullptr);
    const std::string toml =
        ErrorOf([&] { ParseExperiment(fmt::format("[settings]\n{} = {}\n", c.setting, c.toml), "x.toml"); });
    const std::string override_s =
        ErrorOf([&] { ParseExperiment("", "x.toml", {fmt::format("{}={}", c.setting, c.text)}); });
    // The command's required flags with good values, but for the one under test.
    const bool load = spec->target == SettingTarget::kLoad;
    const std::vector<std::pair<std::string, std::string>> required =
        load ? std::vector<std::pair<std::string, std::string>>{{"--endpoint", "tcp://127.0.0.1:1"},
                                                                 {"--requests", "1"}}
             : std::vector<std::pair<std::string, std::string>>{{"--server", "blocking"}, {"--engine", "toy"}};
    std::vector<std::string> args = {load ? "load" : "serve"};
    for (const auto& [name, value] : required)
      if (name != spec->flag) args.insert(args.end(), {name, value});
    args.push_back(fmt::format("{}={}", spec->flag, c.text));
    const std::string flag = CommandLineError(args);
    const std::string rule = ErrorOf([&] { servers::CheckSetting(*spec, c.text); });
    EXPECT_NE(rule.find(c.message), std::string::npos) << rule;
    for (const std::string* got : {&toml, &override_s, &flag}) EXPECT_NE(got->find(rule), std::string::npos) << *got;
    EXPECT_EQ(toml, "x.toml:2: " + rule);
    EXPECT_EQ(override_s, fmt::format("-s {}={}: {}", c.setting, c.text, rule));
  }
}

TEST(SettingRules, GoodValuesComeBackCanonical) {
  EXPECT_EQ(servers::CheckSetting(*FindSetting("switch_interval_us"), "1"), "1");
  EXPECT_EQ(servers::CheckSetting(*FindSetting("cpu_threads"), "1024"), "1024");
  EXPECT_EQ(servers::CheckSetting(*FindSetting("rate"), "2.50"), "2.5");
  EXPECT_EQ(servers::CheckSetting(*FindSetting("lock_priority"), "cpu=0,io=1"), "io=1,cpu=0");
  EXPECT_EQ(servers::CheckSetting(*FindSetting("expect"), ""), "");
  EXPECT_THROW(servers::CheckSetting(*FindSetting("requests"), "1.5"), UsageError);
}

// Every setting that names a flag names one its command has.
TEST(SettingTable, EveryFlagExistsOnItsCommand) {
  CLI::App app("gillab");
  servers::AddServeCommand(app);
  servers::AddLoadCommand(app);
  for (const SettingSpec& spec : SettingSpecs()) {
    if (spec.flag.empty()) {
      EXPECT_EQ(spec.target, SettingTarget::kRunner) << spec.name;
      continue;
    }
    std::vector<std::string> commands;
    if (spec.target == SettingTarget::kServe) commands.push_back("serve");
    if (spec.target == SettingTarget::kLoad || spec.also_load) commands.push_back("load");
    for (const auto& command : commands)
      EXPECT_NO_THROW(app.get_subcommand(command)->get_option(std::string(spec.flag))) << command << " " << spec.flag;
    EXPECT_NO_THROW(servers::CheckSetting(spec, std::string(spec.default_value))) << spec.name;
  }
}

// The command lines as runner.cc wrote them by hand before the table (kept
// here verbatim as the expectation).
std::vector<std::string> HandWrittenServeArgs(const Point& p, const std::string& bin, const std::string& endpoint,
                                              const std::string& trace_path) {
  const Settings& s = p.settings;
  std::vector<std::string> args = {bin, "serve", "--server", s.at("server"), "--engine", s.at("engine")};
  if (s.at("engine") != "native") {
    args.insert(args.end(), {"--policy", s.at("policy"), "--switch-interval-us", s.at("switch_interval_us")});
    if (s.at("engine") == "toy") args.insert(args.end(), {"--check-interval", s.at("check_interval")});
    if (!s.at("lock_priority").empty()) args.insert(args.end(), {"--lock-priority", s.at("lock_priority")});
  }
  args.insert(args.end(), {"--cpu-threads", s.at("cpu_threads"), "--handler", s.at("handler"), "--work-units",
                           s.at("work_units"), "--endpoint", endpoint, "--max-message-bytes", s.at("max_message_bytes")});
  if (!s.at("os_priority").empty()) args.insert(args.end(), {"--os-priority", s.at("os_priority")});
  if (s.at("trace") == "true" && s.at("engine") == "toy" && !trace_path.empty()) {
    args.insert(args.end(), {"--trace", trace_path});
  }
  return args;
}

std::vector<std::string> HandWrittenLoadArgs(const Point& p, const std::string& bin, const std::string& endpoint,
                                             const std::string& json_path, int64_t warmup_requests) {
  const Settings& s = p.settings;
  std::string expect = s.at("expect");
  if (expect.empty()) expect = s.at("handler") == "echo" ? "echo" : "any";
  std::vector<std::string> args = {bin, "load", "--endpoint", endpoint, "--server", s.at("server"),
                                   "--requests", s.at("requests"), "--connections", s.at("connections"), "--expect", expect, "--json", json_path};
  if (SettingDouble(s, "rate") > 0) args.insert(args.end(), {"--rate", s.at("rate")});
  else args.insert(args.end(), {"--think-us", s.at("think_us")});
  if (warmup_requests > 0) args.insert(args.end(), {"--warmup", std::to_string(warmup_requests)});
  if (s.at("payload").empty()) args.insert(args.end(), {"--message-bytes", s.at("message_bytes")});
  else args.insert(args.end(), {"--payload", s.at("payload")});
  return args;
}

// A command line as program + subcommand and its flag -> value pairs (the
// order of flags means nothing to CLI11).
std::pair<std::vector<std::string>, std::map<std::string, std::string>> Flags(const std::vector<std::string>& args) {
  std::map<std::string, std::string> flags;
  for (size_t i = 2; i + 1 < args.size(); i += 2) {
    EXPECT_TRUE(flags.emplace(args[i], args[i + 1]).second) << "flag given twice: " << args[i];
  }
  EXPECT_EQ(args.size() % 2, 0u) << "a flag without a value";
  return {{args[0], args[1]}, flags};
}

TEST(SettingTable, ServeAndLoadArgsEqualTheHandWrittenOnesForEveryShippedExperiment) {
  int points = 0;
  for (const char* file : {"convoy.toml", "cpu_threads.toml", "priorities.toml", "calibration.toml", "pacing.toml",
                           "primes_scaling.toml", "switch_interval.toml"}) {
    for (const std::vector<std::string>& overrides :
         {std::vector<std::string>{}, std::vector<std::string>{"trace=true", "payload=\"20000\"", "rate=50"}}) {
      Experiment e;
      try {
        e = LoadExperiment(SourceDir() + "/experiments/" + file, overrides);
      } catch (const UsageError&) {
        continue;  // an override this experiment refuses (e.g. rate beside its think time)
      }
      for (const Point& p : e.Points()) {
        SCOPED_TRACE(fmt::format("{} {} point {}", file, fmt::join(overrides, " "), p.Describe()));
        EXPECT_EQ(Flags(ServeArgs(p, "/bin/gillab", "ipc://n", "T.json")),
                  Flags(HandWrittenServeArgs(p, "/bin/gillab", "ipc://n", "T.json")));
        EXPECT_EQ(Flags(LoadArgs(p, "/bin/gillab", "tcp://h:1", "L.json", 20)),
                  Flags(HandWrittenLoadArgs(p, "/bin/gillab", "tcp://h:1", "L.json", 20)));
        ++points;
      }
    }
  }
  EXPECT_GT(points, 100);
}

TEST(KindTables, EveryRowHasAFactoryAndAConnectionType) {
  for (const auto& kind : servers::ServerKindTable()) {
    EXPECT_TRUE(servers::HasServerFactory(kind.name)) << kind.name;
    EXPECT_EQ(servers::TransportOfServerKind(kind.name), kind.client_connection);
    EXPECT_FALSE(kind.summary.empty());
    const std::string endpoint = servers::DefaultEndpoint(kind, "gillab-test");
    EXPECT_EQ(endpoint.rfind(kind.endpoint_scheme == servers::EndpointScheme::kIpc ? "ipc://" : "tcp://", 0), 0u);
  }
  for (const auto& engine : servers::EngineKindTable()) {
    EXPECT_TRUE(servers::HasEngineFactory(engine.name)) << engine.name;
    EXPECT_FALSE(engine.summary.empty());
    EXPECT_TRUE(engine.traceable || !engine.no_trace_reason.empty()) << engine.name;
  }
  EXPECT_THROW(servers::RequireServerKind("bogus"), UsageError);
  EXPECT_THROW(servers::RequireEngineKind("bogus"), UsageError);
}

TEST(KindTables, ListPrintsEveryRow) {
  CLI::App app("gillab");
  AddListCommand(app);
  testing::internal::CaptureStdout();
  app.parse(std::vector<std::string>{"list"});
  const std::string out = testing::internal::GetCapturedStdout();
  for (const auto& kind : servers::ServerKindTable()) {
    EXPECT_NE(out.find(std::string(kind.name)), std::string::npos) << kind.name;
    EXPECT_NE(out.find(std::string(kind.summary)), std::string::npos) << kind.summary;
  }
  for (const auto& engine : servers::EngineKindTable())
    EXPECT_NE(out.find(std::string(engine.summary)), std::string::npos) << engine.name;
  for (const auto& spec : SettingSpecs()) EXPECT_NE(out.find(std::string(spec.help)), std::string::npos) << spec.name;
}

}  // namespace
}  // namespace gillab::experiments
