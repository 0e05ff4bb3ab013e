// load_client_test.cc — the load client against a tiny in-test stream echo
// server whose misbehaviour each test chooses: corrupt a byte, stall once,
// hang up after k requests.
#include "servers/load_client.h"

#include <arpa/inet.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "gil/error.h"
#include "servers/fake_tcp_server_test_util.h"
#include "servers/socket.h"

namespace gillab::servers {
namespace {

struct FakeBehaviour {
  bool flip_byte = false;        // flip the last byte of every non-empty reply
  int64_t stall_at = -1;         // before answering request #stall_at (0-based, whole server)...
  int stall_ms = 0;              // ...sleep this long
  int64_t close_after = -1;      // hang up every connection after this many replies
};

// One thread per connection, plain blocking sockets, framing by hand (so a
// bug in the shared frame reader cannot hide in both client and server).
class FakeStreamServer {
 public:
  explicit FakeStreamServer(FakeBehaviour behaviour) : behaviour_(behaviour), tcp_([this](int fd) { Serve(fd); }) {}
  const std::string& endpoint() const { return tcp_.endpoint(); }

 private:
  static bool ReadAll(int fd, char* data, size_t n) {
    while (n > 0) {
      const ssize_t got = recv(fd, data, n, 0);
      if (got <= 0) return false;
      data += got;
      n -= static_cast<size_t>(got);
    }
    return true;
  }
  void Serve(int fd) {
    int64_t replies = 0;
    for (;;) {
      unsigned char header[4];
      if (!ReadAll(fd, reinterpret_cast<char*>(header), 4)) break;
      const uint32_t n = (uint32_t{header[0]} << 24) | (uint32_t{header[1]} << 16) |
                         (uint32_t{header[2]} << 8) | header[3];
      std::string body(n, '\0');
      if (!ReadAll(fd, body.data(), n)) break;
      if (served_.fetch_add(1) == behaviour_.stall_at) {
        std::this_thread::sleep_for(std::chrono::milliseconds(behaviour_.stall_ms));
      }
      if (behaviour_.flip_byte && !body.empty()) body.back() ^= 0x01;
      std::string out(reinterpret_cast<char*>(header), 4);
      out += body;
      if (!SendAll(fd, out)) break;
      if (++replies == behaviour_.close_after) break;
    }
    shutdown(fd, SHUT_RDWR);
  }

