// crash_cleanup_test.cc — `kill -9` of a `gillab serve` in the middle of a
// `gillab load` run, for every server kind and the native and toy engines
// (zmq over tcp and over ipc too), and what the next run finds afterwards.
//
// Checked for each kind:
//   - the load client notices within a bounded time and ends with a non-zero
//     status and a short, clear stderr (one line per failed connection naming
//     the endpoint, then the error count);
//   - no process the killed server started survives it (its children are
//     read from /proc before the kill, checked gone after);
//   - the next server binds the same ipc name (or any port), answers a full
//     `gillab load` run, and at that point the name's entries (/dev/shm/NAME.*
//     for multiprocessing, the socket file for zmq ipc) are only the new
//     server's; after it exits cleanly, none are left.
// The multiprocessing server's own stale-queue removal on start over a
// leftover queue is covered by MqE2e.ServeAfterKill9AndOverAStaleQueueWorks
// (message_e2e_test.cc); here the kill lands under load with live connections.
// Every child is reaped and every wait is bounded.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/core.h>
#include <gtest/gtest.h>

#include "servers/e2e_test_util.h"

namespace gillab::servers {
namespace {

using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

// Live (not zombie) processes whose parent is `parent`.
std::vector<pid_t> ChildrenOf(pid_t parent) {
  std::vector<pid_t> out;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename();
    if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit)) continue;
    const pid_t pid = std::stoi(name);
    if (ProcStatus(pid, "PPid") == std::to_string(parent) && !ProcStatus(pid, "State").starts_with("Z")) {
      out.push_back(pid);
    }
  }
  return out;
}

// Entries of the endpoint's name on the file system: /dev/shm/NAME.* for
// multiprocessing queues, the socket path for zmq ipc, nothing for tcp.
std::set<std::string> NameEntries(const std::string& endpoint, const std::string& kind) {
  std::set<std::string> out;
  if (!endpoint.starts_with("ipc://")) return out;
  const std::string name = endpoint.substr(6);
  if (kind == "zmq") {
    std::error_code ec;
    if (fs::exists(fs::symlink_status(name, ec))) out.insert(name);
    return out;
  }
  for (const auto& entry : fs::directory_iterator("/dev/shm")) {
    const std::string file = entry.path().filename();
    if (file.starts_with(name + ".")) out.insert(file);
  }
  return out;
}

struct Case {
  std::string kind;    // the --server value
  std::string engine;  // native | toy
  std::string transport_name;  // tcp | ipc (for the test name)
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.kind << "/" << c.engine << "/" << c.transport_name; }

class CrashCleanup : public ::testing::TestWithParam<Case> {
 protected:
  std::string BindEndpoint() const {
    static int counter = 0;
    const Case& c = GetParam();
    if (c.transport_name == "tcp") return "tcp://127.0.0.1:0";
    if (c.kind == "zmq") return fmt::format("ipc://{}/zmq-{}.sock", ScratchDir().string(), ++counter);
    return fmt::format("ipc://gillab-crash-{}-{}-{}", c.engine, getpid(), ++counter);
  }

  std::vector<std::string> ServeArgs(const std::string& endpoint) const {
    std::vector<std::string> args = {GILLAB_BINARY, "serve", "--server", GetParam().kind, "--engine", GetParam().engine,
                                     "--endpoint", endpoint};
    // A CPU thread competing for the lock: the kill lands on a busy server.
    if (GetParam().engine == "toy") args.insert(args.end(), {"--cpu-threads", "1", "--switch-interval-us", "1000"});
    return args;
  }

  std::vector<std::string> LoadArgs(const std::string& endpoint, int requests, int connections) const {
    return {GILLAB_BINARY, "load", "--endpoint", endpoint, "--server", GetParam().kind, "--requests", std::to_string(requests),
            "--connections", std::to_string(connections), "--message-bytes", "256",
            "--reply-timeout-ms", std::to_string(kReplyTimeoutMs)};
  }

  // A test that failed half-way (say, a hung client) must not leave its queues
  // for the next one: the checks above have run by now.
  void TearDown() override {
    const std::string mine = fmt::format("gillab-crash-{}-{}-", GetParam().engine, getpid());
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator("/dev/shm", ec))
      if (entry.path().filename().string().starts_with(mine)) fs::remove(entry.path(), ec);
  }

  static constexpr int kReplyTimeoutMs = 1500;
};

