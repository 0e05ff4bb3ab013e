// message_e2e_test.cc — end to end through the real binary: `gillab serve`
// for zmq and multiprocessing x {native, toy}, driven by the load client's
// connections and by `gillab load`; and `gillab load` against each stream
// server kind. Every child is reaped; every wait is bounded.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <fmt/core.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "servers/client_connection.h"
#include "servers/e2e_test_util.h"
#include "servers/mq_protocol.h"

namespace gillab::servers {
namespace {

using Clock = std::chrono::steady_clock;

std::string MqName(std::string_view what) {
  static int counter = 0;
  return fmt::format("gillab-e2e-{}-{}-{}", what, getpid(), ++counter);
}

std::string Pattern(size_t n, int seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 167 + seed * 13 + (i >> 11)) & 0xff);
  return s;
}

struct Case {
  std::string kind;    // zmq | multiprocessing
  std::string engine;  // native | toy
};

// Keeps ctest's test list readable (GoogleTest would print the struct's bytes).
void PrintTo(const Case& c, std::ostream* os) { *os << c.kind << "/" << c.engine; }

class MessageE2e : public ::testing::TestWithParam<Case> {
 protected:
  std::string BindEndpoint() {
    return GetParam().kind == "zmq" ? "tcp://127.0.0.1:0" : "ipc://" + MqName(GetParam().engine);
  }
};

TEST_P(MessageE2e, EchoesEveryPayloadSizeAndShutsDownCleanly) {
  Serve serve(GetParam().kind, GetParam().engine, BindEndpoint());
  ASSERT_FALSE(serve.endpoint.empty()) << serve.child->Stderr();
  {
    auto client = ConnectClient(GetParam().kind, serve.endpoint, 20000);
    std::string reply;
    int seed = 0;
    for (size_t n : {size_t{0}, size_t{1}, size_t{64}, size_t{64} << 10, size_t{1} << 20}) {
      const std::string request = Pattern(n, ++seed);
      client->Exchange(request, reply);
      EXPECT_EQ(reply.size(), n);
      EXPECT_TRUE(reply == request) << n << " bytes";
    }
  }
  nlohmann::json stats;
  EXPECT_EQ(serve.Stop(&stats), 0) << serve.child->Stderr();
  ASSERT_TRUE(stats.is_object()) << "no stats JSON on stdout";
  EXPECT_TRUE(stats.contains("threads"));
  if (GetParam().kind == "multiprocessing") {
    EXPECT_TRUE(ListMqQueues(ParseIpcName(serve.endpoint)).empty());
  }
}

TEST_P(MessageE2e, GillabLoadRunsManyRequestsOverSeveralConnections) {
  Serve serve(GetParam().kind, GetParam().engine, BindEndpoint());
  ASSERT_FALSE(serve.endpoint.empty()) << serve.child->Stderr();
  const std::string json = (ScratchDir() / fmt::format("load-{}-{}.json", GetParam().kind, GetParam().engine)).string();
  Child load({GILLAB_BINARY, "load", "--endpoint", serve.endpoint, "--server", GetParam().kind, "--requests",
              "2000", "--message-bytes", "200", "--connections", "3", "--warmup", "30", "--json", json});
  const std::string out = load.ReadAll();
  ASSERT_EQ(load.Wait(), 0) << out << load.Stderr();
  const auto j = nlohmann::json::parse(ReadFile(json));
  EXPECT_EQ(j["requests"].get<int64_t>(), 2000);
  EXPECT_EQ(j["errors"].get<int64_t>(), 0);
  EXPECT_GT(j["latency_us"]["p50"].get<double>(), 0);
  EXPECT_NE(out.find("req/s"), std::string::npos) << out;
  EXPECT_EQ(serve.Stop(), 0) << serve.child->Stderr();
}

TEST_P(MessageE2e, OversizedMessageIsAnErrorAndTheServerServesTheNextClient) {
  Serve serve(GetParam().kind, GetParam().engine, BindEndpoint(), {"--max-message-bytes", "1000"});
  ASSERT_FALSE(serve.endpoint.empty()) << serve.child->Stderr();
  std::string reply;
  auto big = ConnectClient(GetParam().kind, serve.endpoint, 20000);
  if (GetParam().kind == "zmq") {
    big->Exchange(std::string(5000, 'x'), reply);
    EXPECT_TRUE(reply.starts_with("error:")) << reply;
  } else {
    // The queue itself holds at most max_message_bytes: the client is refused.
    EXPECT_THROW(big->Exchange(std::string(5000, 'x'), reply), std::runtime_error);
  }
  auto good = ConnectClient(GetParam().kind, serve.endpoint, 20000);
  good->Exchange(std::string(1000, 'y'), reply);
  EXPECT_EQ(reply, std::string(1000, 'y'));
  big.reset();
  good.reset();
  EXPECT_EQ(serve.Stop(), 0);
  if (GetParam().kind == "zmq") {
    const std::string log = serve.child->Stderr();
    EXPECT_NE(log.find("5000 bytes"), std::string::npos) << log;
    EXPECT_NE(log.find("1000"), std::string::npos) << log;
  }
}

