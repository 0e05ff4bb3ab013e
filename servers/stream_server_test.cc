// stream_server_test.cc — the blocking, nonblocking and threaded servers end
// to end on loopback: echo, bad input, concurrency, shutdown, and the lock
// discipline of design §1 (checked with FakeEngine, whose lock the test can
// hold itself).
#include "servers/stream_server.h"

#include <dirent.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <set>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <fmt/core.h>
#include <gtest/gtest.h>

#include "gil/error.h"
#include "servers/fake_engine_test_util.h"
#include "servers/server.h"
#include "servers/socket.h"
#include "servers/wait_for_test_util.h"

namespace gillab::servers {
namespace {

using namespace std::chrono_literals;

constexpr int kClientTimeoutMs = 10000;  // a hung server fails the test instead of hanging it

// try_lock in a bounded loop (a timed lock would hide the wait from TSan).
bool LockWithin(std::mutex& mutex, std::chrono::milliseconds limit) {
  return WaitFor([&] { return mutex.try_lock(); }, limit);
}

// The tids of this process's threads, from /proc/self/task.
std::set<int> ThreadIds() {
  std::set<int> tids;
  DIR* dir = opendir("/proc/self/task");
  while (dirent* entry = readdir(dir))
    if (entry->d_name[0] != '.') tids.insert(std::atoi(entry->d_name));
  closedir(dir);
  return tids;
}

int ThreadCount() { return static_cast<int>(ThreadIds().size()); }

// "TID (NAME) STATE" of a thread of this process, or "TID (gone)".
std::string DescribeThread(int tid) {
  std::ifstream stat(fmt::format("/proc/self/task/{}/stat", tid));
  std::string line;
  if (!std::getline(stat, line)) return fmt::format("{} (gone)", tid);
  const size_t close = line.rfind(')');
  return fmt::format("{} {} state {}", tid, line.substr(line.find('('), close - line.find('(') + 1),
                     close + 2 < line.size() ? line.substr(close + 2, 1) : "?");
}

// Waits, bounded, until the process has at most `expected` threads.
// pthread_join returns when the kernel clears the thread's tid word (in
// exit_mm), which comes before the kernel drops the task from /proc/self/task
// (exit_notify): a count taken right after a join can still see the joined
// thread for a moment. A thread that really outlives Stop is still there
// after `limit`; the message names every thread then.
::testing::AssertionResult ThreadCountFallsTo(int expected, std::chrono::milliseconds limit = 2000ms) {
  if (WaitFor([&] { return ThreadCount() <= expected; }, limit)) return ::testing::AssertionSuccess();
  std::string threads;
  for (int tid : ThreadIds()) threads += " [" + DescribeThread(tid) + "]";
  return ::testing::AssertionFailure() << ThreadCount() << " threads, expected " << expected << " within "
                                       << limit.count() << " ms:" << threads;
}

std::string Payload(size_t bytes, uint32_t seed) {
  std::mt19937 random(seed);
  std::string out(bytes, '\0');
  for (char& c : out) c = static_cast<char>(random());
  return out;
}

// A server running on its own thread; destruction stops and joins it.
class RunningServer {
 public:
  RunningServer(const std::string& kind, Engine& engine, uint64_t max_message_bytes = kDefaultMaxMessageBytes)
      : server_(MakeServer({.kind = kind, .endpoint = "tcp://127.0.0.1:0", .max_message_bytes = max_message_bytes},
                           engine)) {
    server_->Bind();
    thread_ = std::thread([this] {
      run_tid_.store(static_cast<int>(gettid()));
      server_->Run();
    });
  }
  // The tid of the thread running Run() (0 until it started).
  int run_tid() const { return run_tid_.load(); }
  ~RunningServer() { Stop(); }
  void Stop() {
    if (!thread_.joinable()) return;
    server_->Stop();
    thread_.join();
  }
  TcpEndpoint endpoint() const { return ParseTcpEndpoint(server_->endpoint()); }

