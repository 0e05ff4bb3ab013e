// client_connection.h — one request/reply connection of the load client, on
// any of the three transports (design §4), behind one call.
//
// Transports: "stream" (4-byte big-endian framing over TCP: the blocking,
// nonblocking and threaded servers), "zmq" (a REQ socket; one transport
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

class ClientConnection {
 public:
  virtual ~ClientConnection() = default;
  // Sends one request and waits for its reply.
  virtual void Exchange(std::string_view request, std::string& reply) = 0;
};

// The connection type of a server kind: its row's client_connection in
// ServerKindTable() (server_kinds.h). Throws UsageError for an unknown kind.
std::string TransportOfServerKind(std::string_view kind);
// The transport for an endpoint when no server kind is given:
// tcp:// -> "stream", ipc:// -> "multiprocessing". Throws UsageError.
std::string DefaultTransport(std::string_view endpoint);
// Throws UsageError if the endpoint cannot name a server of that transport.
void CheckEndpoint(std::string_view transport, std::string_view endpoint);

std::unique_ptr<ClientConnection> ConnectClient(std::string_view transport, const std::string& endpoint,
                                                int reply_timeout_ms);

}  // namespace gillab::servers
