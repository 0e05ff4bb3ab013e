// serve_command_test.cc — `gillab serve` as a process (design §5): the
// `listening ENDPOINT` line, echo over the wire, SIGTERM/SIGINT ending in one
// JSON object and exit status 0, bad input lines on stderr, usage errors
// ending in status 2. Every child is reaped; every wait is bounded.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <fmt/core.h>
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
  pid_t pid() const { return pid_; }

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

// `serve --trace FILE`: a Chrome trace-event timeline of the whole run that
// Perfetto opens: one named track per thread, complete (X) slices that never
// overlap on a track, time running forward, covering the run.
TEST(ServeCommand, TraceFileIsATimelineOfEveryThread) {
  char dir_template[] = "/tmp/gillab-serve-trace-XXXXXX";
  ASSERT_NE(mkdtemp(dir_template), nullptr);
  const std::string path = std::string(dir_template) + "/serve.json";
  const auto started = std::chrono::steady_clock::now();
  GillabProcess serve({"serve", "--server", "blocking", "--engine", "toy", "--cpu-threads", "1",
                       "--switch-interval-us", "1000", "--trace", path});
  const std::string endpoint = ListeningEndpoint(serve);
  {
    UniqueFd conn = ConnectTcp(ParseTcpEndpoint(endpoint));
    SetRecvTimeoutMs(conn.get(), kTimeoutMs);
    for (int i = 0; i < 30; ++i) ASSERT_EQ(RoundTrip(conn.get(), "t"), "t");
  }
  std::this_thread::sleep_for(100ms);
  serve.Signal(SIGTERM);
  serve.ReadStdoutToEnd();
  EXPECT_EQ(serve.Wait(), 0) << serve.ReadStderrToEnd();
  const double run_us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - started).count();

  std::ifstream in(path);
  ASSERT_TRUE(in) << "no trace at " << path;
  const nlohmann::json trace = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  std::remove(path.c_str());
  rmdir(dir_template);
  ASSERT_FALSE(trace.is_discarded()) << "trace is not valid JSON";
  EXPECT_EQ(trace.at("otherData").at("gil").at("policy"), "newgil");
  EXPECT_EQ(trace.at("otherData").at("gil").at("switch_interval_us"), 1000);
  std::map<int64_t, std::string> names;
  std::map<int64_t, std::vector<nlohmann::json>> events;
  for (const auto& e : trace.at("traceEvents")) {
    if (e.at("ph") == "M") {
      if (e.at("name") == "thread_name") names[e.at("tid").get<int64_t>()] = e.at("args").at("name");
    } else {
      events[e.at("tid").get<int64_t>()].push_back(e);
    }
  }
  std::set<std::string> track_names;
  for (const auto& [tid, name] : names) track_names.insert(name);
  EXPECT_TRUE(track_names.count("io") && track_names.count("cpu-0")) << trace.at("traceEvents").dump().substr(0, 2000);
  double first_us = 1e300, last_us = 0;
  int io_holds = 0, io_blocking = 0;
  for (const auto& [tid, list] : events) {
    ASSERT_TRUE(names.count(tid)) << "track " << tid << " has no name";
    double last_ts = 0, last_end = 0;
    for (const auto& e : list) {
      const std::string ph = e.at("ph");
      ASSERT_TRUE(ph == "X" || ph == "i") << e.dump();  // complete slices: nothing left open
      const double ts = e.at("ts");
      EXPECT_GE(ts, last_ts) << names[tid] << ": " << e.dump();
      last_ts = ts;
      first_us = std::min(first_us, ts);
      if (ph == "X") {
        EXPECT_GE(ts, last_end - 0.002) << names[tid] << " slices overlap at " << e.dump();
        last_end = ts + e.at("dur").get<double>();
        last_us = std::max(last_us, last_end);
        if (names[tid] == "io") {
          io_holds += e.at("name") == "holding";
          io_blocking += e.at("name") == "blocking I/O";
        }
      }
    }
  }
  EXPECT_GE(io_holds, 30);  // at least one hold per request
  EXPECT_GE(io_blocking, 30);
  // The timeline covers the served part of the run: at least the 100 ms of
  // idling before SIGTERM, at most the process's whole life.
  EXPECT_GE(last_us - first_us, 100e3);
  EXPECT_LE(last_us - first_us, run_us);
}

