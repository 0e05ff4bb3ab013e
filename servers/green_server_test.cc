// green_server_test.cc — the `green` server (design §10) in process on the
// toy engine: requests whose handler waits in backend_us park as coroutines
// on the one hub thread, so many are waiting at once; the same handler file
// blocks a thread per connection under `threaded`; a failing coroutine costs
// only its connection; Stop returns with requests still parked. (The end-to-
// end, lock and bad-input suites run `green` beside the other stream kinds.)
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <fmt/core.h>

#include "servers/engine.h"
#include "servers/frame.h"
#include "servers/server.h"
#include "servers/socket.h"

namespace gillab::servers {
namespace {

// handle(request, work_units): waits atoi(request) µs in backend_us (a slow
// downstream), then replies "done " .. request; request "fail" divides by zero;
// request "spin" burns 150 ms of CPU without yielding (spin_holding_us).
constexpr const char* kHandler = R"(
func handle request work_units
  load request
  const "spin"
  jne not_spin
  push 150000
  native spin_holding_us
  pop
  const "spun"
  ret
not_spin:
  load request
  const "fail"
  jne wait
  push 1
  push 0
  div
  ret
wait:
  load request
  atoi
  native backend_us
  pop
  const "done "
  load request
  concat
  ret
end
)";

std::string HandlerFile() {
  static const std::string path = [] {
    const auto p = std::filesystem::temp_directory_path() / fmt::format("green_handler_{}.gasm", getpid());
    std::ofstream(p) << kHandler;
    return p.string();
  }();
  return path;
}

class Served {
 public:
  static EngineOptions Options(std::string policy) {
    EngineOptions o;
    o.engine = "toy";
    o.policy = std::move(policy);
    o.handler = HandlerFile();
    return o;
  }
  static ServerOptions ServerOpts(const std::string& kind, bool release_every_call) {
    ServerOptions o;
    o.kind = kind;
    o.endpoint = "tcp://127.0.0.1:0";
    o.hub_releases_every_call = release_every_call;
    return o;
  }
  explicit Served(const std::string& kind, std::string policy = "newgil", bool release_every_call = true)
      : engine_(MakeEngine(Options(std::move(policy)))), server_(MakeServer(ServerOpts(kind, release_every_call), *engine_)) {
    server_->Bind();
    thread_ = std::thread([this] { server_->Run(); });
  }
  ~Served() { Stop(); }
  void Stop() {
    if (!thread_.joinable()) return;
    server_->Stop();
    thread_.join();
  }
  UniqueFd Connect() { return ConnectTcp(ParseTcpEndpoint(server_->endpoint())); }
  Server& server() { return *server_; }

 private:
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<Server> server_;
  std::thread thread_;
};

void SendFrame(int fd, const std::string& payload) {
  std::string out;
  AppendFrame(out, payload);
  ASSERT_EQ(SendSome(fd, out.data(), out.size(), 0), static_cast<ssize_t>(out.size()));
}

// The next reply frame, or "<closed>" when the server closed the connection.
// `reader` keeps what a read brought beyond that frame (pipelined replies).
std::string ReadFrame(int fd, FrameReader& reader) {
  std::string msg;
  char buf[4096];
  for (int reads = 0; reads < 10000; ++reads) {
    if (reader.Next(msg) == FrameReader::Status::kFrame) return msg;
    const ssize_t n = RecvSome(fd, buf, sizeof buf);
    if (n <= 0) return "<closed>";
    reader.Feed(buf, static_cast<size_t>(n));
  }
  return "<too many reads>";
}
// One reply on a connection that has no other reply in flight.
std::string ReadFrame(int fd) {
  FrameReader reader(1 << 20);
  return ReadFrame(fd, reader);
}

TEST(GreenServerTest, ManyRequestsWaitAtOnceOnOneThread) {
  constexpr int kConnections = 40;
  Served served("green");
  std::vector<UniqueFd> fds;
  for (int i = 0; i < kConnections; ++i) {
    fds.push_back(served.Connect());
    SendFrame(fds.back().get(), std::to_string(300000 + i));  // 0.3 s each: 12 s one after another
  }
  for (int i = 0; i < kConnections; ++i) EXPECT_EQ(ReadFrame(fds[i].get()), "done " + std::to_string(300000 + i));
  served.Stop();
  const nlohmann::json hub = served.server().Stats();
  EXPECT_EQ(hub["requests"], kConnections);
  EXPECT_EQ(hub["parks"], kConnections);
  // Every request had been read and parked before the first wait ended.
  EXPECT_EQ(hub["max_parked"], kConnections) << hub.dump();
  EXPECT_EQ(hub["sched_latency_ns"]["count"], kConnections);
  EXPECT_GT(hub["lock_releases_per_request"].get<double>(), 0.0);
}

// --hub-release poll: the lock is given up only around epoll_wait, not around
// each recv and send (the convoy's fix): fewer releases per request.
TEST(GreenServerTest, ReleasingOnlyAroundPollGivesUpTheLockLessOften) {
  double per_request[2];
  for (int poll_only = 0; poll_only < 2; ++poll_only) {
    Served served("green", "newgil", /*release_every_call=*/poll_only == 0);
    UniqueFd fd = served.Connect();
    for (int i = 0; i < 50; ++i) {
      SendFrame(fd.get(), "0");
      ASSERT_EQ(ReadFrame(fd.get()), "done 0");
    }
    served.Stop();
    per_request[poll_only] = served.server().Stats()["lock_releases_per_request"].get<double>();
  }
  EXPECT_GE(per_request[0], 3.0);  // epoll_wait, recv, send (and the timer's poll)
  EXPECT_LE(per_request[1], per_request[0] - 1.5) << per_request[0] << " vs " << per_request[1];
}

TEST(GreenServerTest, SameHandlerBlocksAThreadPerConnectionUnderThreaded) {
  Served served("threaded");
  UniqueFd a = served.Connect();
  UniqueFd b = served.Connect();
  SendFrame(a.get(), "20000");
  SendFrame(b.get(), "10000");
  EXPECT_EQ(ReadFrame(b.get()), "done 10000");
  EXPECT_EQ(ReadFrame(a.get()), "done 20000");
  EXPECT_TRUE(served.server().Stats().is_null());  // no hub
}

TEST(GreenServerTest, PipelinedRequestsAreAnsweredInOrder) {
  Served served("green", "priority");
  UniqueFd fd = served.Connect();
  std::string out;
  for (const char* r : {"30000", "0", "10000"}) AppendFrame(out, r);
  ASSERT_EQ(SendSome(fd.get(), out.data(), out.size(), 0), static_cast<ssize_t>(out.size()));
  FrameReader reader(1 << 20);
  EXPECT_EQ(ReadFrame(fd.get(), reader), "done 30000");
  EXPECT_EQ(ReadFrame(fd.get(), reader), "done 0");
  EXPECT_EQ(ReadFrame(fd.get(), reader), "done 10000");
}

TEST(GreenServerTest, AFailingCoroutineCostsOnlyItsConnection) {
  Served served("green");
  UniqueFd slow = served.Connect();
  SendFrame(slow.get(), "50000");
  testing::internal::CaptureStderr();
  UniqueFd failing = served.Connect();
  SendFrame(failing.get(), "fail");
  EXPECT_EQ(ReadFrame(failing.get()), "<closed>");
  EXPECT_EQ(ReadFrame(slow.get()), "done 50000");
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("handler failed:"), std::string::npos) << err;
  EXPECT_NE(err.find("division by zero"), std::string::npos) << err;
}

