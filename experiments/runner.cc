// runner.cc — spawning serve/load per run, timeouts, resume, progress and ETA.
#include "experiments/runner.h"

#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <map>
#include <optional>
#include <set>

#include <fmt/core.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "experiments/child_process.h"
#include "experiments/report.h"
#include "experiments/results.h"
#include "experiments/sysinfo.h"
#include "gil/error.h"
#include "gil/gil.h"
#include "gil/thread_priority.h"
#include "servers/mq_protocol.h"
#include "servers/server_kinds.h"
#include "servers/settings.h"
#include "servers/socket.h"

namespace gillab::experiments {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr int64_t kNsPerS = 1'000'000'000;
constexpr double kStartupTimeoutS = 30;   // cpython engine start-up included
constexpr double kShutdownTimeoutS = 10;
constexpr int kClientCrashRetries = 2;
// A simulate run's host seconds per virtual second of one busy core (rough; EstimateRunSeconds).
constexpr double kHostSecondsPerVirtualSecond = 2.0;

std::string UtcStamp(const char* format) {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buffer[64];
  std::strftime(buffer, sizeof buffer, format, &tm);
  return buffer;
}

int64_t Deadline(double seconds) { return gil::KernelNowNs() + static_cast<int64_t>(seconds * 1e9); }

std::optional<std::string> ListeningEndpoint(const std::string& out) {
  size_t at = out.find("listening ");
  if (at == std::string::npos) return std::nullopt;
  size_t end = out.find('\n', at);
  if (end == std::string::npos) return std::nullopt;
  std::string endpoint = out.substr(at + 10, end - at - 10);
  while (!endpoint.empty() && (endpoint.back() == '\r' || endpoint.back() == ' ')) endpoint.pop_back();
  return endpoint;
}

// The serve exit JSON: everything after the `listening` line.
json ServeJson(const std::string& out) {
  size_t at = out.find("listening ");
  size_t start = out.find('{', at == std::string::npos ? 0 : at);
  if (start == std::string::npos) return json();
  size_t end = out.rfind('}');
  if (end == std::string::npos || end < start) return json();
  json parsed = json::parse(out.substr(start, end - start + 1), nullptr, /*allow_exceptions=*/false);
  return parsed.is_discarded() ? json() : parsed;
}

// The multiprocessing endpoint of one run: ipc://gillab-RUNNER_PID-RUN_NUMBER.
std::string RunIpcName(pid_t runner, int run_number) { return fmt::format("gillab-{}-{}", runner, run_number); }

// Removes the shared-memory queues that a runner killed with -9 left behind.
// Its serve child died by PDEATHSIG SIGKILL and could not remove them, and a
// server removes stale queues only of its own name, which no later run reuses
// (the name holds the dead runner's pid). A name is swept only when its runner
// pid is gone and no live server holds the flock on its control queue (the
// same liveness test the multiprocessing server applies on start).
int RemoveQueuesOfDeadRunners() {
  std::set<std::string> names;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/dev/shm", ec)) {
    const std::string file = entry.path().filename().string();
    int runner = 0, run = 0, length = 0;
    if (std::sscanf(file.c_str(), "gillab-%d-%d%n", &runner, &run, &length) != 2) continue;
    const std::string name = file.substr(0, static_cast<size_t>(length));
    if (file.c_str()[length] != '.' || name != RunIpcName(runner, run) || runner <= 0) continue;
    if (runner == getpid() || servers::ProcessAlive(runner)) continue;
    names.insert(name);
  }
  int removed = 0;
  for (const std::string& name : names)
    if (!servers::MqServerRunning(name)) removed += servers::RemoveMqQueues(name);
  return removed;
}

// A loopback port free right now, for an outside server (which, unlike gillab
// serve, cannot report the port it bound). Another process could take it
// before the server binds it: the run then fails and is retried on --resume.
int FreeLoopbackPort() {
  servers::UniqueFd fd = servers::ListenTcp(servers::ParseTcpEndpoint("tcp://127.0.0.1:0"));
  return servers::LocalEndpoint(fd.get()).port;
}

