// http_client_test.cc — gillab load over HTTP against a tiny in-test HTTP/1.1
// server (requests parsed by hand here, so a bug in the client's Beast-based
// reply parsing cannot hide on both sides): keep-alive, pipelining, non-2xx
// and transport errors counted, a server that closes after every reply.
#include "servers/http_client.h"

#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "gil/error.h"
#include "servers/fake_tcp_server_test_util.h"
#include "servers/load_client.h"
#include "servers/socket.h"

namespace gillab::servers {
namespace {

struct FakeHttpBehaviour {
  bool close_each = false;     // HTTP/1.0-style: Connection: close after every reply
  int64_t hang_up_after = -1;  // close every connection after this many replies, without a word
};

// One thread per connection. Routes: POST /echo (body back), GET /static
// (6,600 bytes), GET /fail (500); anything else 404.
class FakeHttpServer {
 public:
  explicit FakeHttpServer(FakeHttpBehaviour behaviour = {})
      : behaviour_(behaviour), tcp_([this](int fd) { Serve(fd); }) {}
  const std::string& endpoint() const { return tcp_.endpoint(); }
  int accepted() const { return tcp_.accepted(); }
  int64_t requests() const { return requests_; }
  // The most complete requests found in one recv(): > 1 only if the client pipelined.
  int64_t most_requests_in_one_read() const { return most_in_one_read_; }

 private:
  static std::string Reply(int status, const std::string& body, bool close) {
    const char* reason = status == 200 ? "OK" : status == 404 ? "Not Found" : "Internal Server Error";
    return "HTTP/1.1 " + std::to_string(status) + " " + reason + "\r\nContent-Length: " + std::to_string(body.size()) +
           (close ? "\r\nConnection: close" : "") + "\r\n\r\n" + body;
  }

  void Serve(int fd) {
    std::string in;
    char chunk[65536];
    int64_t replies = 0;
    for (;;) {
      const ssize_t n = recv(fd, chunk, sizeof chunk, 0);
      if (n <= 0) break;
      in.append(chunk, static_cast<size_t>(n));
      std::string out;
      int64_t complete = 0;
      bool close_now = false;
      for (;;) {  // every complete request in the buffer
        const size_t head_end = in.find("\r\n\r\n");
        if (head_end == std::string::npos) break;
        const std::string head = in.substr(0, head_end);
        size_t body_bytes = 0;
        if (size_t at = head.find("Content-Length: "); at != std::string::npos) body_bytes = std::stoul(head.substr(at + 16));
        if (in.size() < head_end + 4 + body_bytes) break;
        const std::string body = in.substr(head_end + 4, body_bytes);
        in.erase(0, head_end + 4 + body_bytes);
        ++complete;
        ++requests_;
        if (head.starts_with("POST /echo ")) out += Reply(200, body, behaviour_.close_each);
        else if (head.starts_with("GET /static ")) out += Reply(200, std::string(6600, 's'), behaviour_.close_each);
        else if (head.starts_with("GET /fail ")) out += Reply(500, "boom", behaviour_.close_each);
        else out += Reply(404, "", behaviour_.close_each);
        if (behaviour_.close_each || ++replies == behaviour_.hang_up_after) {
          close_now = true;
          break;
        }
      }
      for (int64_t seen = most_in_one_read_; complete > seen && !most_in_one_read_.compare_exchange_weak(seen, complete);) {
      }
      if (!out.empty() && !SendAll(fd, out)) break;
      if (close_now) break;
    }
    shutdown(fd, SHUT_RDWR);
  }