  FakeBehaviour behaviour_;
  std::atomic<int64_t> served_{0};
  FakeTcpServer tcp_;  // last: its threads stop before the state they use goes
};

LoadOptions Options(const std::string& endpoint, int64_t requests, int64_t bytes) {
  LoadOptions o;
  o.endpoint = endpoint;
  o.requests = requests;
  o.message_bytes = bytes;
  o.reply_timeout_ms = 5000;
  return o;
}

TEST(LoadClient, ClosedLoopCompletesEveryRequestOnEveryConnection) {
  FakeStreamServer server({});
  LoadOptions o = Options(server.endpoint(), 301, 100);
  o.connections = 3;
  o.warmup = 9;
  const LoadResult r = RunLoad(o);
  EXPECT_EQ(r.transport, "stream");
  EXPECT_EQ(r.requests, 301);
  EXPECT_EQ(r.errors, 0);
  EXPECT_EQ(r.latency_ns.count(), 301u);
  EXPECT_GT(r.seconds, 0);
  EXPECT_GT(r.latency_ns.min(), 0);
  EXPECT_LE(r.latency_ns.Percentile(50), r.latency_ns.max());
}

// From kEventLoopMinConnections connections on, one epoll loop drives them all
// (load_event_loop.h): the same counts, checks and open-loop accounting.
TEST(LoadClientEventLoop, ClosedLoopCompletesEveryRequestOnEveryConnection) {
  FakeStreamServer server({});
  LoadOptions o = Options(server.endpoint(), 1001, 100);
  o.connections = 200;
  o.warmup = 200;
  const LoadResult r = RunLoad(o);
  EXPECT_EQ(r.requests, 1001);
  EXPECT_EQ(r.errors, 0);
  EXPECT_EQ(r.unsent, 0);
  EXPECT_EQ(r.latency_ns.count(), 1001u);
  EXPECT_GT(r.seconds, 0);
  EXPECT_GT(r.latency_ns.min(), 0);
}

TEST(LoadClientEventLoop, OpenLoopChargesAStallToEveryRequestItDelayed) {
  // 200 connections at 2,000 req/s over all: 0.2 s of schedule. The whole
  // server stalls 300 ms before request #100: the requests meant for that
  // time are late, and their latency counts from their intended send time.
  FakeStreamServer server({.stall_at = 100, .stall_ms = 300});
  LoadOptions o = Options(server.endpoint(), 400, 16);
  o.connections = 200;
  o.rate = 2000;
  const LoadResult r = RunLoad(o);
  EXPECT_EQ(r.requests, 400);
  EXPECT_EQ(r.errors, 0);
  EXPECT_GE(r.latency_ns.max(), 300'000'000);
}

TEST(LoadClientEventLoop, CorruptedRepliesAndHangUpsAreErrors) {
  {
    FakeStreamServer server({.flip_byte = true});
    LoadOptions o = Options(server.endpoint(), 300, 32);
    o.connections = 150;
    const LoadResult r = RunLoad(o);
    EXPECT_EQ(r.requests, 0);
    EXPECT_EQ(r.errors, 300);
    EXPECT_EQ(r.latency_ns.count(), 0u);
  }
  {
    FakeStreamServer server({.close_after = 1});
    LoadOptions o = Options(server.endpoint(), 450, 32);
    o.connections = 150;
    const LoadResult r = RunLoad(o);
    EXPECT_EQ(r.requests, 150);  // one reply per connection, then the hang-up
    EXPECT_EQ(r.errors, 150);    // one error per connection
    EXPECT_EQ(r.unsent, 300);
  }
}

TEST(LoadClient, ThinkTimeIsOutsideTheLatency) {
  FakeStreamServer server({});
  LoadOptions o = Options(server.endpoint(), 20, 8);
  o.think_us = 20000;  // 20 ms between requests: 0.4 s of thinking in all
  const LoadResult r = RunLoad(o);
  EXPECT_EQ(r.errors, 0);
  EXPECT_GE(r.seconds, 0.35);
  // A loopback echo takes well under the think time, even on a busy machine.
  EXPECT_LT(r.latency_ns.Percentile(50), 15'000'000);
}

// A 60 ms server stall at a 2000/s schedule delays ~120 intended sends; in
// open loop each of them carries its delay, so p90 is tens of ms. The same
// stall in closed loop is one slow sample.
TEST(LoadClient, OpenLoopChargesAStallToEveryRequestItDelayed) {
  const FakeBehaviour stall{.stall_at = 100, .stall_ms = 60};
  {
    FakeStreamServer server(stall);
    LoadOptions o = Options(server.endpoint(), 400, 32);
    o.rate = 2000;
    const LoadResult r = RunLoad(o);
    EXPECT_EQ(r.errors, 0);
    EXPECT_EQ(r.requests, 400);
    EXPECT_GE(r.seconds, 0.19);  // the schedule alone takes 0.2 s
    EXPECT_GE(r.latency_ns.max(), 55'000'000);
    EXPECT_GE(r.latency_ns.Percentile(90), 15'000'000);
  }
  {
    FakeStreamServer server(stall);
    const LoadResult r = RunLoad(Options(server.endpoint(), 400, 32));
    EXPECT_EQ(r.errors, 0);
    EXPECT_GE(r.latency_ns.max(), 55'000'000);
    EXPECT_LT(r.latency_ns.Percentile(90), 15'000'000);
  }
}

TEST(LoadClient, CorruptedReplyIsAnErrorNotALatencySample) {
  FakeStreamServer server({.flip_byte = true});
  LoadOptions o = Options(server.endpoint(), 50, 64);
  o.connections = 2;
  const LoadResult r = RunLoad(o);
  EXPECT_EQ(r.errors, 50);
  EXPECT_EQ(r.requests, 0);
  EXPECT_EQ(r.latency_ns.count(), 0u);
  ASSERT_FALSE(r.error_messages.empty());
  EXPECT_NE(r.error_messages[0].find("first difference at byte 63"), std::string::npos) << r.error_messages[0];

  o.expect_echo = false;  // e.g. the primes handler: any reply will do
  const LoadResult any = RunLoad(o);
  EXPECT_EQ(any.errors, 0);
  EXPECT_EQ(any.requests, 50);
}

TEST(LoadClient, ServerThatHangsUpCostsThatConnectionOneError) {
  FakeStreamServer server({.close_after = 5});
  const LoadResult r = RunLoad(Options(server.endpoint(), 100, 16));
  EXPECT_EQ(r.requests, 5);
  EXPECT_EQ(r.errors, 1);
  EXPECT_EQ(r.unsent, 94);
  ASSERT_EQ(r.error_messages.size(), 1u);
  EXPECT_NE(r.error_messages[0].find("closed"), std::string::npos) << r.error_messages[0];
}

TEST(LoadClient, JsonHasTheReliedOnKeysAndIsWrittenAtomically) {
  FakeStreamServer server({});
  const LoadResult r = RunLoad(Options(server.endpoint(), 40, 10));
  const auto dir = std::filesystem::temp_directory_path() / ("gillab_load_json_" + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "load.json").string();
  {
    std::ofstream old(path);
    old << "{\"stale\": true, \"padding\": \"" << std::string(10000, 'x') << "\"}";
  }
  WriteJsonAtomically(path, r.ToJson());
  std::ifstream in(path);
  const auto j = nlohmann::json::parse(in);
  for (const char* key : {"requests", "errors", "seconds", "req_per_s", "latency_us"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
  for (const char* key : {"p50", "p90", "p99", "p999", "max"}) {
    EXPECT_TRUE(j["latency_us"].contains(key)) << key;
    EXPECT_GT(j["latency_us"][key].get<double>(), 0) << key;
  }
  // The CDF for the plots: the whole distribution, consistent with the percentiles beside it.
  const auto& cdf = j["latency_us"]["cdf"];
  ASSERT_EQ(cdf.size(), gil::Histogram::kCdfPercentiles.size());
  EXPECT_EQ(cdf.front()[1].get<double>(), j["latency_us"]["min"].get<double>());
  EXPECT_EQ(cdf.back()[1].get<double>(), j["latency_us"]["max"].get<double>());
  for (const auto& point : cdf) {
    if (point[0].get<double>() == 50) {
      EXPECT_EQ(point[1].get<double>(), j["latency_us"]["p50"].get<double>());
    }
  }
  EXPECT_FALSE(j.contains("stale"));
  EXPECT_EQ(j["requests"].get<int64_t>(), 40);
  EXPECT_EQ(j["errors"].get<int64_t>(), 0);
  EXPECT_NEAR(j["req_per_s"].get<double>(), 40 / j["seconds"].get<double>(), 1e-6 * j["req_per_s"].get<double>());
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));

  const std::string unwritable = (dir / "missing" / "load.json").string();
  EXPECT_THROW(WriteJsonAtomically(unwritable, r.ToJson()), std::runtime_error);
  EXPECT_FALSE(std::filesystem::exists(unwritable + ".tmp"));
  std::filesystem::remove_all(dir);
}

TEST(LoadClient, RejectsBadOptionsAsUsageErrors) {
  LoadOptions o = Options("tcp://127.0.0.1:1", 10, 10);
  o.think_us = 10;
  o.rate = 100;
  EXPECT_THROW(RunLoad(o), UsageError);
  EXPECT_THROW(RunLoad(Options("tcp://127.0.0.1:0", 10, 10)), UsageError);
  EXPECT_THROW(RunLoad(Options("udp://x", 10, 10)), UsageError);
  EXPECT_THROW(RunLoad(Options("tcp://127.0.0.1:1", 0, 10)), UsageError);
  EXPECT_THROW(RunLoad(Options("tcp://127.0.0.1:1", 10, -1)), UsageError);
  LoadOptions mismatch = Options("tcp://127.0.0.1:1", 10, 10);
  mismatch.server = "multiprocessing";
  EXPECT_THROW(RunLoad(mismatch), UsageError);
  mismatch.server = "bogus";
  EXPECT_THROW(RunLoad(mismatch), UsageError);
}

TEST(LoadClient, NoServerIsARuntimeFailure) {
  // A port we just released: nothing listens there.
  std::string endpoint;
  {
    UniqueFd fd = ListenTcp(ParseTcpEndpoint("tcp://127.0.0.1:0"));
    endpoint = LocalEndpoint(fd.get()).ToString();
  }
  EXPECT_THROW(RunLoad(Options(endpoint, 10, 10)), std::runtime_error);
}

}  // namespace
}  // namespace gillab::servers
