// http_server_test.cc — `--protocol http` (design §11) on the blocking,
// nonblocking and threaded servers, in process, with the native and toy
// engines and both head parsers: every target, keep-alive, pipelining,
// Connection: close, HTTP/1.0, no delayed-ACK stall; and bad input (one
// status or close, exactly one stderr line naming the peer, the next client
// served). Clients are raw sockets, as curl would write the bytes.
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <fmt/core.h>
#include <gtest/gtest.h>

#include "servers/wait_for_test_util.h"
#include "servers/engine.h"
#include "servers/fake_engine_test_util.h"
#include "servers/http_parser.h"
#include "servers/http_routes.h"
#include "servers/server.h"
#include "servers/socket.h"

namespace gillab::servers {
namespace {

using namespace std::chrono_literals;

constexpr int kClientTimeoutMs = 10000;  // a hung server fails the test instead of hanging it
constexpr uint64_t kMaxMessageBytes = 1 << 20;

// Sends fd 2 to a file for its lifetime; text() reads what was written so far.
class StderrToFile {
 public:
  StderrToFile() {
    std::fflush(stderr);
    char path[] = "/tmp/gillab_http_test_XXXXXX";
    file_ = ::mkstemp(path);
    ::unlink(path);
    saved_ = ::dup(2);
    ::dup2(file_, 2);
  }
  ~StderrToFile() {
    std::fflush(stderr);
    ::dup2(saved_, 2);
    ::close(saved_);
    ::close(file_);
  }
  std::string text() const {
    std::fflush(stderr);
    std::string out;
    char buf[4096];
    for (off_t at = 0;;) {
      const ssize_t n = ::pread(file_, buf, sizeof buf, at);
      if (n <= 0) return out;
      out.append(buf, static_cast<size_t>(n));
      at += n;
    }
  }
  // Lines that name `peer`.
  int LinesNaming(const std::string& peer) const {
    const std::string all = text();
    int n = 0;
    for (size_t at = 0; (at = all.find(peer + ":", at)) != std::string::npos; at += peer.size()) ++n;
    return n;
  }

 private:
  int file_ = -1;
  int saved_ = -1;
};

struct Response {
  int status = 0;
  std::string head;
  std::string body;
};

class HttpClient {
 public:
  explicit HttpClient(const std::string& endpoint) : fd_(ConnectTcp(ParseTcpEndpoint(endpoint))) {
    SetRecvTimeoutMs(fd_.get(), kClientTimeoutMs);
  }
  std::string name() const {
    TcpEndpoint me = LocalEndpoint(fd_.get());
    return me.host + ":" + std::to_string(me.port);
  }
  int fd() const { return fd_.get(); }
  void Send(std::string_view bytes) { ASSERT_TRUE(SendAll(fd_.get(), bytes)) << std::strerror(errno); }
  // The next response; status 0 if the connection ended first.
  Response Read() {
    Response r;
    size_t end;
    while ((end = buffer_.find("\r\n\r\n")) == std::string::npos) {
      if (!Fill()) return r;
    }
    r.head = buffer_.substr(0, end + 4);
    r.status = std::atoi(r.head.c_str() + 9);
    const size_t at = r.head.find("Content-Length: ");
    const size_t length = at == std::string::npos ? 0 : std::strtoull(r.head.c_str() + at + 16, nullptr, 10);
    while (buffer_.size() < end + 4 + length) {
      if (!Fill()) return Response{};
    }
    r.body = buffer_.substr(end + 4, length);
    buffer_.erase(0, end + 4 + length);
    return r;
  }
  Response RoundTrip(std::string_view request) {
    Send(request);
    return Read();
  }
  // True once the server closed (FIN or RST) with nothing more to read.
  bool ClosedByServer() {
    char buf[4096];
    const ssize_t n = RecvSome(fd_.get(), buf, sizeof buf);
    return n == 0 || (n < 0 && errno == ECONNRESET);
  }
  void Close() { fd_.reset(); }

