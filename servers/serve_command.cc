// serve_command.cc — `gillab serve`: one engine, one server, until a signal.
//
// Order of events, which tests and the experiment runner rely on (design §5):
//   1. SIGINT and SIGTERM are blocked before any thread exists, so every
//      thread inherits the mask and only the sigwait thread ever sees them.
//   2. MakeEngine, MakeServer, Bind, StartCpuThreads; then exactly one line
//      "listening ENDPOINT" (port resolved) on stdout, flushed.
//   3. Run() on this thread until the sigwait thread calls Stop().
//   4. StopCpuThreads, then one JSON object on stdout: the engine's Stats()
//      plus "server", "endpoint", "requests" (requests answered). With
//      --trace FILE the lock timeline is written first, that object as its metadata.
// Bad flags or values throw UsageError or CLI11's ParseError (exit 2); each
// flag that sets an experiment setting is checked by that setting's one rule
// (servers/settings.h), so serve and an experiment file refuse the same values.
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/core.h>
#include <fmt/format.h>

#include "gil/error.h"
#include "gil/gil.h"
#include "gil/thread_priority.h"
#include "servers/commands.h"
#include "interp/stm_model.h"
#include "servers/engine.h"
#include "servers/engine_kinds.h"
#include "servers/http_routes.h"
#include "servers/server.h"
#include "servers/server_kinds.h"
#include "servers/settings.h"
#include "servers/stream_protocol.h"

namespace gillab::servers {
namespace {

struct ServeFlags {
  std::string server;
  EngineOptions engine;
  std::string lock_priority;
  std::string os_priority;
  std::string endpoint;
  uint64_t max_message_bytes = kDefaultMaxMessageBytes;
  std::string trace_path;  // --trace: lock timeline (toy engine)
  std::string protocol = "frame";      // stream servers: frame | http
  std::string http_parser = "native";  // http: native | vm
  int workers = 2;                       // transactional, parallel: worker threads
  std::string framework_clock = "none";  // transactional: now_ns | transaction_time | none
  std::vector<std::string> mounts;     // http: /PATH=FILE
  int64_t context_max_bytes = 0;       // parallel: per-context arena limit (0: none)
  std::string hub_release;             // green: every_call (default) | poll
};

// Counts the requests the server answered, whatever the server kind, by
// sitting between the server and the engine.
// A handler id that is not a request (the vm http parser) is not counted.
class CountingEngine final : public Engine {
 public:
  explicit CountingEngine(Engine& inner, size_t uncounted_id = 0) : inner_(inner), uncounted_id_(uncounted_id) {}

  std::string_view name() const override { return inner_.name(); }
  std::unique_ptr<IoThread> AttachIo(std::string thread_name) override {
    return std::make_unique<CountingIo>(inner_.AttachIo(std::move(thread_name)), requests_, uncounted_id_);
  }
  std::unique_ptr<ContextWorker> AttachContextWorker(std::string thread_name, int64_t context_max_bytes) override {
    return std::make_unique<CountingWorker>(inner_.AttachContextWorker(std::move(thread_name), context_max_bytes),
                                            requests_, uncounted_id_);
  }
  void StartCpuThreads() override { inner_.StartCpuThreads(); }
  void StopCpuThreads() override { inner_.StopCpuThreads(); }
  nlohmann::json Stats() const override { return inner_.Stats(); }
  void WriteTrace(const std::string& path, const nlohmann::json& run) const override { inner_.WriteTrace(path, run); }
  uint64_t requests() const { return requests_.load(std::memory_order_relaxed); }