TEST(ServeCommand, TraceIsRefusedForAnEngineWithoutAToyLock) {
  GillabProcess serve({"serve", "--server", "blocking", "--engine", "native", "--trace", "/tmp/never-written.json"});
  serve.ReadStdoutToEnd();
  EXPECT_EQ(serve.Wait(), 2);
  const std::string err = serve.ReadStderrToEnd();
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
  EXPECT_NE(err.find("trace"), std::string::npos) << err;
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

// --protocol http through the real binary: the vm parser's calls are not
// counted as requests, the exit JSON names the protocol, and 400 malformed
// requests (one new connection each) leave the server's RSS flat.
TEST(ServeCommand, HttpServesCountsRequestsAndKeepsRssFlatUnderBadRequests) {
  GillabProcess serve({"serve", "--server", "nonblocking", "--engine", "toy", "--protocol", "http", "--http-parser", "vm"});
  const TcpEndpoint endpoint = ParseTcpEndpoint(ListeningEndpoint(serve));
  auto exchange = [&](const std::string& request) {
    UniqueFd conn = ConnectTcp(endpoint);
    SetRecvTimeoutMs(conn.get(), kTimeoutMs);
    EXPECT_TRUE(SendAll(conn.get(), request));
    std::string reply;
    char buf[8192];
    ssize_t n;
    while ((n = RecvSome(conn.get(), buf, sizeof buf)) > 0) reply.append(buf, static_cast<size_t>(n));
    return reply;
  };
  const std::string ok = exchange("GET /primes/100 HTTP/1.1\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(ok.substr(0, 12), "HTTP/1.1 200");
  EXPECT_EQ(ok.substr(ok.size() - 2), "25");
  auto rss_kb = [&] {
    std::ifstream status(fmt::format("/proc/{}/status", serve.pid()));
    for (std::string line; std::getline(status, line);) {
      if (line.starts_with("VmRSS:")) return std::stoll(line.substr(6));
    }
    return -1LL;
  };
  for (int i = 0; i < 100; ++i) exchange("GET / HTTP/1.1\r\nHost t\r\n\r\n");  // warm-up
  const long long before_kb = rss_kb();
  for (int i = 0; i < 300; ++i) {
    ASSERT_EQ(exchange(i % 2 ? "GET / HTTP/1.1\r\nHost t\r\n\r\n" : "POST /echo HTTP/1.1\r\nContent-Length: -1\r\n\r\n")
                  .substr(0, 12),
              "HTTP/1.1 400");
  }
  EXPECT_LT(rss_kb() - before_kb, 2048) << "RSS grew by " << rss_kb() - before_kb << " KiB over 300 bad requests";
  serve.Signal(SIGTERM);
  const std::string out = serve.ReadStdoutToEnd();
  const std::string err = serve.ReadStderrToEnd();
  EXPECT_EQ(serve.Wait(), 0) << err;
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 400);
  const nlohmann::json stats = nlohmann::json::parse(out);
  EXPECT_EQ(stats.at("requests"), 1);
  EXPECT_EQ(stats.at("protocol"), "http");
  EXPECT_EQ(stats.at("http_parser"), "vm");
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
      {"serve", "--server", "zmq", "--engine", "native", "--protocol", "http"},
      {"serve", "--server", "multiprocessing", "--engine", "toy", "--protocol", "http"},
      {"serve", "--server", "blocking", "--engine", "native", "--protocol", "bogus"},
      {"serve", "--server", "blocking", "--engine", "native", "--protocol", "http", "--http-parser", "vm"},
      {"serve", "--server", "blocking", "--engine", "toy", "--http-parser", "vm"},
      {"serve", "--server", "blocking", "--engine", "toy", "--protocol", "http", "--mount", "nopath"},
      {"serve", "--server", "blocking", "--engine", "toy", "--protocol", "http", "--mount", "/static=echo"},
      {"serve", "--server", "blocking", "--engine", "toy", "--protocol", "http", "--mount", "/x=/nonexistent.gasm"},
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