// Whether something accepts connections on 127.0.0.1:port.
bool PortOpen(int port) {
  try {
    servers::ConnectTcp(servers::ParseTcpEndpoint(fmt::format("tcp://127.0.0.1:{}", port)));
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

// The run modes of an experiment's points, in table order: ["real"], ["simulate"] or both.
json RunModes(const Experiment& e) {
  std::set<std::string> modes;
  for (const Point& p : e.Points()) modes.insert(p.settings.at("mode"));
  json out = json::array();
  for (const char* mode : {"real", "simulate"})
    if (modes.count(mode)) out.push_back(mode);
  return out;
}

// Next to raw/pNNN_rR_load.json: raw/pNNN_rR_client.txt, the client's own output.
std::string ClientOutputPath(const std::string& load_json_path) {
  const std::string suffix = "_load.json";
  if (load_json_path.ends_with(suffix))
    return load_json_path.substr(0, load_json_path.size() - suffix.size()) + "_client.txt";
  return load_json_path + ".client.txt";
}

struct Outcome {
  bool ok = false;
  bool fatal = false;        // a usage error: every other run would fail the same way
  bool interrupted = false;
  bool client_crashed = false;  // an outside client (siege 4.0.7 sometimes) died of SIGSEGV & co
  std::string error;
  json load, serve;
  RunTiming timing;
};

// A failed run: the message, the child's last stderr lines, and whether it was
// a usage error (exit 2: every other run would fail the same way).
Outcome& Failed(Outcome& o, ChildProcess& who, const std::string& what) {
  o.error = what;
  std::string tail = who.ErrTail();
  if (!tail.empty()) o.error += ": " + tail;
  o.fatal = who.exited() && who.exit_code() == 2;
  return o;
}

// Reads the client's result (gillab load's --json file, or an outside client's
// stdout) into o.load once the client exited; failed requests make the row's
// status "errors". False (o says why) when there is no result or the client failed.
bool TakeLoadResult(Outcome& o, const LoadClient& client, ChildProcess& load, const std::string& load_json_path) {
  if (!client.program.empty()) WriteFileAtomic(ClientOutputPath(load_json_path), load.out());
  try {
    o.load = client.parse(load.out(), load_json_path);
  } catch (const std::exception& e) {
    o.client_crashed = !client.program.empty() && load.Crashed();
    Failed(o, load, fmt::format("{} gave no result ({}; {})", client.name, e.what(), load.ExitDescription()));
    return false;
  }
  // The other clients' results land where gillab load writes its own, for the report and plots.
  if (!client.program.empty()) WriteFileAtomic(load_json_path, o.load.dump(2) + "\n");
  auto counted = [&](const char* key) {
    auto it = o.load.find(key);
    return it != o.load.end() && it->is_number() && it->get<double>() > 0;
  };
  if (counted("errors") || counted("non_2xx")) o.timing.status = "errors";
  else if (load.exit_code() != 0) {
    Failed(o, load, fmt::format("{} failed ({})", client.name, load.ExitDescription()));
    return false;
  }
  return true;
}

// A simulated run (design §13): one `gillab simulate-serve` child runs server
// and client in virtual time to completion, writes the load JSON and prints
// serve's exit JSON. Same timeout, kill, reap and failure handling as a real run.
Outcome RunSimulated(const Point& point, const std::string& bin, const std::string& load_json_path,
                     int64_t warmup_requests, int repetition) {
  Outcome o;
  o.timing.started_utc = UtcStamp("%Y-%m-%dT%H:%M:%SZ");
  const int64_t start_ns = gil::KernelNowNs();
  std::error_code ec;
  fs::remove(load_json_path, ec);
  ChildProcess sim({.argv = SimulateServeArgs(point, bin, load_json_path, warmup_requests, repetition),
                    .cpus = ParseCpuList(point.settings.at("server_cpus"))});
  struct KillAtExit {
    ChildProcess& child;
    ~KillAtExit() { child.KillAndReap(); }
  } kill_sim{sim};
  const double timeout_s = SettingDouble(point.settings, "timeout_s");
  const bool finished = WaitFor({&sim}, Deadline(timeout_s), [&] { return sim.exited(); });
  if (Interrupted()) return o.interrupted = true, o;
  if (!finished) return Failed(o, sim, fmt::format("gillab simulate-serve timed out after {} s (killed)", timeout_s));
  Pump({&sim}, 0);
  o.timing.wall_s = static_cast<double>(gil::KernelNowNs() - start_ns) / 1e9;
  // Exit 1 with a load JSON is gillab load's "the client counted errors": the row is kept with status errors.
  const bool counted_errors = sim.exit_code() == 1 && fs::exists(load_json_path);
  if (sim.exit_code() != 0 && !counted_errors)
    return Failed(o, sim, fmt::format("gillab simulate-serve failed ({})", sim.ExitDescription()));
  if (!TakeLoadResult(o, *FindLoadClient("gillab"), sim, load_json_path)) return o;
  o.serve = ServeJson(sim.out());
  if (o.serve.is_null())
    fmt::print(stderr, "gillab run: warning: point {}: gillab simulate-serve printed no exit JSON; lock statistics "
                       "of this run are NA\n", point.id);
  o.ok = true;
  return o;
}

// One run, start to finish; never leaves a child behind.
Outcome RunOnce(const Point& point, const std::string& bin, const std::string& load_json_path,
                const std::string& trace_path, int64_t warmup_requests, int run_number, int repetition) {
  if (point.settings.at("mode") == "simulate")
    return RunSimulated(point, bin, load_json_path, warmup_requests, repetition);
  Outcome o;
  o.timing.started_utc = UtcStamp("%Y-%m-%dT%H:%M:%SZ");
  int64_t start_ns = gil::KernelNowNs();
  const Settings& s = point.settings;
  const bool outside = !s.at("server_command").empty();
  const int outside_port = outside ? FreeLoopbackPort() : 0;
  std::string endpoint = outside ? fmt::format("tcp://127.0.0.1:{}", outside_port)
                                 : servers::DefaultEndpoint(servers::RequireServerKind(s.at("server")),
                                                            RunIpcName(getpid(), run_number));
  const std::string server_name = outside ? "the server_command" : "gillab serve";
  std::error_code ec;
  fs::remove(load_json_path, ec);

  ChildProcess serve({.argv = outside ? OutsideServerArgs(point, outside_port) : ServeArgs(point, bin, endpoint, trace_path),
                      .cpus = ParseCpuList(s.at("server_cpus"))});
  // Whatever path leaves this function, the server gets SIGTERM first (so it
  // removes its shared-memory queues) and is reaped.
  struct StopAtExit {
    ChildProcess& child;
    ~StopAtExit() { child.Stop(2.0); }
  } stop_serve{serve};
  auto fail = [&](ChildProcess& who, const std::string& what) { return Failed(o, who, what); };
  // gillab serve says `listening ENDPOINT`; an outside server is ready when its port accepts.
  std::optional<std::string> listening;
  bool ready = WaitFor({&serve}, Deadline(kStartupTimeoutS), [&] {
    if (outside && PortOpen(outside_port)) listening = endpoint;
    if (!outside) listening = ListeningEndpoint(serve.out());
    return listening.has_value() || serve.exited();
  });
  if (Interrupted()) return o.interrupted = true, o;
  if (!ready || !listening) {
    if (!serve.exited())
      return fail(serve, outside ? fmt::format("the server_command did not open port {} within {} s", outside_port, kStartupTimeoutS)
                                 : fmt::format("gillab serve printed no `listening` line within {} s", kStartupTimeoutS));
    return fail(serve, server_name + " exited before listening (" + serve.ExitDescription() + ")");
  }
  int64_t listening_ns = gil::KernelNowNs();

  const LoadClient& client = *FindLoadClient(s.at("client"));
  ChildProcess load({.argv = client.args({.point = point,
                                          .gillab_bin = bin,
                                          .endpoint = *listening,
                                          .json_path = load_json_path,
                                          .warmup_requests = warmup_requests,
                                          .source_dir = SourceDir()}),
                     .cpus = ParseCpuList(s.at("client_cpus"))});
  struct KillAtExit {
    ChildProcess& child;
    ~KillAtExit() { child.KillAndReap(); }
  } kill_load{load};
  double timeout_s = SettingDouble(s, "timeout_s");
  bool finished = WaitFor({&serve, &load}, Deadline(timeout_s), [&] { return load.exited() || serve.exited(); });
  if (Interrupted()) return o.interrupted = true, o;
  if (!finished) return fail(load, fmt::format("timed out after {} s (killed)", timeout_s));
  if (!load.exited()) {
    // The server died under the client.
    return fail(serve, server_name + " died during the run (" + serve.ExitDescription() + ")");
  }
  serve.Signal(SIGTERM);
  bool stopped = WaitFor({&serve}, Deadline(kShutdownTimeoutS), [&] { return serve.exited(); });
  if (Interrupted()) return o.interrupted = true, o;
  Pump({&serve}, 0);
  o.timing.serve_wall_ns = gil::KernelNowNs() - listening_ns;
  o.timing.wall_s = static_cast<double>(gil::KernelNowNs() - start_ns) / 1e9;
  if (!stopped) return fail(serve, fmt::format("{} did not exit within {} s of SIGTERM (killed)", server_name, kShutdownTimeoutS));

  if (!TakeLoadResult(o, client, load, load_json_path)) return o;
  if (outside) {  // an outside server has no lock statistics: those cells are NA
    o.ok = true;
    return o;
  }
  o.serve = ServeJson(serve.out());
  if (serve.exit_code() != 0 || o.serve.is_null())
    fmt::print(stderr, "gillab run: warning: point {}: gillab serve {}{}; lock statistics of this run are NA\n",
               point.id, serve.ExitDescription(), o.serve.is_null() ? " and printed no exit JSON" : "");
  o.ok = true;
  return o;
}

std::string Progress(int done, int total, const Point& p, int rep, const Outcome& o, double elapsed_s, double eta_s) {
  std::string result;
  if (o.ok) {
    auto number = [&](const char* key, const char* sub = nullptr) -> double {
      const json* node = &o.load;
      auto it = node->find(key);
      if (it == node->end()) return -1;
      if (sub) {
        auto jt = it->find(sub);
        return jt == it->end() || !jt->is_number() ? -1 : jt->get<double>();
      }
      return it->is_number() ? it->get<double>() : -1;
    };
    // A figure the client does not report (siege's percentiles) is NA.
    auto us = [&](const char* p) { double v = number("latency_us", p); return v < 0 ? std::string("NA") : fmt::format("{:.0f} µs", v); };
    result = fmt::format("{:.0f} req/s, p50 {}, p99 {}", number("req_per_s"), us("p50"), us("p99"));
    if (o.timing.status != "ok") result += " (client errors)";
  } else {
    result = "FAILED";
  }
  return fmt::format("[{}/{}] point {} rep {} {}: {} | elapsed {}, ETA {}", done, total, p.id, rep, p.Describe(),
                     result, FormatDuration(elapsed_s), FormatDuration(eta_s));
}

void AppendFailure(const std::string& dir, const Point& p, int rep, const std::string& error) {
  std::string line = fmt::format("{} point {} rep {} ({}): {}\n", UtcStamp("%Y-%m-%dT%H:%M:%SZ"), p.id, rep,
                                 p.Describe(), error);
  FILE* f = std::fopen((dir + "/failures.log").c_str(), "a");
  if (f) {
    std::fputs(line.c_str(), f);
    std::fclose(f);
  }
}

bool SamePoints(const Experiment& a, const Experiment& b) {
  auto pa = a.Points(), pb = b.Points();
  if (pa.size() != pb.size() || a.repetitions != b.repetitions) return false;
  for (size_t i = 0; i < pa.size(); ++i)
    if (pa[i].settings != pb[i].settings || pa[i].variant != pb[i].variant) return false;
  return true;
}

json Pinning(const Experiment& e) {
  json pinning;
  for (const char* key : {"server_cpus", "client_cpus"}) {
    bool swept = false;
    for (const auto& a : e.axes) swept |= a.key == key;
    std::string value = e.settings.at(key);
    pinning[key] = swept ? "swept (see runs.csv)" : value.empty() ? "not pinned" : value;
  }
  return pinning;
}

// The shard this run covers: the given one for a new directory; for --resume,
// the one recorded in DIR/meta.json (a directory without a record, or a merged
// one, is the whole sweep), which a given --shard must match.
Shard ResolveShard(const RunnerOptions& options, const std::string& dir) {
  if (options.resume_dir.empty()) return options.shard.value_or(Shard{});
  Shard recorded;
  if (fs::exists(dir + "/meta.json")) {
    json meta = json::parse(ReadFile(dir + "/meta.json"), nullptr, false);
    if (meta.is_object() && meta.contains("shard")) recorded = ShardFromJson(meta["shard"]);
  }
  if (options.shard && *options.shard != recorded)
    throw UsageError(fmt::format("--shard {}/{} does not match {}, which holds {}", options.shard->index,
                                 options.shard->count, dir,
                                 recorded.whole() ? "the whole sweep"
                                                  : fmt::format("shard {}/{}", recorded.index, recorded.count)));
  return recorded;
}

}  // namespace

std::string FormatDuration(double seconds) {
  if (seconds < 0) seconds = 0;
  auto total = static_cast<int64_t>(seconds + 0.5);
  if (total >= 3600) return fmt::format("{}h{:02}m", total / 3600, total / 60 % 60);
  if (total >= 60) return fmt::format("{}m{:02}s", total / 60, total % 60);
  return fmt::format("{}s", total);
}

std::string GillabBinary() {
  if (const char* env = std::getenv("GILLAB_BIN"); env && *env) return env;
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (ec) throw std::runtime_error("cannot locate the gillab binary (/proc/self/exe); set GILLAB_BIN");
  return self.string();
}

std::string DefaultResultsDir(const Experiment& e) {
  fs::path base = fs::path(SourceDir()) / "results";
  if (!fs::is_directory(base)) base = "results";
  std::string name;
  for (char c : e.name) name += (isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_') ? c : '-';
  return (base / "runs" / fmt::format("{}_{}_{}", UtcStamp("%Y%m%dT%H%M%SZ"), name, GitShortSha())).string();
}

// Both command lines come from the settings table (servers/settings.h): each
// row names its flag and when it is passed.
std::vector<std::string> ServeArgs(const Point& p, const std::string& bin, const std::string& endpoint,
                                   const std::string& trace_path) {
  std::vector<std::string> args = {bin, "serve"};
  for (std::string& flag : servers::SettingFlags(SettingTarget::kServe, p.settings, trace_path))
    args.push_back(std::move(flag));
  args.insert(args.end(), {"--endpoint", endpoint});
  return args;
}

std::vector<std::string> SimulateServeArgs(const Point& p, const std::string& bin, const std::string& json_path,
                                           int64_t warmup_requests, int repetition) {
  std::vector<std::string> args = {bin, "simulate-serve"};
  const std::vector<std::string> serve = servers::SettingFlags(SettingTarget::kServe, p.settings, "");
  args.insert(args.end(), serve.begin(), serve.end());
  // gillab load's flags, less those serve's already carry (--server, --protocol).
  const std::vector<std::string> load = servers::SettingFlags(SettingTarget::kLoad, p.settings);
  for (size_t i = 0; i + 1 < load.size(); i += 2) {
    bool repeated = false;
    for (size_t j = 0; j + 1 < serve.size(); j += 2) repeated |= serve[j] == load[i];
    if (!repeated) args.insert(args.end(), {load[i], load[i + 1]});
  }
  if (warmup_requests > 0) args.insert(args.end(), {"--warmup", std::to_string(warmup_requests)});
  const int64_t seed = SettingInt(p.settings, "seed") + repetition;
  args.insert(args.end(), {"--cores", p.settings.at("cores"), "--seed", std::to_string(seed), "--json", json_path});
  return args;
}

std::string RunCores(const Settings& s) {
  if (s.at("mode") == "simulate") return s.at("cores");
  const std::vector<int> pinned = ParseCpuList(s.at("server_cpus"));
  if (!pinned.empty()) return std::to_string(pinned.size());
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (sched_getaffinity(0, sizeof allowed, &allowed) == 0) return std::to_string(CPU_COUNT(&allowed));
  return std::to_string(std::max(1L, sysconf(_SC_NPROCESSORS_ONLN)));
}

std::vector<std::string> OutsideServerArgs(const Point& p, int port) {
  std::string command = p.settings.at("server_command");
  const std::vector<std::pair<std::string, std::string>> fields = {
      {"{port}", std::to_string(port)}, {"{source}", SourceDir()}, {"{cpu_threads}", p.settings.at("cpu_threads")}};
  for (const auto& [field, value] : fields)
    for (size_t at = command.find(field); at != std::string::npos; at = command.find(field, at + value.size()))
      command.replace(at, field.size(), value);
  // exec: the server itself is the child, so SIGTERM and the death signal reach it, not a shell.
  return {"/bin/sh", "-c", "exec " + command};
}

double EstimateRunSeconds(const Point& p, int64_t warmup_requests) {
  const Settings& s = p.settings;
  if (s.at("client") != "gillab") return 0.3 + std::min(SettingDouble(s, "duration_s"), SettingDouble(s, "timeout_s"));
  double startup_s = s.at("engine") == "cpython" ? 0.6 : 0.15;
  double requests = static_cast<double>(SettingInt(s, "requests") + warmup_requests);
  double per_request_us = 60 + static_cast<double>(SettingInt(s, "message_bytes")) / 500.0;
  // Under a convoy each request waits for the lock while K CPU threads spin:
  // how long is the policy's trait (gil/policies.cc, fitted to
  // cpu_threads.toml on the 2-core reference VM). An I/O thread that outranks
  // the CPU threads under a policy where that preempts them waits for none.
  const std::string& policy = s.at("policy");
  const auto& policies = gil::PolicyNames();
  const bool known = std::find(policies.begin(), policies.end(), policy) != policies.end();
  const gil::PolicyTraits traits = known ? gil::PolicyTraitsOf(policy) : gil::PolicyTraits{.exclusive = false};
  const bool locked = s.at("engine") != "native" && traits.exclusive;
  bool io_outranks = false;
  if (traits.io_priority_avoids_convoy) {
    const std::map<gil::Role, int> priority = gil::ParseLockPriorities(s.at("lock_priority"));
    auto of = [&](gil::Role role) {
      auto it = priority.find(role);
      return it == priority.end() ? 0 : it->second;
    };
    io_outranks = of(gil::Role::kIo) > of(gil::Role::kCpu);
  }
  const auto k = static_cast<double>(SettingInt(s, "cpu_threads"));
  if (locked && k > 0 && !io_outranks) {
    const auto interval_us = static_cast<double>(SettingInt(s, "switch_interval_us"));
    per_request_us += traits.convoy_fixed_us +
                      (traits.convoy_intervals_per_cpu_thread * k + traits.convoy_intervals_offset) * interval_us;
  }
  double run_s;
  if (SettingDouble(s, "rate") > 0) {
    run_s = requests / SettingDouble(s, "rate");
  } else {
    per_request_us += static_cast<double>(SettingInt(s, "think_us"));
    run_s = requests * per_request_us / 1e6 / std::max<int64_t>(1, SettingInt(s, "connections"));
  }
  if (s.at("mode") == "simulate") {
    // run_s is virtual time here; host seconds are not virtual seconds. Under
    // an exclusive lock one simulated core runs at a time, at 0.9-2.1x10^8
    // simulated instructions per host second (results/sim_fastpath.md) against
    // 1.7-7.7x10^8 per virtual second (1.3-6 ns each): about 2 host seconds per
    // virtual second. Without one, every busy core costs that much.
    const double busy_cores =
        locked ? 1.0 : std::min(static_cast<double>(SettingInt(s, "cores")), k + 1);
    run_s *= kHostSecondsPerVirtualSecond * busy_cores;
    startup_s = 0.05;
  }
  return startup_s + std::min(run_s, SettingDouble(s, "timeout_s"));
}

std::string DryRunText(const Experiment& e, const std::string& bin) {
  std::string out = e.Describe();
  auto points = e.Points();
  out += "points:\n";
  double total_s = 0;
  for (const auto& p : points) {
    double run_s = EstimateRunSeconds(p, e.warmup);
    total_s += run_s * e.repetitions;
    out += fmt::format("  {:>3}  {}  (~{:.1f} s/run)\n", p.id, p.Describe(), run_s);
  }
  if (!points.empty()) total_s += EstimateRunSeconds(points[0], e.warmup) * e.warmup_runs;
  std::string endpoint =
      points.empty() ? "" : servers::DefaultEndpoint(servers::RequireServerKind(points[0].settings.at("server")), "NAME");
  // The first simulated point's child, when the first run is a real one (or the only kind there is).
  auto simulated = std::find_if(points.begin(), points.end(), [](const Point& p) { return p.settings.at("mode") == "simulate"; });
  if (simulated != points.end())
    out += fmt::format("first simulated run (point {}: one child, server and client in virtual time):\n  {}\n",
                       simulated->id, fmt::join(SimulateServeArgs(*simulated, bin, "LOAD.json", e.warmup, 0), " "));
  auto real = std::find_if(points.begin(), points.end(), [](const Point& p) { return p.settings.at("mode") == "real"; });
  if (real != points.end()) {
    const Point& first = *real;
    const bool outside = !first.settings.at("server_command").empty();
    out += fmt::format("first {}run (point {}):\n  {}\n", simulated == points.end() ? "" : "real ", first.id, fmt::join(outside ? OutsideServerArgs(first, 0) : ServeArgs(first, bin, endpoint, "TRACE.json"), " "));
    const LoadClient& client = *FindLoadClient(first.settings.at("client"));
    out += fmt::format("  {}\n", fmt::join(client.args({.point = first, .gillab_bin = bin, .endpoint = "tcp://127.0.0.1:PORT",
                                                        .json_path = "LOAD.json", .warmup_requests = e.warmup,
                                                        .source_dir = SourceDir()}), " "));
  }
  out += fmt::format("{} runs, estimated time {} (rough: think time + network + lock waits "
                     "under a convoy; handler work not counted{})\n", e.RunCount() + (points.empty() ? 0 : e.warmup_runs), FormatDuration(total_s),
                     simulated == points.end() ? "" : "; simulate runs: host seconds guessed as 2x the virtual ones");
  return out;
}

int RunExperiment(const Experiment& given, const RunnerOptions& options) {
  Experiment e = given;
  std::string dir;
  if (!options.resume_dir.empty()) {
    dir = options.resume_dir;
    std::string stored = dir + "/experiment.toml";
    if (!fs::exists(stored) || !fs::exists(dir + "/runs.csv"))
      throw UsageError(fmt::format("{} is not a results directory (no experiment.toml and runs.csv)", dir));
    Experiment resumed = LoadExperiment(stored);
    if (!given.path.empty() && !SamePoints(given, resumed))
      throw UsageError(fmt::format("{} holds a different experiment than {} (settings or points differ); "
                                   "resume with --resume DIR alone", dir, given.path));
    e = resumed;
  } else {
    dir = options.out_dir.empty() ? DefaultResultsDir(e) : options.out_dir;
    if (fs::exists(dir) && !fs::is_empty(dir))
      throw UsageError(fmt::format("results directory {} exists and is not empty (use --resume {} to complete it)", dir, dir));
    fs::create_directories(dir);
    WriteFileAtomic(dir + "/experiment.toml", e.ToToml());
  }
  const Shard shard = ResolveShard(options, dir);
  fs::create_directories(dir + "/raw");
  InstallInterruptHandlers();
  if (int stale = RemoveQueuesOfDeadRunners(); stale > 0)
    fmt::print(stderr, "gillab run: removed {} shared-memory queue(s) left by a killed run\n", stale);

  json meta;
  if (fs::exists(dir + "/meta.json")) meta = json::parse(ReadFile(dir + "/meta.json"), nullptr, false);
  if (!meta.is_object()) meta = json::object();
  SystemInfo machine = CollectSystemInfo(/*sample_busy_ms=*/200);
  json session = {{"started_utc", UtcStamp("%Y-%m-%dT%H:%M:%SZ")}, {"host", machine.hostname},
                  {"load_average_start", machine.load_average}};
  if (!meta.contains("started_utc")) {
    meta = ToJson(machine);
    meta["experiment"] = e.name;
    meta["experiment_file"] = given.path.empty() ? e.path : given.path;
    meta["overrides"] = e.overrides;
    meta["started_utc"] = session["started_utc"];
    meta["git_sha"] = GitShortSha();
    meta["git_dirty"] = GitDirty();
    meta["pinning"] = Pinning(e);
    meta["versions"] = Versions();
    meta["gillab_bin"] = options.gillab_bin;
    meta["load_average_start"] = machine.load_average;
    meta["sessions"] = json::array();
    if (!shard.whole()) meta["shard"] = ShardJson(e, shard);
  }
  meta["modes"] = RunModes(e);  // real, simulate or both (design §13)
  meta["sessions"].push_back(session);
  WriteFileAtomic(dir + "/meta.json", meta.dump(2) + "\n");
  for (const auto& w : machine.warnings) fmt::print(stderr, "gillab run: warning: {}\n", w);

  RunsCsv csv = RunsCsv::Open(dir + "/runs.csv");
  auto points = e.Points();
  std::vector<std::pair<int, int>> pending;
  const auto shard_runs = ShardRuns(e, shard);
  for (const RunId& run : shard_runs)
    if (!csv.Finished(run.point, run.repetition)) pending.push_back({run.point, run.repetition});
  int total = static_cast<int>(shard_runs.size());
  fmt::print(stderr, "gillab run: {}{} -> {}\ngillab run: {} runs to do ({} already finished)\n", e.name,
             shard.whole() ? "" : fmt::format(" shard {}/{}", shard.index, shard.count), dir, pending.size(),
             total - static_cast<int>(pending.size()));

  double estimate_left_s = 0;
  for (const auto& [id, rep] : pending) estimate_left_s += EstimateRunSeconds(points[id], e.warmup);
  double actual_done_s = 0, estimate_done_s = 0;
  int64_t start_ns = gil::KernelNowNs();
  int failures = 0, run_number = 0;
  bool interrupted = false, fatal = false;

  for (int w = 0; w < e.warmup_runs && !pending.empty(); ++w) {
    const Point& p = points[pending[0].first];
    fmt::print(stderr, "gillab run: warm-up run {} of {} (point {}, discarded)\n", w + 1, e.warmup_runs, p.id);
    Outcome o = RunOnce(p, options.gillab_bin, dir + "/raw/warmup_load.json", "", e.warmup, run_number++, 0);
    if (o.interrupted) {
      interrupted = true;
      break;
    }
    if (!o.ok) {
      AppendFailure(dir, p, -1, "warm-up: " + o.error);
      fmt::print(stderr, "gillab run: the warm-up run failed: {}\n", o.error);
      fatal = true;
      break;
    }
  }
  int done = total - static_cast<int>(pending.size());
  for (size_t i = 0; i < pending.size() && !interrupted && !fatal; ++i) {
    const auto& [id, rep] = pending[i];
    const Point& p = points[id];
    std::string stem = fmt::format("{}/raw/p{:03}_r{}", dir, id, rep);
    double estimate_s = EstimateRunSeconds(p, e.warmup);
    int64_t run_start_ns = gil::KernelNowNs();
    Outcome o = RunOnce(p, options.gillab_bin, stem + "_load.json", stem + "_trace.json", e.warmup, run_number++, rep);
    // An outside load generator that crashes is its own bug, not the run's
    // (Debian's siege 4.0.7 segfaults now and then at the end of a timed
    // run): the run is made again, at most kClientCrashRetries times, and
    // each crash is said on stderr and in failures.log.
    for (int retry = 0; !o.ok && o.client_crashed && retry < kClientCrashRetries && !Interrupted(); ++retry) {
      AppendFailure(dir, p, rep, o.error + " (client crash; the run is made again)");
      fmt::print(stderr, "gillab run: point {} rep {}: {}; making the run again\n", id, rep, o.error);
      o = RunOnce(p, options.gillab_bin, stem + "_load.json", stem + "_trace.json", e.warmup, run_number++, rep);
    }
    if (o.interrupted) {
      interrupted = true;
      break;
    }
    actual_done_s += static_cast<double>(gil::KernelNowNs() - run_start_ns) / 1e9;
    estimate_done_s += estimate_s;
    estimate_left_s -= estimate_s;
    if (o.ok) {
      if (!o.serve.is_null()) WriteFileAtomic(stem + "_serve.json", o.serve.dump(2) + "\n");
      Row row = MakeRow(p, rep, o.load, o.serve, o.timing);
      row["cores"] = RunCores(p.settings);
      csv.Append(row);
      ++done;
    } else {
      ++failures;
      AppendFailure(dir, p, rep, o.error);
      fmt::print(stderr, "gillab run: point {} rep {} failed: {}\n", id, rep, o.error);
      fatal = o.fatal;
    }
    double scale = estimate_done_s > 0 ? actual_done_s / estimate_done_s : 1;
    double elapsed_s = static_cast<double>(gil::KernelNowNs() - start_ns) / 1e9;
    fmt::print(stderr, "{}\n", Progress(done, total, p, rep, o, elapsed_s, estimate_left_s * scale));
  }

  meta = json::parse(ReadFile(dir + "/meta.json"), nullptr, false);
  if (!meta.is_object()) meta = json::object();
  std::string load_end = CollectSystemInfo(0).load_average;
  meta["load_average_end"] = load_end;
  if (meta.contains("sessions") && meta["sessions"].is_array() && !meta["sessions"].empty()) {
    auto& last = meta["sessions"].back();
    last["finished_utc"] = UtcStamp("%Y-%m-%dT%H:%M:%SZ");
    last["load_average_end"] = load_end;
    last["runs_finished"] = done;
    last["runs_failed"] = failures;
    last["interrupted"] = interrupted;
  }
  meta["runs_total"] = total;
  meta["runs_finished"] = done;
  WriteFileAtomic(dir + "/meta.json", meta.dump(2) + "\n");

  std::string summary;
  if (done > 0) summary = WriteReport(dir, options.plots && !interrupted);
  // Every stderr line first, then the summary table on stdout in one piece:
  // a reader of both streams (a terminal, `2>&1 | less`) sees the table whole
  // and last, not cut by "results in" where the stdout buffer happened to flush.
  fmt::print(stderr, "gillab run: results in {}\n", dir);
  int status = 0;
  if (interrupted) {
    fmt::print(stderr, "gillab run: interrupted ({}); {} of {} runs finished. Complete it with:\n  gillab run --resume {}\n",
               strsignal(InterruptSignal()), done, total, dir);
    status = 130;
  } else if (fatal || failures > 0) {
    fmt::print(stderr, "gillab run: {} of {} runs finished; failures in {}/failures.log. Retry them with:\n"
                       "  gillab run --resume {}\n", done, total, dir, dir);
    status = 1;
  }
  std::fflush(stderr);
  if (options.print_summary && !summary.empty()) {
    fmt::print("{}", summary);
    std::fflush(stdout);
  }
  return status;
}

}  // namespace gillab::experiments