 private:
  class CountingIo final : public IoThread {
   public:
    CountingIo(std::unique_ptr<IoThread> inner, std::atomic<uint64_t>& requests, size_t uncounted_id)
        : inner_(std::move(inner)), requests_(requests), uncounted_id_(uncounted_id) {}
    std::string Handle(std::string_view request) override {
      std::string reply = inner_->Handle(request);
      requests_.fetch_add(1, std::memory_order_relaxed);
      return reply;
    }
    std::string HandleWith(size_t id, std::string_view request) override {
      std::string reply = inner_->HandleWith(id, request);
      if (id == 0 || id != uncounted_id_) requests_.fetch_add(1, std::memory_order_relaxed);
      return reply;
    }
    // The green server's calls (design §10): counted when they finish.
    std::unique_ptr<HandlerCall> StartCall(size_t id, std::string_view request) override {
      auto call = inner_->StartCall(id, request);
      if (id != 0 && id == uncounted_id_) return call;
      return std::make_unique<CountedCall>(std::move(call), requests_);
    }
    void BeginBlocking() override { inner_->BeginBlocking(); }
    void EndBlocking() override { inner_->EndBlocking(); }
    uint64_t blocking_sections() const override { return inner_->blocking_sections(); }

   private:
    class CountedCall final : public HandlerCall {
     public:
      CountedCall(std::unique_ptr<HandlerCall> inner, std::atomic<uint64_t>& requests)
          : inner_(std::move(inner)), requests_(requests) {}
      Step Resume() override {
        const Step step = inner_->Resume();
        if (step == Step::kDone) requests_.fetch_add(1, std::memory_order_relaxed);
        return step;
      }
      int64_t wait_us() const override { return inner_->wait_us(); }
      std::string TakeReply() override { return inner_->TakeReply(); }
      std::string where() const override { return inner_->where(); }
      size_t bytes() const override { return inner_->bytes(); }

     private:
      std::unique_ptr<HandlerCall> inner_;
      std::atomic<uint64_t>& requests_;
    };

    std::unique_ptr<IoThread> inner_;
    std::atomic<uint64_t>& requests_;
    size_t uncounted_id_;
  };

  // The parallel server's workers, counted the same way.
  class CountingWorker final : public ContextWorker {
   public:
    CountingWorker(std::unique_ptr<ContextWorker> inner, std::atomic<uint64_t>& requests, size_t uncounted_id)
        : inner_(std::move(inner)), requests_(requests), uncounted_id_(uncounted_id) {}
    std::string Handle(std::string_view request) override { return HandleWith(0, request); }
    std::string HandleWith(size_t id, std::string_view request) override {
      std::string reply = inner_->HandleWith(id, request);
      if (id == 0 || id != uncounted_id_) requests_.fetch_add(1, std::memory_order_relaxed);
      return reply;
    }
    void BeginBlocking() override {}
    void EndBlocking() override {}
    uint64_t blocking_sections() const override { return 0; }
    int64_t StopIfRunningLongerThan(int64_t threshold_ms) override { return inner_->StopIfRunningLongerThan(threshold_ms); }

   private:
    std::unique_ptr<ContextWorker> inner_;
    std::atomic<uint64_t>& requests_;
    size_t uncounted_id_;
  };

  Engine& inner_;
  size_t uncounted_id_;
  std::atomic<uint64_t> requests_{0};
};

void CheckHandler(const std::string& handler) {
  if (handler == "echo" || handler == "primes" || handler == "primes_list") return;  // shipped (interp/programs/)
  std::ifstream file(handler);
  if (!file) throw UsageError(fmt::format("cannot read handler file '{}'", handler));
}

// Waits for SIGINT/SIGTERM (blocked everywhere else) and stops the server.
// Dismiss() ends it when Run returned for another reason.
class SignalWaiter {
 public:
  SignalWaiter(const sigset_t& signals, Server& server) : signals_(signals) {
    thread_ = std::thread([this, &server] {
      int signal = 0;
      sigwait(&signals_, &signal);
      if (!dismissed_.load(std::memory_order_acquire)) server.Stop();
    });
  }
  ~SignalWaiter() {
    dismissed_.store(true, std::memory_order_release);
    // Wakes the sigwait if no signal came; harmless if the thread already
    // returned (it is not joined yet, so the handle is still valid).
    pthread_kill(thread_.native_handle(), SIGTERM);
    thread_.join();
  }