  FakeHttpBehaviour behaviour_;
  std::atomic<int64_t> requests_{0};
  std::atomic<int64_t> most_in_one_read_{0};
  FakeTcpServer tcp_;  // last: its threads stop before the state they use goes
};

LoadOptions Http(const std::string& endpoint, const std::string& target, int64_t requests) {
  LoadOptions o;
  o.endpoint = endpoint;
  o.protocol = "http";
  o.http_target = target;
  o.requests = requests;
  o.message_bytes = 300;
  o.reply_timeout_ms = 5000;
  return o;
}

TEST(HttpLoad, KeepAliveEchoesEveryPostOnOneConnectionEach) {
  FakeHttpServer server;
  LoadOptions o = Http(server.endpoint(), "/echo", 400);
  o.connections = 2;
  o.warmup = 10;
  const LoadResult r = RunLoad(o);
  EXPECT_EQ(r.requests, 400);
  EXPECT_EQ(r.errors, 0) << (r.error_messages.empty() ? "" : r.error_messages[0]);
  EXPECT_EQ(r.non_2xx, 0);
  EXPECT_EQ(r.transport, "http");
  EXPECT_EQ(server.accepted(), 2);  // keep-alive: no reconnects
  EXPECT_EQ(server.requests(), 410);
  EXPECT_EQ(r.latency_ns.count(), 400u);
  EXPECT_EQ(r.ToJson()["non_2xx"], 0);
}

TEST(HttpLoad, OpenLoopKeepsTheScheduleOverHttp) {
  FakeHttpServer server;
  LoadOptions o = Http(server.endpoint(), "/echo", 100);
  o.connections = 2;
  o.rate = 2000;  // 100 requests over ~50 ms
  const LoadResult r = RunLoad(o);
  EXPECT_EQ(r.requests, 100);
  EXPECT_EQ(r.errors, 0);
  EXPECT_GE(r.seconds, 0.045);  // paced, not as fast as the server goes
  EXPECT_EQ(r.ToJson()["mode"], "open");
}

TEST(HttpLoad, GetOfAnyTargetAcceptsItsBody) {
  FakeHttpServer server;
  const LoadResult r = RunLoad(Http(server.endpoint(), "/static", 50));
  EXPECT_EQ(r.requests, 50);
  EXPECT_EQ(r.errors, 0);
}

TEST(HttpLoad, PipelinedRequestsLeaveTogetherAndAreAnsweredInOrder) {
  FakeHttpServer server;
  LoadOptions o = Http(server.endpoint(), "/echo", 320);
  o.pipeline = 16;
  const LoadResult r = RunLoad(o);
  EXPECT_EQ(r.requests, 320);
  EXPECT_EQ(r.errors, 0) << (r.error_messages.empty() ? "" : r.error_messages[0]);  // each echo matched its own request
  EXPECT_GT(server.most_requests_in_one_read(), 1);  // one write of 16 requests (16 x ~400 B fits one segment)
  EXPECT_EQ(server.accepted(), 1);
}

TEST(HttpLoad, Non2xxRepliesAreCountedNotMeasured) {
  FakeHttpServer server;
  const LoadResult missing = RunLoad(Http(server.endpoint(), "/nowhere", 30));
  EXPECT_EQ(missing.non_2xx, 30);
  EXPECT_EQ(missing.requests, 0);
  EXPECT_EQ(missing.errors, 0);
  const LoadResult failing = RunLoad(Http(server.endpoint(), "/fail", 7));
  EXPECT_EQ(failing.non_2xx, 7);
  ASSERT_FALSE(failing.error_messages.empty());
  EXPECT_NE(failing.error_messages[0].find("HTTP status 500"), std::string::npos);
}

TEST(HttpLoad, AServerClosingAfterEachReplyIsReconnectedLikeHttp10) {
  FakeHttpServer server({.close_each = true});
  const LoadResult r = RunLoad(Http(server.endpoint(), "/static", 25));
  EXPECT_EQ(r.requests, 25);
  EXPECT_EQ(r.errors, 0) << (r.error_messages.empty() ? "" : r.error_messages[0]);
  EXPECT_EQ(server.accepted(), 25);
}

TEST(HttpLoad, AHangUpMidRunIsOneErrorAndTheRestUnsent) {
  FakeHttpServer server({.hang_up_after = 5});
  LoadOptions o = Http(server.endpoint(), "/echo", 20);
  const LoadResult r = RunLoad(o);
  EXPECT_EQ(r.requests, 5);
  EXPECT_EQ(r.errors, 1);
  EXPECT_EQ(r.unsent, 14);  // the sixth request failed; fourteen were never sent
  ASSERT_EQ(r.error_messages.size(), 1u);
  EXPECT_NE(r.error_messages[0].find("closed the connection"), std::string::npos) << r.error_messages[0];
}

TEST(HttpLoad, PipeliningNeedsHttpAndTheClosedLoop) {
  LoadOptions o = Http("tcp://127.0.0.1:1", "/echo", 10);
  o.pipeline = 4;
  o.rate = 100;
  EXPECT_THROW(RunLoad(o), UsageError);
  o.rate = 0;
  o.protocol = "frame";
  EXPECT_THROW(RunLoad(o), UsageError);
  o = Http("tcp://127.0.0.1:1", "static", 10);
  EXPECT_THROW(RunLoad(o), UsageError);
}

TEST(HttpRequest, PostCarriesTheBodyAndGetNone) {
  EXPECT_EQ(HttpRequestText("/echo", "h:1", "abc"),
            "POST /echo HTTP/1.1\r\nHost: h:1\r\nContent-Type: application/octet-stream\r\nContent-Length: 3\r\n\r\nabc");
  EXPECT_EQ(HttpRequestText("/static", "h:1", "ignored"), "GET /static HTTP/1.1\r\nHost: h:1\r\n\r\n");
}

}  // namespace
}  // namespace gillab::servers
