// stream_server.cc — the parts the three stream servers share (see stream_server.h).
#include "servers/stream_server.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <new>
#include <stdexcept>
#include <system_error>

#include <fmt/core.h>

#include "gil/error.h"
#include "gil/gil.h"

namespace gillab::servers {

StreamConnection::StreamConnection(UniqueFd socket, std::unique_ptr<StreamProtocol> protocol_state,
                                   std::string peer_name)
    : fd(std::move(socket)),
      peer(peer_name.empty() ? PeerName(fd.get()) : std::move(peer_name)),
      protocol(std::move(protocol_state)) {}

StreamServer::StreamServer(const ServerOptions& options, Engine& engine)
    : options_(options), engine_(engine) {
  if (!IsTcpEndpoint(options_.endpoint)) {
    throw UsageError(fmt::format("the {} server needs a tcp://HOST:PORT endpoint, not '{}'",
                                 options_.kind, options_.endpoint));
  }
  ParseTcpEndpoint(options_.endpoint);  // reject a malformed endpoint before Bind
  MakeStreamProtocol(options_);         // reject an unknown protocol before Bind
  stop_fd_.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!stop_fd_) throw std::system_error(errno, std::generic_category(), "eventfd");
}

void StreamServer::Bind() {
  listener_ = ListenTcp(ParseTcpEndpoint(options_.endpoint));
  endpoint_ = LocalEndpoint(listener_.get()).ToString();
  reserve_fd_.reset(::open("/dev/null", O_RDONLY | O_CLOEXEC));
}

std::string StreamServer::endpoint() const { return endpoint_; }

void StreamServer::Stop() {
  if (stopping_.exchange(true, std::memory_order_acq_rel)) return;
  const uint64_t one = 1;
  // An eventfd write of 1 cannot fail short of overflow; nothing to do if it did.
  [[maybe_unused]] ssize_t rc = ::write(stop_fd_.get(), &one, sizeof one);
}

void StreamServer::RequireBound() const {
  if (!listener_) throw std::logic_error("StreamServer::Run called before Bind");
}

bool StreamServer::WaitReady(int fd, short events) const {
  pollfd fds[2] = {{.fd = fd, .events = events, .revents = 0},
                   {.fd = stop_fd_.get(), .events = POLLIN, .revents = 0}};
  for (;;) {
    const int rc = ::poll(fds, 2, -1);
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0) throw std::system_error(errno, std::generic_category(), "poll");
    if (fds[1].revents != 0) return false;
    // POLLERR/POLLHUP count as ready: the next recv or send reports them.
    if (fds[0].revents != 0) return true;
  }
}

void StreamServer::ReportClose(const std::string& peer, const std::string& what) {
  fmt::print(stderr, "gillab serve: {}: {}; closing connection\n", peer, what);
  std::fflush(stderr);
}

void StreamServer::ReportEndOfStream(const StreamConnection& conn) { conn.protocol->ReportEndOfStream(conn.peer); }

void StreamServer::FinishClose(const StreamConnection& conn) { ::shutdown(conn.fd.get(), SHUT_WR); }

bool StreamServer::ProcessRequests(IoThread& io, StreamConnection& conn) {
  switch (conn.protocol->Process(io, conn.outbox, conn.peer)) {
    case StreamProtocol::Next::kKeepOpen:
      return true;
    case StreamProtocol::Next::kCloseAfterReply:
      conn.close_after_send = true;
      return true;
    case StreamProtocol::Next::kCloseNow:
      return false;
  }
  return false;
}

void StreamServer::ServeBlocking(IoThread& io, StreamConnection& conn) {
  std::vector<char> chunk(kRecvChunkBytes);
  const int fd = conn.fd.get();
  for (;;) {
    ssize_t received = -1;
    bool stopped = false;
    {
      BlockingSection released(io);
      stopped = !WaitReady(fd, POLLIN);
      if (!stopped) received = RecvSome(fd, chunk.data(), chunk.size());
      // Parsing that needs no interpreter runs here, lock released (stream_protocol.h).
      if (received > 0) conn.protocol->Feed(chunk.data(), static_cast<size_t>(received));
    }
    if (stopped) return;
    if (received == 0) return ReportEndOfStream(conn);
    if (received < 0) {
      return ReportClose(conn.peer, fmt::format("recv failed: {}", std::strerror(errno)));
    }
    if (!ProcessRequests(io, conn)) return;
    // Each send is its own blocking section, as in CPython's sendall loop.
    while (conn.outbox_sent < conn.outbox.size()) {
      ssize_t sent;
      {
        BlockingSection released(io);
        const char* data = conn.outbox.data() + conn.outbox_sent;
        const size_t n = conn.outbox.size() - conn.outbox_sent;
        sent = SendSome(fd, data, n, MSG_DONTWAIT);
        if (sent < 0 && errno == EAGAIN) {
          stopped = !WaitReady(fd, POLLOUT);
          if (!stopped) sent = SendSome(fd, data, n, MSG_DONTWAIT);
        }
      }
      if (stopped) return;
      if (sent < 0 && errno == EAGAIN) continue;
      if (sent < 0) {
        return ReportClose(conn.peer, fmt::format("send failed: {}", std::strerror(errno)));
      }
      conn.outbox_sent += static_cast<size_t>(sent);
    }
    conn.outbox.clear();
    conn.outbox_sent = 0;
    if (conn.close_after_send) return FinishClose(conn);
  }
}

UniqueFd StreamServer::AcceptBlocking(IoThread& io, bool non_blocking, std::string& peer) {
  const int flags = SOCK_CLOEXEC | (non_blocking ? SOCK_NONBLOCK : 0);
  for (;;) {
    int fd = -1;
    bool stopped = false;
    {
      BlockingSection released(io);
      stopped = !WaitReady(listen_fd(), POLLIN);
      if (!stopped) fd = AcceptNamed(listen_fd(), flags, peer);
    }
    if (stopped) return UniqueFd();
    if (fd >= 0) {
      SetNoDelay(fd);
      return UniqueFd(fd);
    }
    // The listening socket is non-blocking: EAGAIN means another thread or a
    // reset took the connection that poll announced. Running out of
    // descriptors is reported and retried after a pause, never fatal.
    if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED || errno == EPROTO) continue;
    BackOffAfterAcceptError(io, errno);
  }
}

void StreamServer::BackOffAfterAcceptError(IoThread& io, int error) {
  if ((error == EMFILE || error == ENFILE) && reserve_fd_) {
    reserve_fd_.reset();
    int fd;
    std::string peer;
    {
      BlockingSection released(io);
      fd = AcceptNamed(listen_fd(), SOCK_CLOEXEC, peer);
    }
    if (fd >= 0) {
      UniqueFd refused(fd);  // closed before the reserve is taken back
      ReportClose(peer,
                  fmt::format("refused, the server is out of file descriptors ({})", std::strerror(error)));
    }
    reserve_fd_.reset(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    if (fd >= 0) return;
  }
  const int64_t now_ns = gil::NowNs();
  if (now_ns - last_accept_error_report_ns_ > int64_t{1'000'000'000}) {
    fmt::print(stderr, "gillab serve: accept failed: {}; retrying\n", std::strerror(error));
    std::fflush(stderr);
  }
  last_accept_error_report_ns_ = now_ns;
  BlockingSection released(io);
  pollfd stop = {.fd = stop_fd(), .events = POLLIN, .revents = 0};
  ::poll(&stop, 1, 10);
}

}  // namespace gillab::servers