 private:
  bool Fill() {
    char buf[65536];
    const ssize_t n = RecvSome(fd_.get(), buf, sizeof buf);
    if (n <= 0) return false;
    buffer_.append(buf, static_cast<size_t>(n));
    return true;
  }
  UniqueFd fd_;
  std::string buffer_;
};

std::string Get(std::string_view target, std::string_view extra = "") {
  return fmt::format("GET {} HTTP/1.1\r\nHost: t\r\n{}\r\n", target, extra);
}
std::string Post(std::string_view target, std::string_view body) {
  return fmt::format("POST {} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{}", target, body.size(), body);
}

struct Param {
  std::string kind;
  std::string engine;  // native | toy
  std::string parser;  // native | vm
};

std::string ParamName(const testing::TestParamInfo<Param>& info) {
  return info.param.kind + "_" + info.param.engine + "_" + info.param.parser;
}

std::vector<Param> AllParams() {
  std::vector<Param> out;
  for (const char* kind : {"blocking", "nonblocking", "threaded", "green", "transactional"}) {
    out.push_back({kind, "native", "native"});
    out.push_back({kind, "toy", "native"});
    out.push_back({kind, "toy", "vm"});
  }
  out.push_back({"parallel", "toy", "native"});  // design §12: handlers in parallel contexts (toy engine only)
  out.push_back({"parallel", "toy", "vm"});
  return out;
}

// The engine and server that `gillab serve --protocol http` builds.
class HttpServerTest : public testing::TestWithParam<Param> {
 protected:
  void SetUp() override {
    auto routes = std::make_shared<HttpRoutes>();
    ServerOptions options{.kind = GetParam().kind, .endpoint = "tcp://127.0.0.1:0",
                          .max_message_bytes = kMaxMessageBytes, .protocol = "http",
                          .http_parser = GetParam().parser, .http_routes = nullptr, .http_parser_handler_id = 0};
    if (GetParam().parser == "vm") options.http_parser_handler_id = routes->AddHandler("http_request");
    EngineOptions engine_options;
    engine_options.engine = GetParam().engine;
    engine_options.extra_handlers = routes->handler_names();
    options.http_routes = routes;
    engine_ = MakeEngine(engine_options);
    server_ = MakeServer(options, *engine_);
    server_->Bind();
    thread_ = std::thread([this] { server_->Run(); });
  }
  void TearDown() override {
    server_->Stop();
    thread_.join();
  }
  std::string endpoint() const { return server_->endpoint(); }
  // The next client is served: a fresh connection gets GET / answered.
  void ExpectNextClientServed() {
    HttpClient next(endpoint());
    EXPECT_EQ(next.RoundTrip(Get("/")).status, 200);
  }

