// http_client.h — the load client's HTTP/1.1 connection (design §11): keep-alive
// requests to one target, optionally pipelined, replies parsed with
// Boost.Beast's response parser (no hand-written HTTP parsing).
//
// Requests: `POST /echo` carries the payload as its body (Content-Length);
// any other target is a `GET` of that target and the payload is unused.
// Send() queues a request; the next Receive() writes every queued request in
// one write (so a pipeline of N leaves in one segment where it fits) and then
// reads the oldest outstanding reply. Replies come back in order (RFC 9112
// §9.3.2). A reply that says `Connection: close`, or an HTTP/1.0 reply without
// keep-alive (Python's http.server), ends the connection after that reply; the
// next Send() connects again, so a closing server is driven like wrk drives it.
// Failures (connect refused, the server closing with replies outstanding, a
// malformed reply, no reply within reply_timeout_ms) throw std::runtime_error
// with one line; the connection is unusable afterwards.
//
//   HttpClientConnection c("tcp://127.0.0.1:8080", "/static", 10000);
//   c.Send("");  HttpReply r;  c.Receive(r);   // r.status == 200, r.body.size() == 6600
#pragma once

#include <deque>
#include <string>
#include <string_view>

#include "servers/client_connection.h"
#include "servers/socket.h"

namespace gillab::servers {

// A largest reply body the client accepts (a 6,600-byte page, echoes of the payload).
inline constexpr uint64_t kMaxHttpReplyBytes = uint64_t{1} << 30;

class HttpClientConnection final : public ClientConnection {
 public:
  // Connects at once (throws std::runtime_error naming the endpoint if it cannot).
  HttpClientConnection(const std::string& endpoint, std::string target, int reply_timeout_ms);

  // The body of a POST /echo; ignored for GET targets.
  void Send(std::string_view payload) override;
  void Receive(HttpReply& reply) override;
  // Send + Receive; a non-2xx reply throws (the load client uses Send/Receive to count them).
  void Exchange(std::string_view request, std::string& reply) override;

  bool is_post() const { return post_; }
  int connects() const { return connects_; }

 private:
  void Connect();
  void Flush();

  std::string endpoint_;
  TcpEndpoint address_;
  std::string target_;
  std::string host_header_;
  bool post_ = false;
  int reply_timeout_ms_;
  UniqueFd fd_;
  int connects_ = 0;
  bool closing_ = false;   // the last reply said close: reconnect on the next Send
  int outstanding_ = 0;    // requests sent or queued whose replies have not been read
  std::string out_;        // requests queued, not yet written
  std::string in_;         // bytes received, not yet parsed (the start of the next reply)
};

// "POST /echo HTTP/1.1\r\n..." or "GET /static HTTP/1.1\r\n..." (exposed for tests).
std::string HttpRequestText(std::string_view target, std::string_view host_header, std::string_view payload);

}  // namespace gillab::servers
