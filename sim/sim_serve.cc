// sim_serve.cc — see sim_serve.h. The server loops mirror
// servers/blocking_server.cc and servers/threaded_server.cc (one recv per
// request inside a blocking section, the handler under the lock, each send
// its own blocking section); the load client mirrors servers/load_client.cc.
#include "sim/sim_serve.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <deque>
#include <memory>
#include <optional>
#include <utility>

#include <fmt/core.h>
#include <fmt/format.h>

#include "gil/error.h"
#include "gil/futex.h"
#include "gil/gil.h"
#include "interp/exec_model.h"
#include "servers/payload_source.h"
#include "servers/server_kinds.h"
#include "sim/sim_json.h"

namespace gillab::sim {
namespace {

using servers::BlockingSection;
using servers::IoThread;

// The load client connects and starts this long after the server started
// (the runner starts `gillab load` once serve printed `listening`).
constexpr int64_t kClientStartDelayNs = 1'000'000;

// Values posted by one side and taken by the other, each readable from its
// time on. Taking waits on a FutexWord, so in a virtual thread it is a
// simulator wait. Only one virtual thread runs at a time: no lock needed.
template <typename T>
class Mailbox {
 public:
  void Post(T value, int64_t readable_ns) {
    items_.push_back({std::move(value), readable_ns});
    Bump();
  }
  // No more posts: a Take on an empty mailbox returns nothing.
  void Close() {
    closed_ = true;
    Bump();
  }
  // Waits for the next value (and for it to become readable); nothing once closed and empty.
  std::optional<T> Take(Simulator& sim) {
    for (;;) {
      if (!items_.empty()) {
        Item item = std::move(items_.front());
        items_.pop_front();
        if (const int64_t early_ns = item.readable_ns - sim.now_ns(); early_ns > 0) sim.Sleep(early_ns);
        return std::move(item.value);
      }
      if (closed_) return std::nullopt;
      const uint32_t seen = posted_.Load();
      posted_.WaitWhile(seen, 0);
    }
  }

 private:
  struct Item {
    T value;
    int64_t readable_ns;
  };
  void Bump() {
    posted_.Set(posted_.Load() + 1);
    posted_.Wake();
  }
  std::deque<Item> items_;
  bool closed_ = false;
  gil::FutexWord posted_{0};
};

// Counts virtual threads in and out; Wait returns when all are out.
class WaitGroup {
 public:
  void Add() { live_.Set(live_.Load() + 1); }
  void Done() {
    live_.Set(live_.Load() - 1);
    live_.Wake();
  }
  void Wait() {
    for (uint32_t n = live_.Load(); n != 0; n = live_.Load()) live_.WaitWhile(n, 0);
  }

 private:
  gil::FutexWord live_{0};
};

// One client connection: a mailbox per direction.
struct Connection {
  int index = 0;
  Mailbox<std::string> to_server;
  Mailbox<std::string> to_client;
};

// What a server kind's loop works with (the table's functions take it).
class SimServer {
 public:
  SimServer(Simulator& sim, servers::Engine& engine, const SimServeOptions& options)
      : sim_(sim), engine_(engine), options_(options) {}

  Simulator& sim() { return sim_; }
  servers::Engine& engine() { return engine_; }
  Mailbox<Connection*>& listener() { return listener_; }
  uint64_t requests() const { return requests_; }
  int threads() const { return threads_; }
  void CountThread() { ++threads_; }

  // A syscall: its cost on the caller's core, now.
  void Syscall(int64_t ns) {
    sim_.Charge(ns);
    sim_.Settle();
  }
  // accept(2) in a blocking section; nullptr once the listener is closed (the server's stop).
  Connection* Accept(IoThread& io) {
    BlockingSection released(io);
    std::optional<Connection*> c = listener_.Take(sim_);
    if (!c) return nullptr;
    Syscall(options_.transport.recv_ns);
    return *c;
  }
  // Serves one connection until the client hangs up, as StreamServer::ServeBlocking.
  void Serve(IoThread& io, Connection& c) {
    for (;;) {
      std::optional<std::string> request;
      {
        BlockingSection released(io);
        request = c.to_server.Take(sim_);
        if (request) Syscall(options_.transport.recv_ns);
      }
      if (!request) return;  // end of stream
      if (static_cast<int64_t>(request->size()) > options_.max_message_bytes) return;  // the frame is refused
      std::string reply;
      try {
        reply = io.Handle(*request);
      } catch (const std::runtime_error& e) {
        reply = std::string("error: ") + e.what();  // the client counts a wrong reply
      }
      ++requests_;
      BlockingSection released(io);
      Syscall(options_.transport.send_ns);
      c.to_client.Post(std::move(reply), sim_.now_ns() + options_.transport.one_way_ns);
    }
  }