TEST_P(CrashCleanup, Kill9MidLoadEndsTheClientAndLeavesNothingForTheNextServer) {
  const Case& c = GetParam();
  const std::string bind = BindEndpoint();

  // 1. A server under load from two connections.
  auto serve = std::make_unique<Child>(ServeArgs(bind));
  const std::string line = serve->ReadLine(20000);
  ASSERT_TRUE(line.starts_with("listening ")) << "no listening line: " << serve->Stderr();
  const std::string endpoint = line.substr(10);
  constexpr int kConnections = 2;
  Child load(LoadArgs(endpoint, 10'000'000, kConnections));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // requests in flight
  ASSERT_TRUE(AliveNotZombie(load.pid())) << "the load ended before the kill: " << load.Stderr();
  ASSERT_TRUE(AliveNotZombie(serve->pid())) << serve->Stderr();
  const std::vector<pid_t> server_children = ChildrenOf(serve->pid());

  // 2. kill -9 the server.
  serve->Signal(SIGKILL);
  EXPECT_EQ(serve->Wait(5000), 128 + SIGKILL);
  serve.reset();

  // 3. The client ends by itself, soon (zmq cannot see a dead peer: the reply timeout ends it).
  const auto killed_at = Clock::now();
  const int load_status = load.Wait(kReplyTimeoutMs + 8000);
  const double took_s = std::chrono::duration<double>(Clock::now() - killed_at).count();
  ASSERT_NE(load_status, -1) << "gillab load still running 9.5 s after the server was killed";
  EXPECT_NE(load_status, 0);
  EXPECT_LT(load_status, 128) << "the client crashed instead of reporting: " << load.Stderr();
  const std::string err = load.Stderr();
  std::vector<std::string> lines;
  std::istringstream stream(err);
  for (std::string l; std::getline(stream, l);) lines.push_back(l);
  if (c.kind == "multiprocessing" && err.find("died holding a queue") != std::string::npos) {
    // Killed inside a queue call: the client's stuck-call guard (mq_protocol.h)
    // ended it with one line naming the endpoint (after the lines of any
    // connection that noticed the death first).
    ASSERT_LE(lines.size(), static_cast<size_t>(kConnections)) << err;
    EXPECT_NE(lines.back().find("died holding a queue"), std::string::npos) << err;
    EXPECT_NE(lines.back().find(endpoint), std::string::npos) << err;
    EXPECT_EQ(load_status, 1);
  } else {
    // One line per failed connection naming what happened, then the error count.
    EXPECT_GE(lines.size(), 2u) << err;
    EXPECT_LE(lines.size(), static_cast<size_t>(kConnections) + 1) << err;
    for (size_t i = 0; i + 1 < lines.size(); ++i) {
      EXPECT_TRUE(lines[i].starts_with("gillab load: connection ")) << err;
      const bool named = lines[i].find(endpoint) != std::string::npos ||
                         lines[i].find(endpoint.substr(6)) != std::string::npos;
      EXPECT_TRUE(named) << "the error names no endpoint: " << lines[i];
    }
    if (!lines.empty()) {
      EXPECT_NE(lines.back().find("error(s)"), std::string::npos) << err;
    }
  }
  EXPECT_EQ(err.find("terminate"), std::string::npos) << err;
  EXPECT_LT(took_s, kReplyTimeoutMs / 1000.0 + 5) << "the client took long to notice";

  // 4. Nothing the killed server started survives it.
  for (pid_t pid : server_children) EXPECT_FALSE(AliveNotZombie(pid)) << "orphan pid " << pid;

  // 5. The next server on the same name (or any port) works, and owns every entry of the name.
  const std::string next_bind = bind;
  Child next(ServeArgs(next_bind));
  const std::string next_line = next.ReadLine(20000);
  ASSERT_TRUE(next_line.starts_with("listening ")) << next.Stderr();
  const std::string next_endpoint = next_line.substr(10);
  Child check(LoadArgs(next_endpoint, 200, 1));
  EXPECT_EQ(check.Wait(30000), 0) << check.Stderr();
  if (c.kind == "multiprocessing") {
    // The old run's queues were removed on start; the finished connection's go
    // once the server's connection thread has read the client's "bye" (bounded wait).
    const std::set<std::string> only_control = {next_endpoint.substr(6) + ".ctl"};
    const auto give_up = Clock::now() + std::chrono::seconds(5);
    while (NameEntries(next_endpoint, c.kind) != only_control && Clock::now() < give_up) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    EXPECT_EQ(NameEntries(next_endpoint, c.kind), only_control);
  } else if (c.transport_name == "ipc") {
    EXPECT_EQ(NameEntries(next_endpoint, c.kind).size(), 1u) << "the new server's socket file";
  }
  EXPECT_TRUE(ChildrenOf(next.pid()).empty()) << "a server kind that starts processes: check their cleanup";
  next.Signal(SIGTERM);
  EXPECT_EQ(next.Wait(10000), 0) << next.Stderr();
  EXPECT_TRUE(NameEntries(next_endpoint, c.kind).empty()) << "a clean exit leaves nothing of its name";
}

INSTANTIATE_TEST_SUITE_P(
    Kinds, CrashCleanup,
    ::testing::Values(Case{"blocking", "native", "tcp"}, Case{"blocking", "toy", "tcp"},
                      Case{"nonblocking", "native", "tcp"}, Case{"nonblocking", "toy", "tcp"},
                      Case{"threaded", "native", "tcp"}, Case{"threaded", "toy", "tcp"},
                      Case{"zmq", "native", "tcp"}, Case{"zmq", "toy", "tcp"},
                      Case{"zmq", "native", "ipc"}, Case{"zmq", "toy", "ipc"},
                      Case{"multiprocessing", "native", "ipc"}, Case{"multiprocessing", "toy", "ipc"}),
    [](const ::testing::TestParamInfo<Case>& info) {
      return info.param.kind + "_" + info.param.engine + "_" + info.param.transport_name;
    });

}  // namespace
}  // namespace gillab::servers
