// message_servers_test.cc — the zmq and multiprocessing servers in-process,
// against FakeEngine (which checks the lock discipline), driven by the load
// client's own connections.
#include "servers/message_servers.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>
#include <vector>

#include <fmt/core.h>
#include <gtest/gtest.h>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "gil/error.h"
#include "servers/client_connection.h"
#include "servers/fake_engine_test_util.h"
#include "servers/load_client.h"
#include "servers/mq_protocol.h"

namespace gillab::servers {
namespace {

using Clock = std::chrono::steady_clock;

// A server running on its own thread for the scope of a test.
class Running {
 public:
  Running(std::unique_ptr<Server> server) : server_(std::move(server)) {
    server_->Bind();
    thread_ = std::thread([this] { server_->Run(); });
  }
  ~Running() { StopAndJoin(); }
  // Returns how long Run() took to return after Stop().
  std::chrono::milliseconds StopAndJoin() {
    if (!thread_.joinable()) return {};
    const auto t0 = Clock::now();
    server_->Stop();
    thread_.join();
    return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0);
  }
  std::string endpoint() const { return server_->endpoint(); }

 private:
  std::unique_ptr<Server> server_;
  std::thread thread_;
};

std::string Pattern(size_t n, int seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + seed * 7 + (i >> 9)) & 0xff);
  return s;
}

std::string UniqueMqName(std::string_view what) {
  static int counter = 0;
  return fmt::format("gillab-test-{}-{}-{}", what, getpid(), ++counter);
}

std::unique_ptr<Server> Make(std::string_view kind, std::string endpoint, FakeEngine& engine,
                             uint64_t max_message_bytes = kDefaultMaxMessageBytes) {
  ServerOptions options{.kind = std::string(kind), .endpoint = std::move(endpoint),
                        .max_message_bytes = max_message_bytes};
  return kind == "zmq" ? MakeZmqServer(options, engine) : MakeMqServer(options, engine);
}


class MessageServer : public ::testing::TestWithParam<std::string> {
 protected:
  std::string BindEndpoint() {
    return GetParam() == "zmq" ? "tcp://127.0.0.1:0" : "ipc://" + UniqueMqName("srv");
  }
};

TEST_P(MessageServer, EchoesEveryPayloadSizeWithTheLockHeldOnlyInTheHandler) {
  FakeEngine engine;
  {
    Running server(Make(GetParam(), BindEndpoint(), engine));
    auto client = ConnectClient(GetParam(), server.endpoint(), 5000);
    std::string reply;
    int seed = 0;
    for (size_t n : {size_t{0}, size_t{1}, size_t{64}, size_t{64} << 10, size_t{1} << 20}) {
      const std::string request = Pattern(n, ++seed);
      client->Exchange(request, reply);
      ASSERT_EQ(reply.size(), n);
      EXPECT_TRUE(reply == request) << n << " bytes";
    }
    client.reset();
    server.StopAndJoin();
  }
  EXPECT_EQ(engine.handled(), 5u);
  EXPECT_EQ(engine.violations(), 0u);
  EXPECT_EQ(engine.attached(), engine.detached());
}

// Design §1: the I/O thread gives the lock up around each receive and each
// send — two blocking sections per request, plus the receive it waits in.
TEST_P(MessageServer, ReleasesTheLockAroundEachReceiveAndSend) {
  FakeEngine engine;
  Running server(Make(GetParam(), BindEndpoint(), engine));
  auto client = ConnectClient(GetParam(), server.endpoint(), 5000);
  std::string reply;
  client->Exchange("warm", reply);
  const uint64_t before = engine.blocking_sections();
  constexpr uint64_t kRequests = 200;
  for (uint64_t i = 0; i < kRequests; ++i) client->Exchange(std::to_string(i), reply);
  const uint64_t sections = engine.blocking_sections() - before;
  // A reply reaches the client before the server begins its next receive, so
  // one receive at either end of the window may fall outside the count.
  EXPECT_GE(sections, 2 * kRequests - 1);
  // Slack for the multiprocessing server's timed waits (one per 200 ms idle).
  EXPECT_LE(sections, 2 * kRequests + 3);
  EXPECT_EQ(engine.violations(), 0u);
}

