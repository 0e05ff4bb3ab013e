// message_servers.h — factories for the two message-transport servers
// (design §4: one transport message is the N bytes, no length prefix).
//
// MakeServer (server.cc) dispatches "zmq" and "multiprocessing" here; the
// stream servers (blocking, nonblocking, threaded) live in stream_server.h.
//
//   auto server = MakeZmqServer({.kind = "zmq", .endpoint = "tcp://127.0.0.1:0"}, engine);
#pragma once

#include <memory>

#include "servers/engine.h"
#include "servers/server.h"

namespace gillab::servers {

std::unique_ptr<Server> MakeZmqServer(const ServerOptions& options, Engine& engine);  // zmq_server.cc
std::unique_ptr<Server> MakeMqServer(const ServerOptions& options, Engine& engine);   // mq_server.cc

}  // namespace gillab::servers
