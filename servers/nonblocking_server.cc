// nonblocking_server.cc — Python's select/epoll server: one I/O thread, many
// clients, non-blocking sockets, level-triggered epoll.
//
// Each readiness event costs one recv (at most kRecvChunkBytes) or one send,
// each in its own BlockingSection, as asyncio's selector loop does. Replies
// that do not fit the socket buffer stay in the connection's outbox and are
// flushed on EPOLLOUT; while a client lets more than kMaxOutboxBytes pile up
// unread, its input is not read (back-pressure instead of unbounded memory).
// A client stalled mid-frame only leaves bytes in its own FrameReader.
#include <sys/epoll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <system_error>
#include <unordered_map>
#include <vector>

#include <fmt/core.h>

#include "servers/stream_server.h"

namespace gillab::servers {
namespace {

constexpr size_t kMaxOutboxBytes = 4 << 20;
constexpr int kMaxEvents = 256;
constexpr int kMaxAcceptsPerEvent = 64;

// A connection plus the epoll events registered for it.
struct Client {
  Client(UniqueFd fd, std::unique_ptr<StreamProtocol> protocol, std::string peer)
      : conn(std::move(fd), std::move(protocol), std::move(peer)) {}
  StreamConnection conn;
  uint32_t interest = EPOLLIN;
};

class NonblockingServer final : public StreamServer {
 public:
  NonblockingServer(const ServerOptions& options, Engine& engine) : StreamServer(options, engine) {}

  void Run() override {
    RequireBound();
    epoll_.reset(epoll_create1(EPOLL_CLOEXEC));
    if (!epoll_) throw std::system_error(errno, std::generic_category(), "epoll_create1");
    Watch(EPOLL_CTL_ADD, listen_fd(), EPOLLIN);
    Watch(EPOLL_CTL_ADD, stop_fd(), EPOLLIN);
    chunk_.resize(kRecvChunkBytes);
    auto io = engine().AttachIo("io");
    std::vector<epoll_event> events(kMaxEvents);
    while (!stopping()) {
      int ready;
      {
        BlockingSection released(*io);
        do {
          ready = epoll_wait(epoll_.get(), events.data(), kMaxEvents, -1);
        } while (ready < 0 && errno == EINTR);
      }
      if (ready < 0) throw std::system_error(errno, std::generic_category(), "epoll_wait");
      for (int i = 0; i < ready; ++i) {
        const int fd = events[i].data.fd;
        if (fd == stop_fd()) continue;  // the loop condition sees stopping()
        if (fd == listen_fd()) {
          AcceptAll(*io);
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
  void Watch(int op, int fd, uint32_t events) {
    epoll_event event{.events = events, .data = {.fd = fd}};
    if (epoll_ctl(epoll_.get(), op, fd, &event) != 0 && op != EPOLL_CTL_DEL) {
      throw std::system_error(errno, std::generic_category(), "epoll_ctl");
    }
  }

  void AcceptAll(IoThread& io) {
    for (int i = 0; i < kMaxAcceptsPerEvent; ++i) {
      int fd;
      std::string peer;
      {
        BlockingSection released(io);
        fd = AcceptNamed(listen_fd(), SOCK_NONBLOCK | SOCK_CLOEXEC, peer);
      }
      if (fd < 0) {
        if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED || errno == EPROTO) return;
        // Out of descriptors: level-triggered epoll reports the backlog again.
        BackOffAfterAcceptError(io, errno);
        return;
      }
      SetNoDelay(fd);
      auto client = std::make_unique<Client>(UniqueFd(fd), NewProtocol(), std::move(peer));
      Watch(EPOLL_CTL_ADD, fd, client->interest);
      connections_.emplace(fd, std::move(client));
    }
  }

  // Handles one readiness event; false when the connection must close.
  bool Service(IoThread& io, Client& client, uint32_t ready) {
    StreamConnection& conn = client.conn;
    const int fd = conn.fd.get();
    if ((ready & (EPOLLIN | EPOLLHUP | EPOLLERR)) && !conn.close_after_send) {
      if (conn.outbox.size() - conn.outbox_sent < kMaxOutboxBytes) {
        ssize_t received;
        {
          BlockingSection released(io);
          received = RecvSome(fd, chunk_.data(), chunk_.size());
          // Parsing that needs no interpreter runs here, lock released (stream_protocol.h).
          if (received > 0) conn.protocol->Feed(chunk_.data(), static_cast<size_t>(received));
        }
        if (received == 0) {
          ReportEndOfStream(conn);
          return false;
        }
        if (received < 0 && errno != EAGAIN) {
          ReportClose(conn.peer, fmt::format("recv failed: {}", std::strerror(errno)));
          return false;
        }
        if (received > 0 && !ProcessRequests(io, conn)) return false;
      }
    }
    // Write as soon as there is something to write (the usual case: the
    // socket buffer has room), not one epoll round later.
    if (conn.outbox_sent < conn.outbox.size()) {
      ssize_t sent;
      {
        BlockingSection released(io);
        sent = SendSome(fd, conn.outbox.data() + conn.outbox_sent,
                        conn.outbox.size() - conn.outbox_sent, MSG_DONTWAIT);
      }
      if (sent < 0 && errno != EAGAIN) {
        ReportClose(conn.peer, fmt::format("send failed: {}", std::strerror(errno)));
        return false;
      }
      if (sent > 0) conn.outbox_sent += static_cast<size_t>(sent);
      if (conn.outbox_sent == conn.outbox.size()) {
        conn.outbox.clear();
        conn.outbox_sent = 0;
      }
    }
    if (conn.close_after_send && conn.outbox.empty()) {
      FinishClose(conn);
      return false;
    }
    UpdateInterest(client);
    return true;
  }

  void UpdateInterest(Client& client) {
    const size_t pending = client.conn.outbox.size() - client.conn.outbox_sent;
    const bool reading = pending < kMaxOutboxBytes && !client.conn.close_after_send;
    const uint32_t wanted = (reading ? uint32_t{EPOLLIN} : 0u) |
                            (pending > 0 ? uint32_t{EPOLLOUT} : 0u);
    if (client.interest == wanted) return;
    client.interest = wanted;
    Watch(EPOLL_CTL_MOD, client.conn.fd.get(), wanted);
  }

  void Close(int fd) {
    Watch(EPOLL_CTL_DEL, fd, 0);
    connections_.erase(fd);  // closes the socket
  }

  UniqueFd epoll_;
  std::vector<char> chunk_;
  std::unordered_map<int, std::unique_ptr<Client>> connections_;  // by socket fd
};

}  // namespace

std::unique_ptr<Server> MakeNonblockingServer(const ServerOptions& options, Engine& engine) {
  return std::make_unique<NonblockingServer>(options, engine);
}

}  // namespace gillab::servers