 private:
  Simulator& sim_;
  servers::Engine& engine_;
  const SimServeOptions& options_;
  Mailbox<Connection*> listener_;
  uint64_t requests_ = 0;
  int threads_ = 0;  // server-side virtual threads started
};

// blocking_server.cc: one thread, one client at a time; the next waits in the backlog.
void RunBlocking(SimServer& s) {
  auto io = s.engine().AttachIo("io");
  while (Connection* c = s.Accept(*io)) s.Serve(*io, *c);
}

// threaded_server.cc: the acceptor starts one I/O thread per connection and,
// at the stop, joins them with the lock released.
void RunThreaded(SimServer& s) {
  auto io = s.engine().AttachIo("io-accept");
  WaitGroup workers;
  int next_id = 0;
  while (Connection* c = s.Accept(*io)) {
    workers.Add();
    s.CountThread();
    std::string name = fmt::format("io-{}", next_id++);
    s.sim().Spawn(name, [&s, &workers, c, name] {
      {
        auto conn_io = s.engine().AttachIo(name);
        s.Serve(*conn_io, *c);
      }
      workers.Done();
    });
  }
  BlockingSection released(*io);
  workers.Wait();
}

struct SimServerKind {
  std::string_view name;
  void (*run)(SimServer& server);  // the server's loop, until the listener closes
};

// The server kinds in virtual time: a new kind is one row (and its loop).
const std::vector<SimServerKind>& SimServerKinds() {
  static const std::vector<SimServerKind> kinds = {
      {"blocking", RunBlocking},
      {"threaded", RunThreaded},
  };
  return kinds;
}

// Splits n over c connections, the first ones taking the remainder (load_client.cc).
int64_t Share(int64_t n, int c, int i) { return n / c + (i < n % c ? 1 : 0); }

struct ClientFigures {
  gil::Histogram latency_ns;
  int64_t ok = 0;
  int64_t errors = 0;
  int64_t unsent = 0;
  int64_t finish_ns = 0;
  std::vector<std::string> messages;
};

void CheckOptions(const SimServeOptions& o) {
  if (o.engine.engine != "toy") {
    throw UsageError(fmt::format("simulate-serve runs the toy engine only (got --engine {})", o.engine.engine));
  }
  const auto& kinds = SimServerKinds();
  if (std::none_of(kinds.begin(), kinds.end(), [&](const SimServerKind& k) { return k.name == o.server; })) {
    throw UsageError(fmt::format("simulate-serve models the server kinds {} (got --server {})",
                                 fmt::join(SimServerKindNames(), ", "), o.server));
  }
  const auto& policies = gil::PolicyNames();
  if (std::find(policies.begin(), policies.end(), o.engine.policy) != policies.end() &&
      gil::PolicyTraitsOf(o.engine.policy).uses_ticks) {
    throw UsageError(fmt::format("simulate does not model policy '{}' yet (its tick yield leaves no window in "
                                 "virtual time)", o.engine.policy));
  }
  const servers::LoadOptions& l = o.load;
  if (l.protocol != "frame") throw UsageError("simulate-serve models the frame protocol only (not --protocol http)");
  if (l.requests < 1) throw UsageError("--requests must be at least 1");
  if (l.connections < 1 || l.connections > 10000) throw UsageError("--connections must be from 1 to 10000");
  if (l.think_us < 0 || l.rate < 0 || l.warmup < 0 || l.message_bytes < 0)
    throw UsageError("--think-us, --rate, --warmup and --message-bytes must be >= 0");
  if (l.rate > 0 && l.think_us > 0) throw UsageError("--think-us and --rate exclude each other");
  if (o.sim.os.cores < 1) throw UsageError(fmt::format("--cores must be >= 1, got {}", o.sim.os.cores));
  const TransportCosts& t = o.transport;
  if (t.send_ns < 0 || t.recv_ns < 0 || t.one_way_ns < 0) throw UsageError("transport costs must be >= 0");
}

}  // namespace

std::vector<std::string> SimServerKindNames() {
  std::vector<std::string> names;
  for (const SimServerKind& k : SimServerKinds()) names.emplace_back(k.name);
  return names;
}

SimServeResult RunSimServe(const SimServeOptions& options) {
  CheckOptions(options);
  const SimServerKind& kind =
      *std::find_if(SimServerKinds().begin(), SimServerKinds().end(), [&](const SimServerKind& k) { return k.name == options.server; });
  const servers::LoadOptions& lo = options.load;
  const auto host_t0 = std::chrono::steady_clock::now();

  Simulator sim(options.sim);
  SimModel* model = nullptr;
  servers::EngineOptions engine_options = options.engine;
  engine_options.stall_threshold_ms = 0;  // no stall monitor thread: nothing stalls unseen in virtual time
  engine_options.os_priority.clear();     // no OS priorities: the simulated OS has none
  engine_options.trace = !options.trace_path.empty();
  engine_options.wrap_model = [&](std::unique_ptr<interp::ExecModel> inner) -> std::unique_ptr<interp::ExecModel> {
    auto wrapped = std::make_unique<SimModel>(std::move(inner), sim, options.model);
    model = wrapped.get();
    return wrapped;
  };
  engine_options.spawn_thread = [&sim](std::string name, std::function<void()> body) {
    sim.Spawn(std::move(name), std::move(body));
  };
  std::unique_ptr<servers::Engine> engine = servers::MakeEngine(engine_options);
  SimServer server(sim, *engine, options);

  // The server: CPU threads, the kind's loop until the stop, CPU threads stopped.
  sim.Spawn("serve", [&] {
    server.CountThread();
    engine->StartCpuThreads();
    kind.run(server);
    engine->StopCpuThreads();
  });

  // The load client: C connections, warm-up, a barrier, the measured requests.
  const int c = lo.connections;
  std::vector<std::unique_ptr<Connection>> connections;
  std::vector<ClientFigures> figures(static_cast<size_t>(c));
  int64_t start_ns = 0;
  int at_barrier = 0;
  gil::FutexWord started{0};
  const bool open_loop = lo.rate > 0;
  const double gap_ns = open_loop ? 1e9 / lo.rate : 0;
  const TransportCosts& t = options.transport;

  auto client = [&](int i) {
    Connection& conn = *connections[static_cast<size_t>(i)];
    ClientFigures& w = figures[static_cast<size_t>(i)];
    servers::PayloadSource payloads(static_cast<size_t>(lo.message_bytes), lo.seed * 1000003 + static_cast<uint64_t>(i));
    std::string request;
    bool failed = false;
    auto exchange = [&](int64_t intended_ns, bool measured) {
      if (lo.payload.empty()) payloads.Next(request);
      else request = lo.payload;
      const int64_t sent_ns = sim.now_ns();
      sim.Charge(t.send_ns);
      sim.Settle();
      conn.to_server.Post(request, sim.now_ns() + t.one_way_ns);
      std::optional<std::string> reply = conn.to_client.Take(sim);
      if (!reply) {
        ++w.errors;
        failed = true;
        if (w.messages.size() < 3) w.messages.push_back(fmt::format("connection {}: closed by the server", i));
        return;
      }
      sim.Charge(t.recv_ns);
      sim.Settle();
      const int64_t done_ns = sim.now_ns();
      if (lo.expect_echo && *reply != request) {
        ++w.errors;
        if (w.messages.size() < 3)
          w.messages.push_back(fmt::format("connection {}: wrong reply: {} bytes for a {}-byte request", i,
                                           reply->size(), request.size()));
        return;
      }
      if (measured) {
        w.latency_ns.Record(done_ns - (open_loop ? intended_ns : sent_ns));
        ++w.ok;
      }
    };
    const int64_t warmup = Share(lo.warmup, c, i);
    for (int64_t k = 0; k < warmup && !failed; ++k) exchange(0, false);
    // The barrier: the last connection to arrive starts the clock.
    if (++at_barrier == c) {
      start_ns = sim.now_ns();
      started.Set(1);
      started.Wake();
      for (int n = 1; n < c; ++n) started.Wake();
    }
    while (started.Load() == 0) started.WaitWhile(0, 0);
    const int64_t requests = Share(lo.requests, c, i);
    int64_t k = 0;
    for (; k < requests && !failed; ++k) {
      int64_t intended_ns = 0;
      if (open_loop) {
        intended_ns = start_ns + static_cast<int64_t>((static_cast<double>(k) * c + i) * gap_ns);
        if (const int64_t early_ns = intended_ns - sim.now_ns(); early_ns > 0) sim.Sleep(early_ns);
      }
      exchange(intended_ns, true);
      if (lo.think_us > 0 && !failed) sim.Sleep(lo.think_us * 1000);
    }
    w.unsent = requests - k;
    w.finish_ns = sim.now_ns();
    conn.to_server.Close();  // hang up
  };

  sim.Spawn("load", [&] {
    sim.Sleep(kClientStartDelayNs);
    WaitGroup clients;
    for (int i = 0; i < c; ++i) {
      // connect(2): queued in the listener's backlog in order, before any request.
      connections.push_back(std::make_unique<Connection>());
      connections.back()->index = i;
      sim.Charge(t.send_ns);
      server.listener().Post(connections.back().get(), sim.now_ns() + t.one_way_ns);
    }
    for (int i = 0; i < c; ++i) {
      clients.Add();
      sim.Spawn(fmt::format("client-{}", i), [&, i] {
        client(i);
        clients.Done();
      });
    }
    clients.Wait();
    server.listener().Close();  // the runner's SIGTERM once the load is done
  });
  sim.Run();

  SimServeResult out;
  out.host_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - host_t0).count();
  out.stats = sim.stats();
  out.instructions = model != nullptr ? model->instructions() : 0;