  std::unique_ptr<Engine> engine_;
  std::unique_ptr<Server> server_;
  std::thread thread_;
};

TEST_P(HttpServerTest, AnswersEveryTargetOnOneKeepAliveConnection) {
  HttpClient client(endpoint());
  Response root = client.RoundTrip(Get("/"));
  EXPECT_EQ(root.status, 200);
  EXPECT_NE(root.body.find("gillab"), std::string::npos);
  EXPECT_NE(root.head.find("Connection: keep-alive"), std::string::npos);
  Response page = client.RoundTrip(Get("/static"));
  EXPECT_EQ(page.status, 200);
  EXPECT_EQ(page.body.size(), kHttpStaticPageBytes);
  EXPECT_EQ(page.body, HttpStaticPage());
  EXPECT_EQ(client.RoundTrip(Post("/echo", "hello, world")).body, "hello, world");
  EXPECT_EQ(client.RoundTrip(Post("/echo", "")).status, 200);
  Response primes = client.RoundTrip(Get("/primes/10000"));
  EXPECT_EQ(primes.status, 200);
  EXPECT_EQ(primes.body, "1229");
  EXPECT_EQ(client.RoundTrip(Get("/static?x=1")).body.size(), kHttpStaticPageBytes);
}

TEST_P(HttpServerTest, PipelinedRequestsAreAnsweredInOrder) {
  HttpClient client(endpoint());
  client.Send(Post("/echo", "one") + Get("/primes/100") + Post("/echo", "three") + Get("/nope") + Get("/"));
  EXPECT_EQ(client.Read().body, "one");
  EXPECT_EQ(client.Read().body, "25");
  EXPECT_EQ(client.Read().body, "three");
  EXPECT_EQ(client.Read().status, 404);
  EXPECT_EQ(client.Read().status, 200);
}

TEST_P(HttpServerTest, TenThousandPipelinedRequestsInOneWrite) {
  HttpClient client(endpoint());
  constexpr int kRequests = 10000;
  std::string batch;
  for (int i = 0; i < kRequests; ++i) batch += Post("/echo", std::to_string(i));
  // The replies may fill the socket buffers before the batch is written: send from another thread.
  std::thread writer([&] { SendAll(client.fd(), batch); });
  int in_order = 0;
  for (int i = 0; i < kRequests; ++i) {
    Response r = client.Read();
    if (r.status != 200 || r.body != std::to_string(i)) break;
    ++in_order;
  }
  writer.join();
  EXPECT_EQ(in_order, kRequests);
}

TEST_P(HttpServerTest, ConnectionCloseIsHonouredAfterTheReply) {
  HttpClient client(endpoint());
  Response r = client.RoundTrip(Get("/", "Connection: close\r\n"));
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.head.find("Connection: close"), std::string::npos);
  EXPECT_TRUE(client.ClosedByServer());
  ExpectNextClientServed();
}

TEST_P(HttpServerTest, Http10ClosesUnlessKeepAliveAsked) {
  HttpClient plain(endpoint());
  EXPECT_EQ(plain.RoundTrip("GET /static HTTP/1.0\r\n\r\n").body.size(), kHttpStaticPageBytes);
  EXPECT_TRUE(plain.ClosedByServer());
  HttpClient keep(endpoint());
  EXPECT_EQ(keep.RoundTrip("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").status, 200);
  EXPECT_EQ(keep.RoundTrip("GET /primes/10 HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").body, "4");
}

// A reply written as head then body would meet Nagle + delayed ACK: ~40 ms a
// request. 50 sequential requests under 1 s means none of them waited.
TEST_P(HttpServerTest, KeepAliveClientSeesNoDelayedAckStall) {
  HttpClient client(endpoint());
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 50; ++i) {
    const Response r = i % 2 ? client.RoundTrip(Get("/static")) : client.RoundTrip(Post("/echo", std::string(2000, 'x')));
    ASSERT_EQ(r.status, 200);
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
}

// ---------------------------------------------------------------------------
// Bad input: the status (or a close), one stderr line naming the peer, the
// connection closed where the framing is lost, the next client served.

struct BadCase {
  const char* name;
  std::string request;
  int status;         // the reply expected (after any good replies before it)
  int good_before;    // 200 replies expected first
  bool closes;
};

std::vector<BadCase> BadCases() {
  return {
      {"no_version", "GET /\r\n\r\n", 400, 0, true},
      {"request_line_two_spaces", "GET  / HTTP/1.1\r\n\r\n", 400, 0, true},
      {"request_line_garbage", "\x01\x02 hello\r\n\r\n", 400, 0, true},
      {"bad_version", "GET / HTTX/1.1\r\n\r\n", 400, 0, true},
      {"header_without_colon", "GET / HTTP/1.1\r\nHost t\r\n\r\n", 400, 0, true},
      {"negative_content_length", "POST /echo HTTP/1.1\r\nContent-Length: -5\r\n\r\n", 400, 0, true},
      {"conflicting_content_length", "POST /echo HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400, 0,
       true},
      {"chunked", "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 501, 0, true},
      {"body_longer_than_announced", "POST /echo HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcdef\r\n\r\n", 400, 1, true},
      {"head_past_8_KiB", "GET / HTTP/1.1\r\nX-Big: " + std::string(9000, 'a') + "\r\n\r\n", 431, 0, true},
      {"body_above_max_message_bytes", "POST /echo HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n", 413, 0, true},
      {"non_ascii_method", "G\xc3\x89T / HTTP/1.1\r\n\r\n", 400, 0, true},
      {"non_ascii_target", "GET /\xc3\xa9t\xc3\xa9 HTTP/1.1\r\n\r\n", 404, 0, false},
      {"unknown_target", "GET /nowhere HTTP/1.1\r\n\r\n", 404, 0, false},
      {"unknown_method", "DELETE /echo HTTP/1.1\r\n\r\n", 405, 0, false},
      {"method_not_allowed_on_target", "POST /static HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi", 405, 0, false},
  };
}

TEST_P(HttpServerTest, BadRequestsGetTheirStatusOneLineAndTheNextClientIsServed) {
  for (const BadCase& c : BadCases()) {
    SCOPED_TRACE(c.name);
    StderrToFile err;
    HttpClient client(endpoint());
    client.Send(c.request);
    for (int i = 0; i < c.good_before; ++i) EXPECT_EQ(client.Read().status, 200);
    Response r = client.Read();
    EXPECT_EQ(r.status, c.status) << r.head;
    if (c.closes) {
      EXPECT_NE(r.head.find("Connection: close"), std::string::npos);
      EXPECT_TRUE(client.ClosedByServer());
    } else {
      EXPECT_EQ(client.RoundTrip(Get("/primes/10")).body, "4");  // the connection goes on
    }
    EXPECT_TRUE(WaitFor([&] { return err.LinesNaming(client.name()) >= 1; }));
    EXPECT_EQ(err.LinesNaming(client.name()), 1) << err.text();
    client.Close();  // the blocking server serves the next client once this one is gone
    ExpectNextClientServed();
  }
}

TEST_P(HttpServerTest, AbsoluteFormTargetIsServed) {
  HttpClient client(endpoint());
  EXPECT_EQ(client.RoundTrip(Get("http://127.0.0.1/static")).body.size(), kHttpStaticPageBytes);
  EXPECT_EQ(client.RoundTrip(Get("HTTP://example.org:80/primes/100")).body, "25");
}

TEST_P(HttpServerTest, ClientClosingMidBodyCostsOneLine) {
  StderrToFile err;
  std::string peer;
  {
    HttpClient client(endpoint());
    peer = client.name();
    client.Send("POST /echo HTTP/1.1\r\nContent-Length: 100\r\n\r\nonly some");
  }  // closed 91 bytes short
  EXPECT_TRUE(WaitFor([&] { return err.LinesNaming(peer) >= 1; }));
  ExpectNextClientServed();
  EXPECT_EQ(err.LinesNaming(peer), 1) << err.text();
  EXPECT_NE(err.text().find("mid-request"), std::string::npos);
}

// A slow client sending its request a byte at a time while another is served in full;
// the blocking server serves one client at a time by design, so not there.
TEST_P(HttpServerTest, SlowlorisDoesNotHoldUpOtherClients) {
  if (GetParam().kind == "blocking") return;
  HttpClient slow(endpoint());
  const std::string request = Get("/primes/100");
  slow.Send(request.substr(0, 5));
  HttpClient other(endpoint());
  for (int i = 0; i < 5; ++i) EXPECT_EQ(other.RoundTrip(Get("/static")).status, 200);
  for (size_t i = 5; i < request.size(); ++i) {
    slow.Send(request.substr(i, 1));
    if (i % 4 == 0) {
      EXPECT_EQ(other.RoundTrip(Post("/echo", "still here")).body, "still here");
    }
    std::this_thread::sleep_for(5ms);  // pacing the attack, not synchronisation
  }
  EXPECT_EQ(slow.Read().body, "25");
}

// ---------------------------------------------------------------------------
// The lock discipline of design §1 holds for http as for frames: FakeEngine's
// lock is a mutex the test can take itself (native parser: the fake engine
// cannot run the vm parser program).

// The parallel server (design §12): handlers that write the main heap, loop,
// or allocate past --context-max-bytes end only their own request (HTTP 500,
// one stderr line), the connection goes on; the exit stats count them.
class ParallelHttpTest : public testing::Test {
 protected:
  void SetUp() override {
    const std::vector<std::pair<std::string, std::string>> programs = {
        {"write", "global hits\nfunc handle request work_units\n  push 1\n  gstore hits\n  push \"no\"\n  ret\nend\n"},
        {"spin", "func handle request work_units\nloop:\n  jmp loop\nend\n"},
        {"grow", "func handle request work_units\n  var s\n  push \"x\"\n  store s\nloop:\n  load s\n  load s\n"
                 "  concat\n  store s\n  jmp loop\nend\n"},
    };
    std::vector<std::string> mounts;
    for (const auto& [name, text] : programs) {
      const std::string path = fmt::format("/tmp/gillab_parallel_{}_{}.gasm", ::getpid(), name);
      FILE* f = std::fopen(path.c_str(), "w");
      ASSERT_NE(f, nullptr);
      std::fputs(text.c_str(), f);
      std::fclose(f);
      files_.push_back(path);
      mounts.push_back("/" + name + "=" + path);
    }
    auto routes = std::make_shared<HttpRoutes>(mounts);
    ServerOptions options{.kind = "parallel", .endpoint = "tcp://127.0.0.1:0", .max_message_bytes = kMaxMessageBytes,
                          .protocol = "http", .http_parser = "native", .http_routes = routes,
                          .http_parser_handler_id = 0, .workers = 2, .context_max_bytes = 64 * 1024,
                          .context_stall_ms = 100};
    EngineOptions engine_options;
    engine_options.engine = "toy";
    engine_options.extra_handlers = routes->handler_names();
    engine_ = MakeEngine(engine_options);
    server_ = MakeServer(options, *engine_);
    server_->Bind();
    thread_ = std::thread([this] { server_->Run(); });
  }
  void TearDown() override {
    if (thread_.joinable()) {
      server_->Stop();
      thread_.join();
    }
    for (const auto& f : files_) ::unlink(f.c_str());
  }

  std::vector<std::string> files_;
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<Server> server_;
  std::thread thread_;
};

TEST_F(ParallelHttpTest, FailingLoopingAndOverAllocatingHandlersEndOnlyTheirRequest) {
  StderrToFile err;
  HttpClient client(server_->endpoint());
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"/write/x", "may not change a main-heap object: global 'hits'"},
      {"/spin/x", "stopped by the stall report"},
      {"/grow/x", "more than --context-max-bytes (65536 bytes)"},
  };
  int lines = 0;
  for (const auto& [target, what] : cases) {
    SCOPED_TRACE(target);
    EXPECT_EQ(client.RoundTrip(Get(target)).status, 500);
    ++lines;
    EXPECT_TRUE(WaitFor([&] { return err.LinesNaming(client.name()) >= lines; }));
    EXPECT_NE(err.text().find(what), std::string::npos) << err.text();
    EXPECT_EQ(client.RoundTrip(Get("/primes/10")).body, "4");  // the connection goes on
  }
  EXPECT_EQ(err.LinesNaming(client.name()), 3) << err.text();
  EXPECT_NE(err.text().find("gillab serve: stall: a handler ran"), std::string::npos) << err.text();
  client.Close();
  server_->Stop();
  thread_.join();
  const nlohmann::json stats = engine_->Stats();
  ASSERT_TRUE(stats.contains("parallel_contexts")) << stats.dump();
  uint64_t failed = 0, stopped = 0, contexts = 0;
  for (const auto& w : stats["parallel_contexts"]) {
    failed += w["failed"].get<uint64_t>();
    stopped += w["stopped"].get<uint64_t>();
    contexts += w["contexts"].get<uint64_t>();
    EXPECT_LE(w["arena_high_water_bytes"].get<int64_t>(), 2 * 64 * 1024);
  }
  EXPECT_EQ(failed, 3u);
  EXPECT_EQ(stopped, 1u);
  EXPECT_EQ(contexts, 6u);
}

