// server_kinds.cc — the server-kind table (server_kinds.h). Data only: no
// server code is linked from here (see the header).
#include "servers/server_kinds.h"

#include <fmt/core.h>
#include <fmt/ranges.h>

#include "gil/error.h"

namespace gillab::servers {

const std::vector<ServerKind>& ServerKindTable() {
  using enum Transport;
  using enum EndpointScheme;
  static const std::vector<ServerKind> kinds = {
      {.name = "zmq", .transport = kMessage, .endpoint_scheme = kTcp, .client_connection = "zmq",
       .summary = "ZeroMQ REQ/REP (or ROUTER) over tcp://"},
      {.name = "multiprocessing", .transport = kMessage, .endpoint_scheme = kIpc,
       .client_connection = "multiprocessing",
       .summary = "separate processes over Boost.Interprocess message queues (ipc://NAME)"},
      {.name = "blocking", .transport = kStream, .endpoint_scheme = kTcp, .client_connection = "stream",
       .summary = "one thread, blocking sockets, one connection at a time", .one_connection_at_a_time = true},
      {.name = "nonblocking", .transport = kStream, .endpoint_scheme = kTcp, .client_connection = "stream",
       .summary = "one I/O thread, epoll, non-blocking sockets, many connections"},
      {.name = "threaded", .transport = kStream, .endpoint_scheme = kTcp, .client_connection = "stream",
       .summary = "one thread per connection, all sharing the engine's lock"},
      {.name = "green", .transport = kStream, .endpoint_scheme = kTcp, .client_connection = "stream",
       .summary = "one hub thread, epoll + timers, one coroutine per connection (gevent)", .hub = true},
      {.name = "transactional", .transport = kStream, .endpoint_scheme = kTcp, .client_connection = "stream",
       .summary = "an event loop hands each batch of requests to --workers threads, one atomic unit per handler call "
                  "(PyPy-STM + Tornado)",
       .worker_pool = true, .runs_framework = true},
      {.name = "parallel", .transport = kStream, .endpoint_scheme = kTcp, .client_connection = "stream",
       .summary = "PyParallel: one I/O thread holding the lock, handlers in parallel contexts on --workers threads",
       .worker_pool = true, .parallel_contexts = true},
  };
  return kinds;
}

const ServerKind* FindServerKind(std::string_view name) {
  for (const ServerKind& kind : ServerKindTable())
    if (kind.name == name) return &kind;
  return nullptr;
}

const std::vector<std::string>& ServerKinds() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const ServerKind& kind : ServerKindTable()) out.emplace_back(kind.name);
    return out;
  }();
  return names;
}

const ServerKind& RequireServerKind(std::string_view name) {
  if (const ServerKind* kind = FindServerKind(name)) return *kind;
  throw UsageError(fmt::format("unknown server '{}' (expected one of: {})", name, fmt::join(ServerKinds(), ", ")));
}

std::string DefaultEndpoint(const ServerKind& kind, std::string_view ipc_name) {
  if (kind.endpoint_scheme == EndpointScheme::kIpc) return fmt::format("ipc://{}", ipc_name);
  return "tcp://127.0.0.1:0";
}

std::string_view TransportName(Transport transport) {
  return transport == Transport::kStream ? "stream" : "message";
}

const std::vector<std::string>& StreamProtocolNames() {
  static const std::vector<std::string> names = {"frame", "http"};
  return names;
}

const std::vector<std::string>& HubReleaseNames() {
  static const std::vector<std::string> names = {"every_call", "poll"};
  return names;
}

const std::vector<std::string>& HttpParserNames() {
  static const std::vector<std::string> names = {"native", "vm"};
  return names;
}

}  // namespace gillab::servers