  servers::LoadResult& load = out.load;
  load.options = lo;
  load.transport = "stream";
  int64_t finish_ns = start_ns;
  for (const ClientFigures& w : figures) {
    load.requests += w.ok;
    load.errors += w.errors;
    load.unsent += w.unsent;
    load.latency_ns.Merge(w.latency_ns);
    finish_ns = std::max(finish_ns, w.finish_ns);
    for (const auto& m : w.messages) load.error_messages.push_back(m);
  }
  load.seconds = static_cast<double>(finish_ns - start_ns) / 1e9;

  // gillab serve's exit JSON (serve_command.cc), deterministic.
  nlohmann::json stats = engine->Stats();
  if (!stats.is_object()) stats = nlohmann::json{{"engine_stats", stats}};
  if (auto threads = stats.find("threads"); threads != stats.end() && threads->is_array()) {
    int64_t order = 0;
    for (auto& thread : *threads) {
      if (thread.is_object() && thread.contains("tid")) thread["tid"] = order;  // attach order, not an OS tid
      ++order;
    }
  }
  stats["server"] = options.server;
  stats["endpoint"] = lo.endpoint;
  stats["requests"] = server.requests();
  stats["max_message_bytes"] = options.max_message_bytes;
  stats["protocol"] = lo.protocol;
  // Server-side virtual threads (serve, CPU, I/O): a real serve also counts
  // its signal and sampling threads.
  stats["threads_max"] = server.threads() + options.engine.cpu_threads;
  stats.update(SimFieldsJson(options.sim, options.model, out.stats, out.instructions));
  stats["transport"] = {{"send_ns", t.send_ns}, {"recv_ns", t.recv_ns}, {"one_way_ns", t.one_way_ns}};
  if (!options.trace_path.empty()) {
    engine->WriteTrace(options.trace_path, stats);
    stats["trace"] = options.trace_path;
  }
  out.serve = std::move(stats);
  return out;
}

}  // namespace gillab::sim