// A coroutine that runs 150 ms without yielding holds up every other
// connection: the hub says so, once, naming the handler's program and line.
TEST(GreenServerTest, ReportsAHubBlockedByACoroutineThatDoesNotYield) {
  Served served("green");
  testing::internal::CaptureStderr();
  UniqueFd fd = served.Connect();
  SendFrame(fd.get(), "spin");
  EXPECT_EQ(ReadFrame(fd.get()), "spun");
  SendFrame(fd.get(), "0");  // a quick one after it: no second line
  EXPECT_EQ(ReadFrame(fd.get()), "done 0");
  served.Stop();
  const std::string err = testing::internal::GetCapturedStderr();
  const size_t at = err.find("hub blocked for ");
  ASSERT_NE(at, std::string::npos) << err;
  EXPECT_EQ(err.find("hub blocked for ", at + 1), std::string::npos) << err;
  EXPECT_NE(err.find(".gasm:", at), std::string::npos) << err;  // PROGRAM:LINE
  EXPECT_EQ(served.server().Stats()["blocked_reports"], 1);
}

// Under stm a unit may abort and re-run, so it cannot span a suspension: the
// hub runs each handler as one plain call, which blocks the hub in backend_us
// (as unpatched code blocks gevent's hub): requests are answered one by one.
TEST(GreenServerTest, UnderStmHandlersRunAsPlainCallsThatBlockTheHub) {
  Served served("green", "stm");
  UniqueFd a = served.Connect();
  UniqueFd b = served.Connect();
  SendFrame(a.get(), "20000");
  SendFrame(b.get(), "0");
  EXPECT_EQ(ReadFrame(a.get()), "done 20000");
  EXPECT_EQ(ReadFrame(b.get()), "done 0");
  served.Stop();
  const nlohmann::json hub = served.server().Stats();
  EXPECT_EQ(hub["requests"], 2);
  EXPECT_EQ(hub["parks"], 0) << hub.dump();
}

TEST(GreenServerTest, StopsWithRequestsParked) {
  Served served("green");
  UniqueFd parked = served.Connect();
  SendFrame(parked.get(), "600000000");  // ten minutes
  UniqueFd quick = served.Connect();
  SendFrame(quick.get(), "0");
  EXPECT_EQ(ReadFrame(quick.get()), "done 0");  // the hub has read (and parked) the first one by now
  served.Stop();                                // returns at once, destroying the parked coroutine
  const nlohmann::json hub = served.server().Stats();
  EXPECT_EQ(hub["requests"], 1);
  EXPECT_EQ(hub["parks"], 2) << hub.dump();
  EXPECT_EQ(ReadFrame(parked.get()), "<closed>");
}

}  // namespace
}  // namespace gillab::servers
