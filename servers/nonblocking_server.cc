// nonblocking_server.cc — Python's select/epoll server: one I/O thread, many
// clients, non-blocking sockets, level-triggered epoll.
//
// Each readiness event costs one recv (at most kRecvChunkBytes) or one send
// (epoll_server.h), each in its own BlockingSection, as asyncio's selector
// loop does. Replies that do not fit the socket buffer stay in the
// connection's outbox and are flushed on EPOLLOUT; while a client lets more
// than kMaxOutboxBytes pile up unread, its input is not read (back-pressure
// instead of unbounded memory).
// A client stalled mid-frame only leaves bytes in its own FrameReader.
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "servers/epoll_server.h"

namespace gillab::servers {
namespace {

class NonblockingServer final : public EpollServer {
 public:
  NonblockingServer(const ServerOptions& options, Engine& engine) : EpollServer(options, engine) {}

  void Run() override {
    RequireBound();
    OpenEpoll();
    auto io = engine().AttachIo("io");
    std::vector<epoll_event> events(kMaxEvents);
    while (!stopping()) {
      const int ready = Wait(*io, true, events, -1);
      for (int i = 0; i < ready; ++i) {
        const int fd = events[i].data.fd;
        if (fd == stop_fd()) continue;  // the loop condition sees stopping()
        if (fd == listen_fd()) {
          // Out of descriptors: level-triggered epoll reports the backlog again.
          if (const int error = AcceptAll(*io, true); error != 0) BackOffAfterAcceptError(*io, error);
          continue;
        }
        auto it = connections_.find(fd);
        if (it == connections_.end()) continue;  // closed earlier in this batch
        if (!Service(*io, *it->second, events[i].events)) Close(fd);
      }
    }
    connections_.clear();  // closes every client socket
  }

 private:
  EpollClient& Adopt(UniqueFd fd, std::string peer) override {
    auto client = std::make_unique<EpollClient>(std::move(fd), NewProtocol(), std::move(peer));
    const int key = client->conn.fd.get();
    return *connections_.emplace(key, std::move(client)).first->second;
  }

  // Handles one readiness event; false when the connection must close.
  bool Service(IoThread& io, EpollClient& client, uint32_t ready) {
    const Received received = Receive(io, true, client.conn, ready);
    if (received == Received::kClosed) return false;
    if (received == Received::kBytes && !ProcessRequests(io, client.conn)) return false;
    return Flush(io, true, client);
  }

  void Close(int fd) {
    Watch(EPOLL_CTL_DEL, fd, 0);
    connections_.erase(fd);  // closes the socket
  }

  std::unordered_map<int, std::unique_ptr<EpollClient>> connections_;  // by socket fd
};

}  // namespace

std::unique_ptr<Server> MakeNonblockingServer(const ServerOptions& options, Engine& engine) {
  return std::make_unique<NonblockingServer>(options, engine);
}

}  // namespace gillab::servers