INSTANTIATE_TEST_SUITE_P(ServersAndEngines, MessageE2e,
                         ::testing::Values(Case{"zmq", "native"}, Case{"zmq", "toy"},
                                           Case{"multiprocessing", "native"}, Case{"multiprocessing", "toy"}),
                         [](const auto& info) { return info.param.kind + "_" + info.param.engine; });

TEST(ZmqE2e, MalformedMultipartDoesNotTakeTheServerDown) {
  Serve serve("zmq", "toy", "tcp://127.0.0.1:0");
  ASSERT_FALSE(serve.endpoint.empty()) << serve.child->Stderr();
  {
    zmq::context_t context;
    zmq::socket_t dealer(context, zmq::socket_type::dealer);
    dealer.set(zmq::sockopt::linger, 0);
    dealer.connect(serve.endpoint);
    dealer.set(zmq::sockopt::rcvtimeo, 20000);
    std::vector<zmq::const_buffer> bad = {zmq::str_buffer("x"), zmq::str_buffer("y"), zmq::str_buffer("z")};
    ASSERT_TRUE(zmq::send_multipart(dealer, bad));
    // Answered in order, so once this reply is back the bad message was handled.
    std::vector<zmq::const_buffer> good = {zmq::str_buffer(""), zmq::str_buffer("ok")};
    ASSERT_TRUE(zmq::send_multipart(dealer, good));
    std::vector<zmq::message_t> reply;
    ASSERT_TRUE(zmq::recv_multipart(dealer, std::back_inserter(reply)));
    ASSERT_EQ(reply.size(), 2u);
    EXPECT_EQ(reply[1].to_string(), "ok");
  }
  auto client = ConnectClient("zmq", serve.endpoint, 20000);
  std::string reply;
  client->Exchange("after garbage", reply);
  EXPECT_EQ(reply, "after garbage");
  client.reset();
  EXPECT_EQ(serve.Stop(), 0);
  EXPECT_NE(serve.child->Stderr().find("malformed"), std::string::npos) << serve.child->Stderr();
}

TEST(MqE2e, ServeAfterKill9AndOverAStaleQueueWorks) {
  const std::string name = MqName("kill");
  {
    Serve first("multiprocessing", "native", "ipc://" + name);
    ASSERT_FALSE(first.endpoint.empty()) << first.child->Stderr();
    auto client = ConnectClient("multiprocessing", first.endpoint, 20000);
    std::string reply;
    client->Exchange("x", reply);
    first.child->Signal(SIGKILL);
    EXPECT_EQ(first.child->Wait(), 128 + SIGKILL);
  }
  EXPECT_FALSE(ListMqQueues(name).empty());  // what kill -9 leaves behind
  {
    namespace bip = boost::interprocess;
    bip::message_queue(bip::create_only, RequestQueueName(name, "999-9").c_str(), 2, 16);  // and one by hand
  }
  Serve second("multiprocessing", "native", "ipc://" + name);
  ASSERT_EQ(second.endpoint, "ipc://" + name) << second.child->Stderr();
  EXPECT_EQ(ListMqQueues(name), std::vector<std::string>{name + ".ctl"});
  {
    auto client = ConnectClient("multiprocessing", second.endpoint, 20000);
    std::string reply;
    client->Exchange("second run", reply);
    EXPECT_EQ(reply, "second run");
  }
  EXPECT_EQ(second.Stop(), 0);
  EXPECT_NE(second.child->Stderr().find("stale"), std::string::npos) << second.child->Stderr();
  EXPECT_TRUE(ListMqQueues(name).empty());
}