 private:
  std::unique_ptr<Server> server_;
  std::atomic<int> run_tid_{0};
  std::thread thread_;
};

// A blocking test client speaking the stream framing.
class Client {
 public:
  explicit Client(const RunningServer& server) : fd_(ConnectTcp(server.endpoint())) {
    SetRecvTimeoutMs(fd_.get(), kClientTimeoutMs);
  }
  int fd() const { return fd_.get(); }
  std::string local_name() const {
    TcpEndpoint me = LocalEndpoint(fd_.get());
    return me.host + ":" + std::to_string(me.port);
  }
  void Send(std::string_view payload) { ASSERT_TRUE(SendFrame(fd_.get(), payload)) << std::strerror(errno); }
  void SendRaw(std::string_view bytes) { ASSERT_TRUE(SendAll(fd_.get(), bytes)) << std::strerror(errno); }
  std::string Receive() {
    std::string reply;
    const RecvFrameResult result = RecvFrame(fd_.get(), reader_, reply);
    EXPECT_EQ(result, RecvFrameResult::kFrame) << "errno: " << std::strerror(errno);
    return reply;
  }
  std::string RoundTrip(std::string_view payload) {
    Send(payload);
    return Receive();
  }
  // True once the server has closed the connection (FIN or RST), false on timeout.
  bool ClosedByServer() {
    char buf[4096];
    for (;;) {
      const ssize_t n = RecvSome(fd_.get(), buf, sizeof buf);
      if (n == 0) return true;
      if (n < 0) return errno == ECONNRESET;
    }
  }
  void Reset() {  // close with RST instead of FIN
    linger hard{.l_onoff = 1, .l_linger = 0};
    setsockopt(fd_.get(), SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
    fd_.reset();
  }
  void Close() { fd_.reset(); }

 private:
  UniqueFd fd_;
  FrameReader reader_{uint64_t{1} << 30};
};

std::string BigEndian32(uint32_t n) {
  return {static_cast<char>(n >> 24), static_cast<char>(n >> 16), static_cast<char>(n >> 8), static_cast<char>(n)};
}

// ---------------------------------------------------------------------------
// Every stream server, with every engine.

struct Param {
  std::string kind;
  std::string engine;  // fake | native | toy
};

std::string ParamName(const testing::TestParamInfo<Param>& info) {
  return info.param.kind + "_" + info.param.engine;
}

class StreamServerTest : public testing::TestWithParam<Param> {
 protected:
  void SetUp() override {
    if (GetParam().engine == "fake") {
      owned_engine_ = std::make_unique<FakeEngine>();
      fake_ = static_cast<FakeEngine*>(owned_engine_.get());
    } else {
      EngineOptions options;
      options.engine = GetParam().engine;
      owned_engine_ = MakeEngine(options);
    }
  }
  void TearDown() override {
    if (fake_ == nullptr) return;
    EXPECT_EQ(fake_->violations(), 0u) << "Handle ran, or a blocking section began, without the lock";
    EXPECT_EQ(fake_->attached(), fake_->detached()) << "an I/O thread did not detach";
  }
  Engine& engine() { return *owned_engine_; }