 private:
  sigset_t signals_;
  std::atomic<bool> dismissed_{false};
  std::thread thread_;
};

// The process's thread count (/proc/self/status), sampled every 50 ms while
// the server runs: its peak is what a thread-per-connection server paid
// (C10K, design §10). Stop() joins at once.
class ThreadCountSampler {
 public:
  ThreadCountSampler() : thread_([this] { Loop(); }) {}
  ~ThreadCountSampler() { Stop(); }
  void Stop() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  int64_t peak() const { return peak_.load(); }

 private:
  static int64_t Now() {
    std::ifstream in("/proc/self/status");
    for (std::string line; std::getline(in, line);) {
      if (line.starts_with("Threads:")) return std::stoll(line.substr(8));
    }
    return 0;
  }
  void Loop() {
    std::unique_lock lock(mu_);
    while (!stop_) {
      peak_.store(std::max(peak_.load(), Now()));
      cv_.wait_for(lock, std::chrono::milliseconds(50), [this] { return stop_; });
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::atomic<int64_t> peak_{0};
  std::thread thread_;
};

// The hub's figures (green server) also as the hub thread's model figures
// (servers/engine_stats.h ModelFigureSpecs), which the runner's rows read.
void AddHubFigures(nlohmann::json& stats, const nlohmann::json& hub) {
  auto threads = stats.find("threads");
  if (threads == stats.end() || !threads->is_array()) return;
  for (auto& t : *threads) {
    if (!t.is_object() || t.value("name", "") != "hub") continue;
    t["model"]["green_switches"] = hub["resumes"];
    t["model"]["ready_queue_p99_ns"] = hub["sched_latency_ns"]["p99"];
  }
}

// The nonblocking server is meant to hold many idle connections (10,000 in
// the measurement); the default soft limit of 1024 descriptors would
// stop it early, so lift the soft limit to the hard one. Returns the limit.
uint64_t RaiseOpenFileLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return 0;
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
    getrlimit(RLIMIT_NOFILE, &limit);
  }
  return limit.rlim_cur;
}

// --protocol http: the routes, the handlers the engine must load for them
// (EngineOptions::extra_handlers, ids from 1) and, with --http-parser vm, the
// parser program as one more handler (design §11).
void ConfigureHttp(ServeFlags& flags, ServerOptions& server) {
  if (flags.protocol != "http") {
    if (flags.http_parser != "native" || !flags.mounts.empty()) {
      throw UsageError("--http-parser and --mount need --protocol http");
    }
    return;
  }
  if (RequireServerKind(flags.server).transport != Transport::kStream) {
    std::vector<std::string> stream_kinds;
    for (const ServerKind& kind : ServerKindTable()) {
      if (kind.transport == Transport::kStream) stream_kinds.emplace_back(kind.name);
    }
    throw UsageError(fmt::format("--protocol http needs a stream server ({}); the {} server "
                                 "speaks only its message transport",
                                 fmt::join(stream_kinds, ", "), flags.server));
  }
  for (const std::string& mount : flags.mounts) {
    const size_t eq = mount.find('=');
    if (eq != std::string::npos) CheckHandler(mount.substr(eq + 1));
  }
  auto routes = std::make_shared<HttpRoutes>(flags.mounts);
  if (flags.http_parser == "vm") {
    if (!RequireEngineKind(flags.engine.engine).toy_vm) {
      throw UsageError(fmt::format("--http-parser vm runs a parser written for the toy VM, under its lock; the {} engine "
                                   "has no toy VM (use --http-parser native)",
                                   flags.engine.engine));
    }
    server.http_parser_handler_id = routes->AddHandler("http_request");
  }
  flags.engine.extra_handlers = routes->handler_names();
  server.http_routes = std::move(routes);
}

void Serve(ServeFlags flags) {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  if (!flags.lock_priority.empty()) {
    flags.engine.lock_priority = gil::ParseLockPriorities(flags.lock_priority);
  }
  if (!flags.os_priority.empty()) flags.engine.os_priority = gil::ParseOsPriorities(flags.os_priority);
  CheckHandler(flags.engine.handler);
  if (!flags.trace_path.empty()) {
    gil::CheckTracePathWritable(flags.trace_path);  // refuse before serving, not at exit
    flags.engine.trace = true;
  }
  if (flags.endpoint.empty())
    flags.endpoint = DefaultEndpoint(RequireServerKind(flags.server), fmt::format("gillab-{}", ::getpid()));

  ServerOptions server_options{.kind = flags.server, .endpoint = flags.endpoint,
                               .max_message_bytes = flags.max_message_bytes, .protocol = flags.protocol,
                               .http_parser = flags.http_parser, .http_routes = nullptr,
                               .http_parser_handler_id = 0, .workers = flags.workers,
                               .context_max_bytes = flags.context_max_bytes,
                               .context_stall_ms = flags.engine.stall_threshold_ms,
                               .switch_interval_us = flags.engine.gil.switch_interval_us,
                               .hub_releases_every_call = flags.hub_release != "poll"};
  ConfigureHttp(flags, server_options);
  // A kind that runs a framework gets it around every handler call (design §12).
  if (RequireServerKind(flags.server).runs_framework) flags.engine.framework_clock = flags.framework_clock;
  if (!flags.hub_release.empty() && !RequireServerKind(flags.server).hub) {
    throw UsageError(fmt::format("--hub-release needs a server with a hub (green); the {} server has none", flags.server));
  }

  const uint64_t max_open_files = RaiseOpenFileLimit();
  std::unique_ptr<Engine> engine = MakeEngine(flags.engine);
  CountingEngine counting(*engine, server_options.http_parser_handler_id);
  std::unique_ptr<Server> server = MakeServer(server_options, counting);
  server->Bind();
  ThreadCountSampler thread_count;
  {
    SignalWaiter waiter(signals, *server);
    counting.StartCpuThreads();
    fmt::print("listening {}\n", server->endpoint());
    std::fflush(stdout);
    try {
      server->Run();
    } catch (...) {
      counting.StopCpuThreads();
      throw;
    }
  }
  counting.StopCpuThreads();
  thread_count.Stop();
  nlohmann::json stats = counting.Stats();
  if (!stats.is_object()) stats = nlohmann::json{{"engine_stats", stats}};
  stats["server"] = flags.server;
  stats["endpoint"] = server->endpoint();
  stats["requests"] = counting.requests();
  stats["max_message_bytes"] = flags.max_message_bytes;
  stats["max_open_files"] = max_open_files;
  stats["protocol"] = flags.protocol;
  if (flags.protocol == "http") stats["http_parser"] = flags.http_parser;
  const ServerKind& kind = RequireServerKind(flags.server);
  if (kind.worker_pool) stats["workers"] = flags.workers;
  if (kind.runs_framework) stats["framework_clock"] = flags.framework_clock;
  if (kind.parallel_contexts) stats["context_max_bytes"] = flags.context_max_bytes;
  if (nlohmann::json hub = server->Stats(); !hub.is_null()) {
    AddHubFigures(stats, hub);
    stats["hub"] = std::move(hub);
  }
  rusage usage{};
  if (getrusage(RUSAGE_SELF, &usage) == 0) stats["max_rss_kb"] = usage.ru_maxrss;
  stats["threads_max"] = thread_count.peak();
  if (!flags.trace_path.empty()) {
    counting.WriteTrace(flags.trace_path, stats);
    stats["trace"] = flags.trace_path;
  }
  fmt::print("{}\n", stats.dump());
  std::fflush(stdout);
  // The stm conflict report, as text, beside the JSON (print_stm_log.py's shape).
  if (stats.contains("model_report")) fmt::print(stderr, "{}", interp::FormatStmReport(stats["model_report"]));
}

}  // namespace

void AddServeCommand(CLI::App& app) {
  auto flags = std::make_shared<ServeFlags>();
  CLI::App* cmd = app.add_subcommand("serve", "Run one request/reply server until SIGINT/SIGTERM");
  cmd->add_option("--server", flags->server, "Server kind")->required()->check(SettingValidator("server"));
  cmd->add_option("--engine", flags->engine.engine, "Engine running the handler")
      ->required()
      ->check(SettingValidator("engine"));
  cmd->add_option("--policy", flags->engine.policy, "Execution model: a lock policy or stm (toy engine)")
      ->check(SettingValidator("policy"))
      ->capture_default_str();
  cmd->add_option("--switch-interval-us", flags->engine.gil.switch_interval_us,
                  "Waiter timeout before asking the holder to drop")
      ->check(SettingValidator("switch_interval_us"))
      ->capture_default_str();
  cmd->add_option("--check-interval", flags->engine.gil.check_interval,
                  "Instructions between forced releases (mutex policy)")
      ->check(SettingValidator("check_interval"))
      ->capture_default_str();
  cmd->add_option("--cpu-threads", flags->engine.cpu_threads, "CPU-bound threads competing for the lock")
      ->check(SettingValidator("cpu_threads"))
      ->capture_default_str();
  cmd->add_option("--handler", flags->engine.handler, "echo, primes, or a program file")
      ->check(SettingValidator("handler"))
      ->capture_default_str();
  cmd->add_option("--work-units", flags->engine.work_units, "Loop iterations per echo request")
      ->check(SettingValidator("work_units"))
      ->capture_default_str();
  cmd->add_option("--lock-priority", flags->lock_priority, "Lock priority per role, e.g. io=1,cpu=0")
      ->check(SettingValidator("lock_priority"));
  cmd->add_option("--os-priority", flags->os_priority, "OS priority per role, e.g. cpu=nice:10")
      ->check(SettingValidator("os_priority"));
  cmd->add_option("--endpoint", flags->endpoint,
                  "tcp://HOST:PORT (port 0: any free port) or ipc://NAME "
                  "(default tcp://127.0.0.1:0; multiprocessing: ipc://gillab-PID)");
  cmd->add_option("--max-message-bytes", flags->max_message_bytes, "Largest request accepted")
      ->check(SettingValidator("max_message_bytes"))
      ->capture_default_str();
  cmd->add_option("--workers", flags->workers, "transactional, parallel: worker threads running the handler calls")
      ->check(SettingValidator("workers"))
      ->capture_default_str();
  cmd->add_option("--framework-clock", flags->framework_clock,
                  "transactional: the framework's clock: now_ns | transaction_time | none")
      ->check(SettingValidator("framework_clock"))
      ->capture_default_str();
  cmd->add_option("--protocol", flags->protocol,
                  "Stream servers: frame (length-prefixed) or http (HTTP/1.1 targets POST /echo, GET /primes/N, "
                  "GET /static, GET /)")
      ->check(SettingValidator("protocol"))
      ->capture_default_str();
  cmd->add_option("--http-parser", flags->http_parser,
                  "http: native (C++, Beast, lock released) or vm (toy program http_request, under the lock; toy engine)")
      ->check(SettingValidator("http_parser"))
      ->capture_default_str();
  cmd->add_option("--hub-release", flags->hub_release,
                  "green: release the lock around every socket call (every_call, as gevent) or only around "
                  "epoll_wait (poll)")
      ->check(SettingValidator("hub_release"));
  cmd->add_option("--mount", flags->mounts,
                  "http: serve a handler program at a path, /PATH=FILE (repeatable); it gets the body (POST) or the "
                  "path's tail after /PATH/ (GET)");
  cmd->add_option("--context-max-bytes", flags->context_max_bytes,
                  "parallel: bytes one handler's context may allocate; past it that request fails (0: no limit)")
      ->check(SettingValidator("context_max_bytes"))
      ->capture_default_str();
  cmd->add_option("--trace", flags->trace_path,
                  "Write a lock timeline (Chrome trace-event JSON, opens in Perfetto) to FILE at exit (toy engine)");
  cmd->add_option("--trace-max-events", flags->engine.trace_options.max_events_per_thread,
                  "Trace: events kept per thread; later ones are dropped and counted")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->callback([flags] { Serve(*flags); });
}

}  // namespace gillab::servers
