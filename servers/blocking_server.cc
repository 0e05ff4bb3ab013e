// blocking_server.cc — Python's blocking-socket server: one thread, one
// client at a time. It accepts, serves that client until it closes, then
// accepts the next; a second client waits in the listen backlog meanwhile.
#include <memory>

#include "servers/stream_server.h"

namespace gillab::servers {
namespace {

class BlockingServer final : public StreamServer {
 public:
  BlockingServer(const ServerOptions& options, Engine& engine) : StreamServer(options, engine) {}

  void Run() override {
    RequireBound();
    auto io = engine().AttachIo("io");
    std::string peer;
    while (UniqueFd fd = AcceptBlocking(*io, /*non_blocking=*/false, peer)) {
      StreamConnection conn(std::move(fd), NewProtocol(), peer);
      ServeBlocking(*io, conn);
    }
  }
};

}  // namespace

std::unique_ptr<Server> MakeBlockingServer(const ServerOptions& options, Engine& engine) {
  return std::make_unique<BlockingServer>(options, engine);
}

}  // namespace gillab::servers
