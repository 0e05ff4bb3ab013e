// client_connection.h — one request/reply connection of the load client, on
// any of the three transports (design §4), behind one call.
//
// Transports: "stream" (4-byte big-endian framing over TCP: the blocking,
// nonblocking and threaded servers), "http" (HTTP/1.1 to the same servers
// under --protocol http, or any outside HTTP server; see http_client.h), "zmq" (a REQ socket; one transport
// message = the N bytes) and "multiprocessing" (Boost.Interprocess queues,
// see mq_protocol.h). A connection is used by one thread at a time. Every
// failure — connect refused, peer gone, no reply within reply_timeout_ms —
// throws std::runtime_error with a one-line message; after that the
// connection is unusable.
//
//   auto c = ConnectClient("zmq", "tcp://127.0.0.1:5555", /*reply_timeout_ms=*/10000);
//   std::string reply;
//   c->Exchange("ping", reply);
#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace gillab::servers {

// One HTTP reply: its status and body (the framed transports have neither status nor pipelining).
struct HttpReply {
  int status = 0;
  std::string body;
};

class ClientConnection {
 public:
  virtual ~ClientConnection() = default;
  // Sends one request and waits for its reply.
  virtual void Exchange(std::string_view request, std::string& reply) = 0;
  // Pipelining (http only): Send queues a request, Receive reads the oldest
  // outstanding reply. The framed transports throw std::logic_error.
  virtual void Send(std::string_view request);
  virtual void Receive(HttpReply& reply);
};

// The connection type of a server kind: its row's client_connection in
// ServerKindTable() (server_kinds.h). Throws UsageError for an unknown kind.
std::string TransportOfServerKind(std::string_view kind);
// The transport for an endpoint when no server kind is given:
// tcp:// -> "stream", ipc:// -> "multiprocessing". Throws UsageError.
std::string DefaultTransport(std::string_view endpoint);
// Throws UsageError if the endpoint cannot name a server of that transport.
void CheckEndpoint(std::string_view transport, std::string_view endpoint);

// http_target: the request target of the "http" transport ("/echo" posts the
// payload, anything else is a GET); unused by the others.
std::unique_ptr<ClientConnection> ConnectClient(std::string_view transport, const std::string& endpoint,
                                                int reply_timeout_ms, const std::string& http_target = "/echo");

}  // namespace gillab::servers
