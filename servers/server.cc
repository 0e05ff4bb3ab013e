// server.cc — MakeServer: the five server kinds by name (design §4).
#include "servers/server.h"

#include <fmt/core.h>
#include <fmt/ranges.h>

#include "gil/error.h"
#include "servers/message_servers.h"
#include "servers/stream_server.h"

namespace gillab::servers {

std::unique_ptr<Server> MakeServer(const ServerOptions& options, Engine& engine) {
  if (options.kind == "zmq") return MakeZmqServer(options, engine);
  if (options.kind == "multiprocessing") return MakeMqServer(options, engine);
  if (options.kind == "blocking" || options.kind == "nonblocking" || options.kind == "threaded") {
    return MakeStreamServer(options, engine);
  }
  throw UsageError(fmt::format("unknown server '{}' (expected one of: {})", options.kind,
                               fmt::join(ServerKinds(), ", ")));
}

}  // namespace gillab::servers
