// epoll_server.cc — the epoll half the event-loop servers share (see epoll_server.h).
#include "servers/epoll_server.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <system_error>

#include <fmt/core.h>

namespace gillab::servers {
namespace {

constexpr int kMaxAcceptsPerEvent = 64;

// A BlockingSection when `release`; otherwise the lock stays held across the call.
class Section {
 public:
  Section(IoThread& io, bool release) : io_(release ? &io : nullptr) {
    if (io_ != nullptr) io_->BeginBlocking();
  }
  ~Section() {
    if (io_ != nullptr) io_->EndBlocking();
  }
  Section(const Section&) = delete;
  Section& operator=(const Section&) = delete;

 private:
  IoThread* io_;
};

}  // namespace

bool EpollServer::Reading(const StreamConnection& conn) {
  return !conn.close_after_send && conn.outbox.size() - conn.outbox_sent < kMaxOutboxBytes;
}

void EpollServer::OpenEpoll() {
  epoll_.reset(epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_) throw std::system_error(errno, std::generic_category(), "epoll_create1");
  Watch(EPOLL_CTL_ADD, listen_fd(), EPOLLIN);
  Watch(EPOLL_CTL_ADD, stop_fd(), EPOLLIN);
  chunk_.resize(kRecvChunkBytes);
}

void EpollServer::Watch(int op, int fd, uint32_t events) {
  epoll_event event{.events = events, .data = {.fd = fd}};
  if (epoll_ctl(epoll_.get(), op, fd, &event) != 0 && op != EPOLL_CTL_DEL) {
    throw std::system_error(errno, std::generic_category(), "epoll_ctl");
  }
}

int EpollServer::Wait(IoThread& io, bool release, std::vector<epoll_event>& events, int timeout_ms) {
  int ready;
  {
    Section section(io, release);
    do {
      ready = epoll_wait(epoll_.get(), events.data(), static_cast<int>(events.size()), timeout_ms);
    } while (ready < 0 && errno == EINTR);
  }
  if (ready < 0) throw std::system_error(errno, std::generic_category(), "epoll_wait");
  return ready;
}

int EpollServer::AcceptAll(IoThread& io, bool release) {
  for (int i = 0; i < kMaxAcceptsPerEvent; ++i) {
    int fd;
    std::string peer;
    {
      Section section(io, release);
      fd = AcceptNamed(listen_fd(), SOCK_NONBLOCK | SOCK_CLOEXEC, peer);
    }
    if (fd < 0) {
      if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED || errno == EPROTO) return 0;
      return errno;
    }
    SetNoDelay(fd);
    EpollClient& client = Adopt(UniqueFd(fd), std::move(peer));
    Watch(EPOLL_CTL_ADD, fd, client.interest);
  }
  return 0;
}

EpollServer::Received EpollServer::Receive(IoThread& io, bool release, StreamConnection& conn, uint32_t ready) {
  if (!(ready & (EPOLLIN | EPOLLHUP | EPOLLERR)) || !Reading(conn)) return Received::kNothing;
  ssize_t received;
  {
    Section section(io, release);
    received = RecvSome(conn.fd.get(), chunk_.data(), chunk_.size());
    if (received > 0) conn.protocol->Feed(chunk_.data(), static_cast<size_t>(received));
  }
  if (received == 0) {
    ReportEndOfStream(conn);
    return Received::kClosed;
  }
  if (received < 0 && errno != EAGAIN) {
    ReportClose(conn.peer, fmt::format("recv failed: {}", std::strerror(errno)));
    return Received::kClosed;
  }
  return received > 0 ? Received::kBytes : Received::kNothing;
}

bool EpollServer::Flush(IoThread& io, bool release, EpollClient& client, bool reply_pending) {
  StreamConnection& conn = client.conn;
  if (conn.outbox_sent < conn.outbox.size()) {
    ssize_t sent;
    {
      Section section(io, release);
      sent = SendSome(conn.fd.get(), conn.outbox.data() + conn.outbox_sent, conn.outbox.size() - conn.outbox_sent,
                      MSG_DONTWAIT);
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
  if (conn.close_after_send && conn.outbox.empty() && !reply_pending) {
    FinishClose(conn);
    return false;
  }
  const bool reading = !reply_pending && Reading(conn);
  const size_t pending = conn.outbox.size() - conn.outbox_sent;
  const uint32_t wanted = (reading ? uint32_t{EPOLLIN} : 0u) | (pending > 0 ? uint32_t{EPOLLOUT} : 0u);
  if (client.interest != wanted) {
    const int op = client.interest == kUnwatched ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
    client.interest = wanted;
    Watch(op, conn.fd.get(), wanted);
  }
  return true;
}

void EpollServer::Unwatch(EpollClient& client) {
  Watch(EPOLL_CTL_DEL, client.conn.fd.get(), 0);
  client.interest = kUnwatched;
}

}  // namespace gillab::servers