class HttpLockTest : public testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    server_ = MakeServer({.kind = GetParam(), .endpoint = "tcp://127.0.0.1:0", .max_message_bytes = kMaxMessageBytes,
                          .protocol = "http", .http_parser = "native", .http_routes = nullptr,
                          .http_parser_handler_id = 0},
                         engine_);
    server_->Bind();
    thread_ = std::thread([this] { server_->Run(); });
  }
  void TearDown() override {
    server_->Stop();
    thread_.join();
    EXPECT_EQ(engine_.violations(), 0u) << "a handler ran, or a blocking section began, without the lock";
    EXPECT_EQ(engine_.attached(), engine_.detached());
  }
  FakeEngine engine_;
  std::unique_ptr<Server> server_;
  std::thread thread_;
};

TEST_P(HttpLockTest, ReleasesTheLockAroundEveryRecvAndSend) {
  HttpClient client(server_->endpoint());
  ASSERT_EQ(client.RoundTrip(Post("/echo", "warm-up")).body, "warm-up");
  const uint64_t sections = engine_.blocking_sections();
  const uint64_t handled = engine_.handled();
  constexpr int kRequests = 200;
  for (int i = 0; i < kRequests; ++i) ASSERT_EQ(client.RoundTrip(Post("/echo", "ping")).body, "ping");
  EXPECT_EQ(engine_.handled() - handled, uint64_t{kRequests});
  EXPECT_GE(engine_.blocking_sections() - sections, uint64_t{2 * kRequests - 1});
}

TEST_P(HttpLockTest, HandlerWaitsForTheLock) {
  HttpClient client(server_->endpoint());
  ASSERT_EQ(client.RoundTrip(Post("/echo", "warm-up")).body, "warm-up");
  ASSERT_TRUE(WaitFor([&] { return engine_.gil().try_lock(); }));
  const uint64_t handled = engine_.handled();
  SetRecvTimeoutMs(client.fd(), 200);
  client.Send(Post("/echo", "blocked"));
  char byte;
  EXPECT_LT(RecvSome(client.fd(), &byte, 1), 0) << "a reply came while the test held the lock";
  EXPECT_EQ(engine_.handled(), handled);
  engine_.gil().unlock();
  SetRecvTimeoutMs(client.fd(), kClientTimeoutMs);
  EXPECT_EQ(client.Read().body, "blocked");
}

INSTANTIATE_TEST_SUITE_P(Servers, HttpLockTest, testing::Values("blocking", "nonblocking", "threaded", "green", "transactional"));

INSTANTIATE_TEST_SUITE_P(All, HttpServerTest, testing::ValuesIn(AllParams()), ParamName);

}  // namespace
}  // namespace gillab::servers