  std::unique_ptr<Engine> owned_engine_;
  FakeEngine* fake_ = nullptr;
};

TEST_P(StreamServerTest, EchoesEveryPayloadSize) {
  RunningServer server(GetParam().kind, engine());
  Client client(server);
  for (size_t bytes : {size_t{0}, size_t{1}, size_t{64}, size_t{64} << 10, size_t{1} << 20}) {
    const std::string payload = Payload(bytes, static_cast<uint32_t>(bytes));
    EXPECT_EQ(client.RoundTrip(payload), payload) << bytes << " bytes";
  }
}

TEST_P(StreamServerTest, ServesManySequentialRequestsAndConnections) {
  RunningServer server(GetParam().kind, engine());
  {
    Client client(server);
    for (int i = 0; i < 1000; ++i) {
      const std::string payload = Payload(static_cast<size_t>(i % 200), static_cast<uint32_t>(i));
      ASSERT_EQ(client.RoundTrip(payload), payload) << "request " << i;
    }
  }
  for (int c = 0; c < 30; ++c) {
    Client client(server);
    for (int i = 0; i < 5; ++i) ASSERT_EQ(client.RoundTrip("conn " + std::to_string(c)), "conn " + std::to_string(c));
  }
}

TEST_P(StreamServerTest, AnswersPipelinedRequestsInOrder) {
  RunningServer server(GetParam().kind, engine());
  Client client(server);
  std::string wire;
  for (int i = 0; i < 20; ++i) AppendFrame(wire, "request " + std::to_string(i));
  client.SendRaw(wire);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(client.Receive(), "request " + std::to_string(i));
}

TEST_P(StreamServerTest, OversizedFrameClosesThatConnectionOnly) {
  RunningServer server(GetParam().kind, engine(), /*max_message_bytes=*/1000);
  testing::internal::CaptureStderr();
  Client bad(server);
  const std::string bad_name = bad.local_name();
  bad.SendRaw(BigEndian32(1001) + "x");
  const bool closed = bad.ClosedByServer();
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_TRUE(closed);
  EXPECT_EQ(err, "gillab serve: " + bad_name +
                     ": message of 1001 bytes exceeds --max-message-bytes 1000; closing connection\n");
  Client good(server);
  EXPECT_EQ(good.RoundTrip(std::string(1000, 'k')), std::string(1000, 'k'));
}

TEST_P(StreamServerTest, LengthOfFourGigabytesIsRejectedBeforeAnyBody) {
  RunningServer server(GetParam().kind, engine());
  testing::internal::CaptureStderr();
  Client bad(server);
  bad.SendRaw("\xff\xff\xff\xff");
  EXPECT_TRUE(bad.ClosedByServer());
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("message of 4294967295 bytes exceeds --max-message-bytes 16777216"), std::string::npos) << err;
  Client good(server);
  EXPECT_EQ(good.RoundTrip("still here"), "still here");
}

TEST_P(StreamServerTest, TruncatedFrameEndsThatConnectionOnly) {
  RunningServer server(GetParam().kind, engine());
  testing::internal::CaptureStderr();
  Client truncated(server);
  truncated.SendRaw(BigEndian32(100) + std::string(10, 't'));
  shutdown(truncated.fd(), SHUT_WR);  // end of stream with 10 of 100 body bytes sent
  EXPECT_TRUE(truncated.ClosedByServer());
  const std::string err = testing::internal::GetCapturedStderr();
  Client good(server);
  EXPECT_EQ(good.RoundTrip("after truncation"), "after truncation");
  EXPECT_NE(err.find("closed mid-frame with 14 bytes"), std::string::npos) << err;
}

TEST_P(StreamServerTest, GarbageEndsThatConnectionOnly) {
  RunningServer server(GetParam().kind, engine());
  testing::internal::CaptureStderr();
  Client garbage(server);
  garbage.SendRaw("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");  // "GET " reads as 1.2 GB
  EXPECT_TRUE(garbage.ClosedByServer());
  testing::internal::GetCapturedStderr();
  Client good(server);
  EXPECT_EQ(good.RoundTrip("after garbage"), "after garbage");
}

TEST_P(StreamServerTest, ResetEndsThatConnectionOnly) {
  RunningServer server(GetParam().kind, engine());
  testing::internal::CaptureStderr();
  for (int i = 0; i < 5; ++i) {
    Client rude(server);
    ASSERT_EQ(rude.RoundTrip("hi"), "hi");
    rude.SendRaw(BigEndian32(50) + "partial");
    rude.Reset();
  }
  Client good(server);
  EXPECT_EQ(good.RoundTrip("after reset"), "after reset");
  testing::internal::GetCapturedStderr();
}

TEST_P(StreamServerTest, StopsWithAClientConnectedMidFrame) {
  // ThreadSanitizer starts its own background thread at a process's first
  // pthread_create: let that happen before the count.
  std::thread([] {}).join();
  const int threads_before = ThreadCount();
  auto server = std::make_unique<RunningServer>(GetParam().kind, engine());
  Client idle(*server);
  ASSERT_EQ(idle.RoundTrip("one"), "one");
  idle.SendRaw(BigEndian32(10) + "abc");
  const auto start = std::chrono::steady_clock::now();
  server->Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  EXPECT_TRUE(idle.ClosedByServer());
  const int run_tid = server->run_tid();
  server.reset();
  // Diagnosis (issue 11): a count above the baseline right after the join is
  // the joined Run thread itself, not yet removed by the kernel.
  if (const std::set<int> now = ThreadIds(); static_cast<int>(now.size()) > threads_before) {
    std::string extra;
    for (int tid : now) extra += " [" + DescribeThread(tid) + (tid == run_tid ? ", the joined Run thread]" : "]");
    std::printf("right after the join: %zu threads, %d before:%s\n", now.size(), threads_before, extra.c_str());
  }
  EXPECT_TRUE(ThreadCountFallsTo(threads_before)) << "a server thread outlived Stop";
}

TEST_P(StreamServerTest, StopBeforeAnyClientReturnsAtOnce) {
  RunningServer server(GetParam().kind, engine());
  const auto start = std::chrono::steady_clock::now();
  server.Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
}

// The servers that serve several clients at once (blocking serves one by design).
class ConcurrentStreamServerTest : public StreamServerTest {};

TEST_P(ConcurrentStreamServerTest, StalledClientDoesNotBlockOthers) {
  RunningServer server(GetParam().kind, engine());
  Client stalled(server);
  stalled.SendRaw(BigEndian32(8) + "half");
  for (int c = 0; c < 4; ++c) {
    Client other(server);
    for (int i = 0; i < 50; ++i) ASSERT_EQ(other.RoundTrip("other"), "other");
  }
  stalled.SendRaw("done");
  EXPECT_EQ(stalled.Receive(), "halfdone");
}

TEST_P(ConcurrentStreamServerTest, InterleavesManyConnections) {
  RunningServer server(GetParam().kind, engine());
  std::vector<std::unique_ptr<Client>> clients;
  for (int c = 0; c < 16; ++c) clients.push_back(std::make_unique<Client>(server));
  for (int round = 0; round < 20; ++round) {
    for (size_t c = 0; c < clients.size(); ++c) clients[c]->Send(Payload(100 + c, static_cast<uint32_t>(round * 100 + c)));
    for (size_t c = 0; c < clients.size(); ++c) {
      ASSERT_EQ(clients[c]->Receive(), Payload(100 + c, static_cast<uint32_t>(round * 100 + c)));
    }
  }
}

TEST_P(StreamServerTest, ConcurrentClientThreadsAllServed) {
  RunningServer server(GetParam().kind, engine());
  std::vector<std::thread> threads;
  std::atomic<int> good{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      Client client(server);
      for (int i = 0; i < 100; ++i) {
        const std::string payload = Payload(static_cast<size_t>(i), static_cast<uint32_t>(t * 1000 + i));
        if (client.RoundTrip(payload) == payload) good.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(good.load(), 400);
}

// Overridable to build this test before the real engines exist.
#ifndef GILLAB_TEST_ENGINES
#define GILLAB_TEST_ENGINES "fake", "native", "toy"
#endif

std::vector<Param> ServersWith(std::vector<std::string> kinds, std::vector<std::string> engines) {
  std::vector<Param> params;
  for (const auto& kind : kinds) {
    for (const auto& engine : engines) params.push_back({kind, engine});
  }
  return params;
}

INSTANTIATE_TEST_SUITE_P(Servers, StreamServerTest,
                         testing::ValuesIn(ServersWith({"blocking", "nonblocking", "threaded", "green", "transactional"}, {GILLAB_TEST_ENGINES})),
                         ParamName);
INSTANTIATE_TEST_SUITE_P(Servers, ConcurrentStreamServerTest,
                         testing::ValuesIn(ServersWith({"nonblocking", "threaded", "green", "transactional"}, {GILLAB_TEST_ENGINES})), ParamName);
// The parallel server (design §12) runs handlers in the toy VM's parallel
// contexts: the toy engine only (the lock-discipline tests below hold a
// FakeEngine's lock around handlers, which parallel contexts never take).
INSTANTIATE_TEST_SUITE_P(Parallel, StreamServerTest, testing::ValuesIn(ServersWith({"parallel"}, {"toy"})), ParamName);
INSTANTIATE_TEST_SUITE_P(Parallel, ConcurrentStreamServerTest, testing::ValuesIn(ServersWith({"parallel"}, {"toy"})),
                         ParamName);

// ---------------------------------------------------------------------------
// The lock discipline, with FakeEngine: the test thread holds the lock itself.

class StreamServerLockTest : public testing::TestWithParam<std::string> {
 protected:
  void TearDown() override {
    EXPECT_EQ(engine_.violations(), 0u) << "Handle ran, or a blocking section began, without the lock";
    EXPECT_EQ(engine_.attached(), engine_.detached());
  }
  FakeEngine engine_;
};

TEST_P(StreamServerLockTest, ReleasesTheLockWhileWaitingForClientsAndRequests) {
  RunningServer server(GetParam(), engine_);
  ASSERT_TRUE(WaitFor([&] { return engine_.attached() >= 1; }));
  // Attached means holding; only releasing around accept lets us in.
  ASSERT_TRUE(LockWithin(engine_.gil(), 5000ms)) << "lock held while waiting in accept";
  engine_.gil().unlock();
  Client client(server);
  ASSERT_EQ(client.RoundTrip("x"), "x");
  ASSERT_TRUE(LockWithin(engine_.gil(), 5000ms)) << "lock held while waiting in recv";
  engine_.gil().unlock();
}

TEST_P(StreamServerLockTest, HandleWaitsForTheLock) {
  RunningServer server(GetParam(), engine_);
  Client client(server);
  ASSERT_EQ(client.RoundTrip("warm-up"), "warm-up");
  ASSERT_TRUE(LockWithin(engine_.gil(), 5000ms));
  const uint64_t handled = engine_.handled();
  SetRecvTimeoutMs(client.fd(), 200);
  client.Send("blocked");
  char byte;
  EXPECT_LT(RecvSome(client.fd(), &byte, 1), 0) << "a reply came while the test held the lock";
  EXPECT_EQ(engine_.handled(), handled);
  engine_.gil().unlock();
  SetRecvTimeoutMs(client.fd(), kClientTimeoutMs);
  EXPECT_EQ(client.Receive(), "blocked");
}

TEST_P(StreamServerLockTest, ReleasesTheLockAroundEveryRecvAndSend) {
  RunningServer server(GetParam(), engine_);
  Client client(server);
  ASSERT_EQ(client.RoundTrip("warm-up"), "warm-up");
  const uint64_t sections = engine_.blocking_sections();
  const uint64_t handled = engine_.handled();
  constexpr int kRequests = 200;
  for (int i = 0; i < kRequests; ++i) ASSERT_EQ(client.RoundTrip("ping"), "ping");
  EXPECT_EQ(engine_.handled() - handled, uint64_t{kRequests});
  // At least one release for the recv and one for the send of every request;
  // the first recv's release may already be in the `sections` snapshot.
  EXPECT_GE(engine_.blocking_sections() - sections, uint64_t{2 * kRequests - 1});
}

TEST_P(StreamServerLockTest, HandlerFailureClosesThatConnectionOnly) {
  RunningServer server(GetParam(), engine_);
  testing::internal::CaptureStderr();
  Client failing(server);
  const std::string name = failing.local_name();
  failing.Send("throw");
  EXPECT_TRUE(failing.ClosedByServer());
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(err, "gillab serve: " + name + ": handler failed: handler asked to throw; closing connection\n");
  Client good(server);
  EXPECT_EQ(good.RoundTrip("fine"), "fine");
}

INSTANTIATE_TEST_SUITE_P(Servers, StreamServerLockTest,
                         testing::Values("blocking", "nonblocking", "threaded", "green", "transactional"));

// ---------------------------------------------------------------------------

TEST(BlockingServer, ServesOneClientAtATime) {
  FakeEngine engine;
  RunningServer server("blocking", engine);
  Client first(server);
  ASSERT_EQ(first.RoundTrip("first"), "first");
  Client second(server);  // connected by the kernel, waiting in the listen backlog
  SetRecvTimeoutMs(second.fd(), 200);
  second.Send("second");
  char byte;
  EXPECT_LT(RecvSome(second.fd(), &byte, 1), 0) << "served while the first client was connected";
  first.Close();
  SetRecvTimeoutMs(second.fd(), kClientTimeoutMs);
  EXPECT_EQ(second.Receive(), "second");
}

TEST(ThreadedServer, ReapsFinishedConnectionThreads) {
  FakeEngine engine;
  RunningServer server("threaded", engine);
  ASSERT_TRUE(WaitFor([&] { return engine.attached() >= 1; }));
  const int baseline = ThreadCount();  // the test, the acceptor, whatever gtest runs
  for (int c = 0; c < 20; ++c) {
    Client client(server);
    ASSERT_EQ(client.RoundTrip("x"), "x");
  }
  ASSERT_TRUE(WaitFor([&] { return engine.detached() == 20; })) << "connection threads did not detach";
  Client last(server);  // the accept that reaps the 20 finished threads
  ASSERT_EQ(last.RoundTrip("y"), "y");
  EXPECT_TRUE(ThreadCountFallsTo(baseline + 1)) << "finished connection threads were not joined";
}

TEST(ThreadedServer, NamesConnectionThreadsInOrder) {
  struct NamingEngine final : Engine {
    std::string_view name() const override { return "naming"; }
    std::unique_ptr<IoThread> AttachIo(std::string thread_name) override {
      std::lock_guard guard(mutex);
      names.push_back(thread_name);
      return inner.AttachIo(thread_name);
    }
    void StartCpuThreads() override {}
    void StopCpuThreads() override {}
    nlohmann::json Stats() const override { return {}; }
    FakeEngine inner;
    std::mutex mutex;
    std::vector<std::string> names;
  } engine;
  {
    RunningServer server("threaded", engine);
    for (int c = 0; c < 3; ++c) {
      Client client(server);
      ASSERT_EQ(client.RoundTrip("x"), "x");
    }
  }
  EXPECT_EQ(engine.names, (std::vector<std::string>{"io-accept", "io-0", "io-1", "io-2"}));
}

TEST(MakeServer, RejectsUnknownKindsAndNonTcpEndpoints) {
  FakeEngine engine;
  EXPECT_THROW(MakeServer({.kind = "bogus"}, engine), UsageError);
  EXPECT_THROW(MakeServer({.kind = "blocking", .endpoint = "ipc://x"}, engine), UsageError);
  EXPECT_THROW(MakeServer({.kind = "threaded", .endpoint = "tcp://127.0.0.1"}, engine), UsageError);
  EXPECT_THROW(MakeServer({.kind = "nonblocking", .endpoint = "tcp://127.0.0.1:99999"}, engine), UsageError);
}

TEST(TcpEndpoint, ParsesAndPrints) {
  EXPECT_EQ(ParseTcpEndpoint("tcp://127.0.0.1:0").host, "127.0.0.1");
  EXPECT_EQ(ParseTcpEndpoint("tcp://127.0.0.1:5555").port, 5555);
  EXPECT_EQ(ParseTcpEndpoint("tcp://[::1]:80").host, "::1");
  EXPECT_EQ(ParseTcpEndpoint("tcp://[::1]:80").ToString(), "tcp://[::1]:80");
  EXPECT_EQ(ParseTcpEndpoint("tcp://localhost:7").ToString(), "tcp://localhost:7");
  EXPECT_THROW(ParseTcpEndpoint("ipc://name"), UsageError);
  EXPECT_THROW(ParseTcpEndpoint("tcp://:80"), UsageError);
  EXPECT_THROW(ParseTcpEndpoint("tcp://host:"), UsageError);
  EXPECT_THROW(ParseTcpEndpoint("tcp://host:8x"), UsageError);
}

TEST(StreamServer, ResolvesPortZeroOnBind) {
  FakeEngine engine;
  auto server = MakeServer({.kind = "blocking"}, engine);
  server->Bind();
  const TcpEndpoint endpoint = ParseTcpEndpoint(server->endpoint());
  EXPECT_EQ(endpoint.host, "127.0.0.1");
  EXPECT_NE(endpoint.port, 0);
}

// The transactional server (design §12) under every kind of model: the
// framework prelude runs with the handler in one unit, replies match, and
// under stm every request was a committed unit.
class TransactionalServerTest : public testing::TestWithParam<std::string> {};

TEST_P(TransactionalServerTest, ServesConcurrentClientsThroughTheWorkerPool) {
  EngineOptions options;
  options.policy = GetParam();
  options.handler = "primes_list";
  options.framework_clock = "transaction_time";
  auto engine = MakeEngine(options);
  std::unique_ptr<Server> server =
      MakeServer({.kind = "transactional", .endpoint = "tcp://127.0.0.1:0", .workers = 3}, *engine);
  server->Bind();
  std::thread run([&] { server->Run(); });
  const TcpEndpoint endpoint = ParseTcpEndpoint(server->endpoint());
  constexpr int kClients = 4, kRequests = 25;
  std::vector<std::thread> clients;
  std::atomic<int> ok{0};
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&] {
      UniqueFd fd(ConnectTcp(endpoint));
      SetRecvTimeoutMs(fd.get(), kClientTimeoutMs);
      FrameReader reader{uint64_t{1} << 20};
      for (int i = 0; i < kRequests; ++i) {
        if (!SendFrame(fd.get(), "30")) return;
        std::string reply;
        if (RecvFrame(fd.get(), reader, reply) != RecvFrameResult::kFrame) return;
        if (reply == "[2, 3, 5, 7, 11, 13, 17, 19, 23, 29]") ok.fetch_add(1);
      }
    });
  }
  for (auto& t : clients) t.join();
  server->Stop();
  run.join();
  EXPECT_EQ(ok.load(), kClients * kRequests);
  const nlohmann::json stats = engine->Stats();
  if (GetParam() == "stm") {
    ASSERT_TRUE(stats.contains("model_report")) << stats.dump();
    EXPECT_EQ(stats["model_report"]["commits"].get<int64_t>(), kClients * kRequests);
  }
}

INSTANTIATE_TEST_SUITE_P(Models, TransactionalServerTest, testing::Values("newgil", "none", "stm"));

TEST(TransactionalServer, RefusesZeroWorkers) {
  auto engine = MakeEngine(EngineOptions());
  EXPECT_THROW(MakeServer({.kind = "transactional", .endpoint = "tcp://127.0.0.1:0", .workers = 0}, *engine), UsageError);
}

}  // namespace
}  // namespace gillab::servers