TEST(MqE2e, LoadClientKilledMidRunDoesNotWedgeTheServer) {
  Serve serve("multiprocessing", "toy", "ipc://" + MqName("victim"));
  ASSERT_FALSE(serve.endpoint.empty()) << serve.child->Stderr();
  {
    Child load({GILLAB_BINARY, "load", "--endpoint", serve.endpoint, "--requests", "100000000",
                "--message-bytes", "64", "--connections", "2"});
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    load.Signal(SIGKILL);
    EXPECT_EQ(load.Wait(), 128 + SIGKILL);
  }
  Child load({GILLAB_BINARY, "load", "--endpoint", serve.endpoint, "--requests", "200", "--message-bytes", "64"});
  const std::string out = load.ReadAll();
  EXPECT_EQ(load.Wait(), 0) << out << load.Stderr();
  // The dead client's connections are freed within a poll interval or two, or
  // abandoned after kWedgedAfterMs if it died holding a queue's mutex.
  const std::string name = ParseIpcName(serve.endpoint);
  const auto give_up = Clock::now() + std::chrono::seconds(10);
  while (ListMqQueues(name).size() > 1 && Clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(ListMqQueues(name).size(), 1u);
  EXPECT_EQ(serve.Stop(), 0);
  EXPECT_TRUE(ListMqQueues(name).empty());
}

class StreamLoadE2e : public ::testing::TestWithParam<std::string> {};

TEST_P(StreamLoadE2e, GillabLoadDrivesTheStreamServer) {
  Serve serve(GetParam(), "native", "tcp://127.0.0.1:0");
  ASSERT_FALSE(serve.endpoint.empty()) << serve.child->Stderr();
  const std::string connections = GetParam() == "blocking" ? "1" : "3";
  Child load({GILLAB_BINARY, "load", "--endpoint", serve.endpoint, "--server", GetParam(), "--requests", "1000",
              "--message-bytes", "100", "--connections", connections, "--rate", "20000"});
  const std::string out = load.ReadAll();
  EXPECT_EQ(load.Wait(), 0) << out << load.Stderr();
  EXPECT_NE(out.find("requests 1000  errors 0"), std::string::npos) << out;
  EXPECT_EQ(serve.Stop(), 0);
}

INSTANTIATE_TEST_SUITE_P(Kinds, StreamLoadE2e, ::testing::Values("blocking", "nonblocking", "threaded", "transactional"));

// The primes handler needs a decimal request: random payloads would make every
// request a handler error (the connection is closed and load counts errors).
TEST(LoadPayload, FixedPayloadDrivesThePrimesHandler) {
  Serve serve("threaded", "native", "tcp://127.0.0.1:0", {"--handler", "primes"});
  ASSERT_FALSE(serve.endpoint.empty()) << serve.child->Stderr();
  Child load({GILLAB_BINARY, "load", "--endpoint", serve.endpoint, "--server", "threaded", "--requests", "50",
              "--payload", "10000", "--expect", "any", "--connections", "2"});
  const std::string out = load.ReadAll();
  EXPECT_EQ(load.Wait(), 0) << out << load.Stderr();
  EXPECT_NE(out.find("requests 50  errors 0"), std::string::npos) << out;
  EXPECT_EQ(serve.Stop(), 0);
}

TEST(LoadPayload, PayloadAndMessageBytesExcludeEachOther) {
  Child load({GILLAB_BINARY, "load", "--endpoint", "tcp://127.0.0.1:1", "--requests", "1", "--payload", "7",
              "--message-bytes", "3"});
  load.ReadAll();
  EXPECT_EQ(load.Wait(), 2) << load.Stderr();
}

TEST(LoadE2e, WrongRepliesMakeANonZeroExitAfterTheSummary) {
  // primes answers a count, not an echo: with --expect echo every reply is wrong.
  Serve serve("zmq", "native", "tcp://127.0.0.1:0", {"--handler", "primes"});
  ASSERT_FALSE(serve.endpoint.empty()) << serve.child->Stderr();
  Child load({GILLAB_BINARY, "load", "--endpoint", serve.endpoint, "--server", "zmq", "--requests", "20",
              "--message-bytes", "4"});
  const std::string out = load.ReadAll();
  EXPECT_EQ(load.Wait(), 1);
  EXPECT_NE(out.find("errors 20"), std::string::npos) << out;
  EXPECT_NE(load.Stderr().find("wrong reply"), std::string::npos) << load.Stderr();
  EXPECT_EQ(serve.Stop(), 0);
}

TEST(LoadE2e, BadUsageExitsWithStatusTwo) {
  for (std::vector<std::string> args : {
           std::vector<std::string>{"--endpoint", "tcp://127.0.0.1:0", "--requests", "1", "--message-bytes", "1"},
           std::vector<std::string>{"--endpoint", "ipc://x", "--requests", "1", "--message-bytes", "1", "--server",
                                    "blocking"},
           std::vector<std::string>{"--endpoint", "tcp://127.0.0.1:9", "--requests", "1", "--message-bytes", "1",
                                    "--think-us", "5", "--rate", "10"},
           std::vector<std::string>{"--endpoint", "tcp://127.0.0.1:9", "--requests", "1"},
       }) {
    args.insert(args.begin(), {GILLAB_BINARY, "load"});
    Child load(args);
    load.ReadAll();
    EXPECT_EQ(load.Wait(), 2) << args[3];
    const std::string log = load.Stderr();
    EXPECT_EQ(std::count(log.begin(), log.end(), '\n'), 1) << log;
  }
}

}  // namespace
}  // namespace gillab::servers
