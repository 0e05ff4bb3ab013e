// server.h — the request/reply servers behind one interface (design §4); the
// kinds are the rows of ServerKindTable() (server_kinds.h).
//
// A server differs from another only in transport and concurrency model; all
// of them call one Engine per request and hold its lock except inside each
// blocking call. Bad input from one client (oversized frame, garbage, reset)
// costs that client its connection, with one line on stderr, never the server.
//
//   auto server = MakeServer({.kind = "blocking", .endpoint = "tcp://127.0.0.1:0"}, *engine);
//   server->Bind();                         // endpoint() now has the port resolved
//   std::thread t([&] { server->Run(); });  // serves until Stop()
//   server->Stop(); t.join();
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "servers/engine.h"
#include "servers/server_kinds.h"

namespace gillab::servers {

class HttpRoutes;

constexpr uint64_t kDefaultMaxMessageBytes = uint64_t{16} << 20;

struct ServerOptions {
  std::string kind = "blocking";  // a row of ServerKindTable() (server_kinds.h)
  std::string endpoint = "tcp://127.0.0.1:0";  // or ipc://NAME
  uint64_t max_message_bytes = kDefaultMaxMessageBytes;
  // Stream servers only (stream_protocol.h, design §11).
  std::string protocol = "frame";     // frame | http
  std::string http_parser = "native";  // native | vm
  // http: the targets and the engine handler ids they call (default: the
  // four built-in targets, which need EngineOptions::extra_handlers =
  // HttpRoutes().handler_names()). With http_parser vm, the id of the
  // `http_request` parser program among the engine's handlers.
  std::shared_ptr<const HttpRoutes> http_routes = nullptr;
  size_t http_parser_handler_id = 0;
  // transactional and parallel (design §12): the worker threads that run the
  // handler calls; parallel only: each context's arena limit (0: none), and
  // how long one handler call may run before the stall report stops it (0: never).
  int workers = 2;
  int64_t context_max_bytes = 0;
  int64_t context_stall_ms = 1000;
  // green: the hub runs ready coroutines for at most this long before it
  // polls (the engine's switch interval, design §10).
  int64_t switch_interval_us = 5000;
  // green: release the lock around every socket call (recv, send, accept and
  // epoll_wait, as gevent under CPython) or, when false, only around epoll_wait.
  bool hub_releases_every_call = true;
};

class Server {
 public:
  virtual ~Server() = default;
  // Binds or creates the transport; throws UsageError for a bad endpoint.
  virtual void Bind() = 0;
  // The endpoint with the port resolved, as printed in `listening ENDPOINT`.
  virtual std::string endpoint() const = 0;
  // Serves until Stop(); returns after every I/O thread has detached from the engine.
  virtual void Run() = 0;
  // Thread-safe, idempotent: makes Run() return soon.
  virtual void Stop() = 0;
  // Figures of the server itself (the green hub's), after Run() has
  // returned; null for servers that keep none.
  virtual nlohmann::json Stats() const { return nullptr; }
};

// The server of kind options.kind (its row in server.cc's factory table);
// throws UsageError for an unknown kind.
std::unique_ptr<Server> MakeServer(const ServerOptions& options, Engine& engine);
// Whether server.cc has a factory for this kind (a test checks every table row has one).
bool HasServerFactory(std::string_view kind);

}  // namespace gillab::servers
