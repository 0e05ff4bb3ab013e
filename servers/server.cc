// server.cc — MakeServer: the factory of each server kind (design §4). The
// kinds' data (transport, endpoint, summary) is ServerKindTable()
// (server_kinds.cc); this table adds the code, one row per kind.
#include "servers/server.h"

#include <fmt/core.h>

#include "gil/error.h"
#include "servers/message_servers.h"
#include "servers/stream_server.h"

namespace gillab::servers {
namespace {

using Factory = std::unique_ptr<Server> (*)(const ServerOptions&, Engine&);

struct ServerFactory {
  std::string_view kind;
  Factory make;
};

constexpr ServerFactory kFactories[] = {
    {"zmq", MakeZmqServer},           {"multiprocessing", MakeMqServer}, {"blocking", MakeBlockingServer},
    {"nonblocking", MakeNonblockingServer}, {"threaded", MakeThreadedServer},
    {"green", MakeGreenServer},
    {"transactional", MakeTransactionalServer},
    {"parallel", MakeParallelServer},
};

}  // namespace

std::unique_ptr<Server> MakeServer(const ServerOptions& options, Engine& engine) {
  const ServerKind& kind = RequireServerKind(options.kind);
  for (const ServerFactory& factory : kFactories)
    if (factory.kind == kind.name) return factory.make(options, engine);
  throw std::logic_error(fmt::format("server kind '{}' has no factory in server.cc", kind.name));
}

bool HasServerFactory(std::string_view kind) {
  for (const ServerFactory& factory : kFactories)
    if (factory.kind == kind) return true;
  return false;
}

}  // namespace gillab::servers
