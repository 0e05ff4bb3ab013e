// serve_command_test.cc — `gillab serve` as a process (design §5): the
// `listening ENDPOINT` line, echo over the wire, SIGTERM/SIGINT ending in one
// JSON object and exit status 0, bad input lines on stderr, usage errors
// ending in status 2. Every child is reaped; every wait is bounded.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "servers/frame.h"
#include "servers/socket.h"

namespace gillab::servers {
namespace {

using namespace std::chrono_literals;
constexpr int kTimeoutMs = 20000;

// One `gillab ARGS...` child with stdout and stderr on pipes.
class GillabProcess {
 public:
  explicit GillabProcess(std::vector<std::string> args) {
    args.insert(args.begin(), GILLAB_BINARY);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    int out[2], err[2];
    if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) throw std::runtime_error("pipe2");
    pid_ = fork();
    if (pid_ == 0) {
      dup2(out[1], STDOUT_FILENO);
      dup2(err[1], STDERR_FILENO);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(out[1]);
    close(err[1]);
    stdout_.reset(out[0]);
    stderr_.reset(err[0]);
  }
  ~GillabProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  void Signal(int signal) { kill(pid_, signal); }

  // One line from stdout without its newline; empty on timeout or EOF.
  std::string ReadStdoutLine() {
    std::string line;
    for (;;) {
      const size_t newline = out_buffer_.find('\n');
      if (newline != std::string::npos) {
        line = out_buffer_.substr(0, newline);
        out_buffer_.erase(0, newline + 1);
        return line;
      }
      if (!ReadSome(stdout_.get(), out_buffer_)) return "";
    }
  }
  std::string ReadStdoutToEnd() {
    while (ReadSome(stdout_.get(), out_buffer_)) {}
    return std::exchange(out_buffer_, "");
  }
  std::string ReadStderrToEnd() {
    std::string err;
    while (ReadSome(stderr_.get(), err)) {}
    return err;
  }
  // Exit status, or -1 if it had to be killed after the timeout or died of a signal.
  int Wait() {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kTimeoutMs);
    int status = 0;
    while (waitpid(pid_, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        kill(pid_, SIGKILL);
        waitpid(pid_, &status, 0);
        pid_ = -1;
        return -1;
      }
      std::this_thread::sleep_for(2ms);
    }
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

 private:
  static bool ReadSome(int fd, std::string& into) {
    pollfd p{.fd = fd, .events = POLLIN, .revents = 0};
    if (poll(&p, 1, kTimeoutMs) <= 0) return false;
    char buf[4096];
    const ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) return false;
    into.append(buf, static_cast<size_t>(n));
    return true;
  }