TEST_P(MessageServer, ServesSeveralConnectionsAtOnce) {
  FakeEngine engine;
  Running server(Make(GetParam(), BindEndpoint(), engine));
  LoadOptions o{.endpoint = server.endpoint(), .server = GetParam(), .requests = 400, .message_bytes = 300,
                .payload = "", .connections = 4, .reply_timeout_ms = 5000};
  const LoadResult r = RunLoad(o);
  EXPECT_EQ(r.errors, 0);
  EXPECT_EQ(r.requests, 400);
  EXPECT_EQ(engine.violations(), 0u);
}

TEST_P(MessageServer, HandlerFailureIsAnsweredAndTheServerGoesOn) {
  FakeEngine engine;
  Running server(Make(GetParam(), BindEndpoint(), engine));
  auto client = ConnectClient(GetParam(), server.endpoint(), 5000);
  std::string reply;
  client->Exchange("throw", reply);
  EXPECT_TRUE(reply.starts_with("error:")) << reply;
  client->Exchange("fine", reply);
  EXPECT_EQ(reply, "fine");
}

TEST_P(MessageServer, StopEndsAnIdleServerPromptly) {
  FakeEngine engine;
  Running server(Make(GetParam(), BindEndpoint(), engine));
  auto client = ConnectClient(GetParam(), server.endpoint(), 5000);  // one idle connection too
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_LT(server.StopAndJoin().count(), 2000);
  EXPECT_EQ(engine.attached(), engine.detached());
  EXPECT_EQ(engine.violations(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Kinds, MessageServer, ::testing::Values("zmq", "multiprocessing"));

TEST(ZmqServer, OversizedMessageIsReportedAnsweredWithAnErrorAndTheServerGoesOn) {
  FakeEngine engine;
  Running server(Make("zmq", "tcp://127.0.0.1:0", engine, 1000));
  auto big = ConnectClient("zmq", server.endpoint(), 5000);
  auto good = ConnectClient("zmq", server.endpoint(), 5000);
  std::string reply;
  testing::internal::CaptureStderr();
  big->Exchange(std::string(2000, 'x'), reply);
  const std::string log = testing::internal::GetCapturedStderr();
  EXPECT_TRUE(reply.starts_with("error:")) << reply;
  EXPECT_NE(log.find("2000 bytes"), std::string::npos) << log;
  EXPECT_NE(log.find("1000"), std::string::npos) << log;
  EXPECT_NE(log.find("peer 0x"), std::string::npos) << log;
  EXPECT_EQ(std::count(log.begin(), log.end(), '\n'), 1) << log;
  good->Exchange(std::string(1000, 'y'), reply);
  EXPECT_EQ(reply, std::string(1000, 'y'));
  EXPECT_EQ(engine.handled(), 1u);
}

TEST(ZmqServer, MalformedMultipartIsDroppedAndTheServerSurvives) {
  FakeEngine engine;
  Running server(Make("zmq", "tcp://127.0.0.1:0", engine));
  zmq::context_t context;
  zmq::socket_t dealer(context, zmq::socket_type::dealer);
  dealer.set(zmq::sockopt::linger, 0);
  dealer.set(zmq::sockopt::rcvtimeo, 5000);
  dealer.connect(server.endpoint());
  testing::internal::CaptureStderr();
  std::vector<zmq::const_buffer> bad = {zmq::str_buffer("a"), zmq::str_buffer("b"), zmq::str_buffer("c")};
  ASSERT_TRUE(zmq::send_multipart(dealer, bad));
  // A well-formed DEALER request [ "", body ] right behind it is answered.
  std::vector<zmq::const_buffer> good = {zmq::str_buffer(""), zmq::str_buffer("body")};
  ASSERT_TRUE(zmq::send_multipart(dealer, good));
  std::vector<zmq::message_t> reply;
  ASSERT_TRUE(zmq::recv_multipart(dealer, std::back_inserter(reply)));
  const std::string log = testing::internal::GetCapturedStderr();
  ASSERT_EQ(reply.size(), 2u);
  EXPECT_EQ(reply[0].size(), 0u);
  EXPECT_EQ(reply[1].to_string(), "body");
  EXPECT_NE(log.find("malformed"), std::string::npos) << log;
  EXPECT_NE(log.find("4 parts"), std::string::npos) << log;
  // (4 parts: the routing id and the 3 sent.) A plain REQ client is still served.
  auto client = ConnectClient("zmq", server.endpoint(), 5000);
  std::string echo;
  client->Exchange("still here", echo);
  EXPECT_EQ(echo, "still here");
  dealer.close();
}

TEST(ZmqServer, BadEndpointIsAUsageError) {
  FakeEngine engine;
  EXPECT_THROW(Make("zmq", "udp://127.0.0.1:0", engine)->Bind(), UsageError);
  EXPECT_THROW(Make("zmq", "tcp://127.0.0.1:99999", engine)->Bind(), UsageError);
}

TEST(MqServer, CleanShutdownLeavesNoSharedMemory) {
  FakeEngine engine;
  const std::string name = UniqueMqName("clean");
  {
    Running server(Make("multiprocessing", "ipc://" + name, engine));
    auto a = ConnectClient("multiprocessing", server.endpoint(), 5000);
    auto b = ConnectClient("multiprocessing", server.endpoint(), 5000);
    std::string reply;
    a->Exchange("x", reply);
    b->Exchange("y", reply);
    EXPECT_EQ(ListMqQueues(name).size(), 5u);  // ctl + 2 x (req, rep)
    EXPECT_TRUE(std::filesystem::exists("/dev/shm/" + name + ".ctl"));
    server.StopAndJoin();
    EXPECT_TRUE(ListMqQueues(name).empty());
  }
  EXPECT_FALSE(std::filesystem::exists("/dev/shm/" + name + ".ctl"));
}

TEST(MqServer, ClientThatLeavesFreesItsQueues) {
  FakeEngine engine;
  const std::string name = UniqueMqName("bye");
  Running server(Make("multiprocessing", "ipc://" + name, engine));
  {
    auto client = ConnectClient("multiprocessing", server.endpoint(), 5000);
    std::string reply;
    client->Exchange("x", reply);
    EXPECT_EQ(ListMqQueues(name).size(), 3u);
  }
  const auto give_up = Clock::now() + std::chrono::seconds(5);
  while (ListMqQueues(name).size() != 1 && Clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(ListMqQueues(name), std::vector<std::string>{name + ".ctl"});
}

TEST(MqServer, StaleQueuesOfAKilledRunAreRemovedOnStart) {
  namespace bip = boost::interprocess;
  FakeEngine engine;
  const std::string name = UniqueMqName("stale");
  // What a kill -9 leaves behind: a control queue and one connection's queues.
  bip::message_queue(bip::create_only, ControlQueueName(name).c_str(), 4, 64);
  bip::message_queue(bip::create_only, RequestQueueName(name, "123-0").c_str(), 2, 64);
  bip::message_queue(bip::create_only, RequestQueueName(name + ".other", "1-0").c_str(), 2, 64);
  ASSERT_EQ(ListMqQueues(name).size(), 2u);
  {
    testing::internal::CaptureStderr();
    Running server(Make("multiprocessing", "ipc://" + name, engine));
    const std::string log = testing::internal::GetCapturedStderr();
    EXPECT_NE(log.find("removed 2 stale queue"), std::string::npos) << log;
    EXPECT_EQ(ListMqQueues(name), std::vector<std::string>{name + ".ctl"});
    auto client = ConnectClient("multiprocessing", server.endpoint(), 5000);
    std::string reply;
    client->Exchange("after a crash", reply);
    EXPECT_EQ(reply, "after a crash");
  }
  // Another server's queues are not ours to remove.
  EXPECT_EQ(ListMqQueues(name + ".other").size(), 1u);
  RemoveMqQueues(name + ".other");
  EXPECT_TRUE(ListMqQueues(name).empty());
}

TEST(MqServer, SecondServerOnALiveNameIsRefused) {
  FakeEngine engine;
  const std::string name = UniqueMqName("busy");
  Running first(Make("multiprocessing", "ipc://" + name, engine));
  EXPECT_THROW(Make("multiprocessing", "ipc://" + name, engine)->Bind(), UsageError);
  auto client = ConnectClient("multiprocessing", first.endpoint(), 5000);
  std::string reply;
  client->Exchange("first still serves", reply);
  EXPECT_EQ(reply, "first still serves");
}

TEST(MqServer, ClientKilledMidRunCostsOnlyItsConnection) {
  FakeEngine engine;
  const std::string name = UniqueMqName("dead");
  Running server(Make("multiprocessing", "ipc://" + name, engine));
  // A client that connects and then dies without "bye" (SIGKILL, reaped).
  const pid_t child = fork();
  if (child == 0) {
    for (;;) pause();
  }
  ASSERT_GT(child, 0);
  {
    namespace bip = boost::interprocess;
    bip::message_queue control(bip::open_only, ControlQueueName(name).c_str());
    const std::string hello = fmt::format("connect {}-0 {}", child, child);
    testing::internal::CaptureStderr();
    control.send(hello.data(), hello.size(), kControlPriority);
  }
  const auto give_up = Clock::now() + std::chrono::seconds(5);
  bool opened = false, closed = false;
  while (!opened && Clock::now() < give_up) {
    opened = ListMqQueues(name).size() == 3;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  kill(child, SIGKILL);
  EXPECT_EQ(waitpid(child, nullptr, 0), child);
  while (opened && !closed && Clock::now() < give_up) {
    closed = ListMqQueues(name).size() == 1;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  const std::string log = testing::internal::GetCapturedStderr();
  EXPECT_TRUE(opened);
  EXPECT_TRUE(closed);
  EXPECT_NE(log.find(fmt::format("client pid {}", child)), std::string::npos) << log;
  auto client = ConnectClient("multiprocessing", server.endpoint(), 5000);
  std::string reply;
  client->Exchange("alive", reply);
  EXPECT_EQ(reply, "alive");
}

TEST(MqServer, OversizedMessageIsRefusedAndTheServerGoesOn) {
  FakeEngine engine;
  Running server(Make("multiprocessing", "ipc://" + UniqueMqName("big"), engine, 1000));
  auto big = ConnectClient("multiprocessing", server.endpoint(), 5000);
  std::string reply;
  try {
    big->Exchange(std::string(1001, 'x'), reply);
    ADD_FAILURE() << "an oversized message was sent";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("1001 bytes exceeds the server's max_message_bytes 1000"),
              std::string::npos)
        << e.what();
  }
  auto good = ConnectClient("multiprocessing", server.endpoint(), 5000);
  good->Exchange(std::string(1000, 'y'), reply);
  EXPECT_EQ(reply, std::string(1000, 'y'));
}

TEST(MqServer, BadEndpointIsAUsageError) {
  FakeEngine engine;
  EXPECT_THROW(Make("multiprocessing", "ipc://a/b", engine)->Bind(), UsageError);
  EXPECT_THROW(Make("multiprocessing", "ipc://", engine)->Bind(), UsageError);
  EXPECT_THROW(Make("multiprocessing", "tcp://127.0.0.1:0", engine)->Bind(), UsageError);
}

TEST(MqClient, NoServerIsARuntimeError) {
  EXPECT_THROW(ConnectClient("multiprocessing", "ipc://" + UniqueMqName("nobody"), 1000), std::runtime_error);
}

}  // namespace
}  // namespace gillab::servers