  pid_t pid_ = -1;
  UniqueFd stdout_, stderr_;
  std::string out_buffer_;
};

std::string ListeningEndpoint(GillabProcess& process) {
  const std::string line = process.ReadStdoutLine();
  const std::string prefix = "listening ";
  EXPECT_TRUE(line.starts_with(prefix + "tcp://127.0.0.1:")) << "first line: '" << line << "'";
  return line.starts_with(prefix) ? line.substr(prefix.size()) : "tcp://127.0.0.1:0";
}

std::string RoundTrip(int fd, std::string_view payload) {
  EXPECT_TRUE(SendFrame(fd, payload));
  FrameReader reader(uint64_t{1} << 30);
  std::string reply;
  EXPECT_EQ(RecvFrame(fd, reader, reply), RecvFrameResult::kFrame);
  return reply;
}

struct Param {
  std::string server;
  std::string engine;
};

class ServeCommandTest : public testing::TestWithParam<Param> {};

TEST_P(ServeCommandTest, ListensEchoesAndExitsWithStatsOnSigterm) {
  GillabProcess serve({"serve", "--server", GetParam().server, "--engine", GetParam().engine});
  const std::string endpoint = ListeningEndpoint(serve);
  int requests = 0;
  {
    UniqueFd conn = ConnectTcp(ParseTcpEndpoint(endpoint));
    SetRecvTimeoutMs(conn.get(), kTimeoutMs);
    for (size_t bytes : {size_t{0}, size_t{1}, size_t{64}, size_t{64} << 10, size_t{1} << 20}) {
      const std::string payload(bytes, static_cast<char>('a' + bytes % 26));
      EXPECT_EQ(RoundTrip(conn.get(), payload), payload) << bytes << " bytes";
      ++requests;
    }
    for (int i = 0; i < 100; ++i, ++requests) ASSERT_EQ(RoundTrip(conn.get(), std::to_string(i)), std::to_string(i));
  }
  serve.Signal(SIGTERM);
  const std::string out = serve.ReadStdoutToEnd();
  EXPECT_EQ(serve.Wait(), 0) << serve.ReadStderrToEnd();
  ASSERT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
  const nlohmann::json stats = nlohmann::json::parse(out);
  EXPECT_EQ(stats.at("server"), GetParam().server);
  EXPECT_EQ(stats.at("endpoint"), endpoint);
  EXPECT_EQ(stats.at("requests"), requests);
  EXPECT_EQ(stats.at("engine"), GetParam().engine);
  ASSERT_TRUE(stats.at("threads").is_array());
  if (GetParam().engine == "toy") {
    bool saw_io = false;
    for (const auto& t : stats.at("threads")) saw_io |= t.at("role") == "io" && t.at("acquisitions") > 0;
    EXPECT_TRUE(saw_io) << stats.dump();
  }
}

INSTANTIATE_TEST_SUITE_P(Servers, ServeCommandTest,
                         testing::Values(Param{"blocking", "native"}, Param{"nonblocking", "native"},
                                         Param{"threaded", "native"}, Param{"blocking", "toy"},
                                         Param{"nonblocking", "toy"}, Param{"threaded", "toy"}),
                         [](const auto& info) { return info.param.server + "_" + info.param.engine; });

TEST(ServeCommand, SigintEndsItCleanlyWithCpuThreads) {
  GillabProcess serve({"serve", "--server", "threaded", "--engine", "toy", "--cpu-threads", "1",
                       "--policy", "priority", "--lock-priority", "io=1,cpu=0"});
  const std::string endpoint = ListeningEndpoint(serve);
  {
    UniqueFd conn = ConnectTcp(ParseTcpEndpoint(endpoint));
    SetRecvTimeoutMs(conn.get(), kTimeoutMs);
    for (int i = 0; i < 20; ++i) ASSERT_EQ(RoundTrip(conn.get(), "x"), "x");
  }
  serve.Signal(SIGINT);
  const std::string out = serve.ReadStdoutToEnd();
  EXPECT_EQ(serve.Wait(), 0) << serve.ReadStderrToEnd();
  const nlohmann::json stats = nlohmann::json::parse(out);
  EXPECT_EQ(stats.at("requests"), 20);
  int cpu_threads = 0;
  for (const auto& t : stats.at("threads")) cpu_threads += t.at("role") == "cpu";
  EXPECT_EQ(cpu_threads, 1) << stats.dump();
}

TEST(ServeCommand, OversizedFrameGetsOneLineAndOtherClientsAreServed) {
  GillabProcess serve({"serve", "--server", "nonblocking", "--engine", "native", "--max-message-bytes", "100"});
  const TcpEndpoint endpoint = ParseTcpEndpoint(ListeningEndpoint(serve));
  UniqueFd bad = ConnectTcp(endpoint);
  SetRecvTimeoutMs(bad.get(), kTimeoutMs);
  const TcpEndpoint bad_local = LocalEndpoint(bad.get());
  ASSERT_TRUE(SendAll(bad.get(), std::string("\0\0\0\x65", 4)));  // 101 bytes announced
  char byte;
  EXPECT_EQ(RecvSome(bad.get(), &byte, 1), 0) << "server did not close the connection";
  UniqueFd good = ConnectTcp(endpoint);
  SetRecvTimeoutMs(good.get(), kTimeoutMs);
  EXPECT_EQ(RoundTrip(good.get(), std::string(100, 'g')), std::string(100, 'g'));
  serve.Signal(SIGTERM);
  serve.ReadStdoutToEnd();
  EXPECT_EQ(serve.Wait(), 0);
  EXPECT_EQ(serve.ReadStderrToEnd(),
            "gillab serve: 127.0.0.1:" + std::to_string(bad_local.port) +
                ": message of 101 bytes exceeds --max-message-bytes 100; closing connection\n");
}

// Each bad command line ends with status 2 and exactly one line on stderr.
TEST(ServeCommand, BadUsageExitsWithStatusTwoAndOneLine) {
  const std::vector<std::vector<std::string>> cases = {
      {"serve", "--server", "bogus", "--engine", "native"},
      {"serve", "--server", "blocking", "--engine", "bogus"},
      {"serve", "--server", "blocking", "--engine", "toy", "--policy", "bogus"},
      {"serve", "--server", "blocking", "--engine", "toy", "--handler", "/nonexistent/handler.gasm"},
      {"serve", "--server", "blocking", "--engine", "native", "--no-such-flag"},
      {"serve", "--server", "blocking", "--engine", "native", "--endpoint", "ipc://nope"},
      {"serve", "--server", "blocking", "--engine", "native", "--endpoint", "tcp://127.0.0.1:x"},
      {"serve", "--server", "blocking", "--engine", "native", "--cpu-threads", "-1"},
      {"serve", "--server", "blocking", "--engine", "toy", "--lock-priority", "gpu=3"},
      {"serve", "--server", "blocking", "--engine", "toy", "--os-priority", "cpu=nice:lots"},
      {"serve", "--engine", "native"},
  };
  for (const auto& args : cases) {
    GillabProcess serve(args);
    const std::string out = serve.ReadStdoutToEnd();
    const std::string err = serve.ReadStderrToEnd();
    std::string command;
    for (const auto& a : args) command += a + " ";
    EXPECT_EQ(serve.Wait(), 2) << command << "\nstderr: " << err;
    EXPECT_EQ(out, "") << command;
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << command << "\nstderr: " << err;
  }
}

}  // namespace
}  // namespace gillab::servers
