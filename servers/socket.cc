// socket.cc — TCP endpoints and socket helpers (see socket.h).
#include "servers/socket.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <memory>
#include <system_error>

#include <fmt/core.h>

#include "gil/error.h"

namespace gillab::servers {
namespace {

constexpr std::string_view kTcpScheme = "tcp://";

[[noreturn]] void ThrowErrno(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

std::string FormatAddress(const sockaddr_storage& address) {
  char host[INET6_ADDRSTRLEN] = "?";
  if (address.ss_family == AF_INET) {
    const auto& a = reinterpret_cast<const sockaddr_in&>(address);
    inet_ntop(AF_INET, &a.sin_addr, host, sizeof host);
    return fmt::format("{}:{}", host, ntohs(a.sin_port));
  }
  if (address.ss_family == AF_INET6) {
    const auto& a = reinterpret_cast<const sockaddr_in6&>(address);
    inet_ntop(AF_INET6, &a.sin6_addr, host, sizeof host);
    return fmt::format("[{}]:{}", host, ntohs(a.sin6_port));
  }
  return "unknown peer";
}

// getaddrinfo for an endpoint; "*" is the IPv4 wildcard.
struct AddrInfoDeleter {
  void operator()(addrinfo* info) const { freeaddrinfo(info); }
};
std::unique_ptr<addrinfo, AddrInfoDeleter> Resolve(const TcpEndpoint& endpoint, bool passive) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
  const std::string port = std::to_string(endpoint.port);
  const bool wildcard = endpoint.host == "*";
  if (wildcard) hints.ai_family = AF_INET;
  addrinfo* result = nullptr;
  const int rc = getaddrinfo(wildcard ? nullptr : endpoint.host.c_str(), port.c_str(), &hints, &result);
  if (rc != 0) {
    throw UsageError(fmt::format("cannot resolve host '{}' in endpoint {}: {}", endpoint.host,
                                 endpoint.ToString(), gai_strerror(rc)));
  }
  return std::unique_ptr<addrinfo, AddrInfoDeleter>(result);
}

}  // namespace

UniqueFd& UniqueFd::operator=(UniqueFd&& other) noexcept {
  if (this != &other) reset(other.release());
  return *this;
}

int UniqueFd::release() {
  const int fd = fd_;
  fd_ = -1;
  return fd;
}

void UniqueFd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

std::string TcpEndpoint::ToString() const {
  const bool ipv6 = host.find(':') != std::string::npos;
  return fmt::format("tcp://{}{}{}:{}", ipv6 ? "[" : "", host, ipv6 ? "]" : "", port);
}

bool IsTcpEndpoint(std::string_view endpoint) { return endpoint.starts_with(kTcpScheme); }

TcpEndpoint ParseTcpEndpoint(std::string_view endpoint) {
  const auto bad = [&](std::string_view why) {
    return UsageError(fmt::format("bad endpoint '{}': {} (expected tcp://HOST:PORT)", endpoint, why));
  };
  if (!IsTcpEndpoint(endpoint)) throw bad("not a tcp:// endpoint");
  std::string_view rest = endpoint.substr(kTcpScheme.size());
  TcpEndpoint parsed;
  std::string_view port;
  if (rest.starts_with('[')) {
    const size_t close = rest.find(']');
    if (close == std::string_view::npos || close + 1 >= rest.size() || rest[close + 1] != ':') {
      throw bad("unterminated [IPv6] host or missing port");
    }
    parsed.host = std::string(rest.substr(1, close - 1));
    port = rest.substr(close + 2);
  } else {
    const size_t colon = rest.rfind(':');
    if (colon == std::string_view::npos) throw bad("missing :PORT");
    parsed.host = std::string(rest.substr(0, colon));
    port = rest.substr(colon + 1);
  }
  if (parsed.host.empty()) throw bad("empty host");
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || value > 65535) {
    throw bad("port must be a number from 0 to 65535");
  }
  parsed.port = static_cast<uint16_t>(value);
  return parsed;
}

UniqueFd ListenTcp(const TcpEndpoint& endpoint, int backlog) {
  auto info = Resolve(endpoint, /*passive=*/true);
  int last_errno = 0;
  for (const addrinfo* ai = info.get(); ai != nullptr; ai = ai->ai_next) {
    UniqueFd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol));
    if (!fd) {
      last_errno = errno;
      continue;
    }
    const int one = 1;
    setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd.get(), ai->ai_addr, ai->ai_addrlen) == 0 && ::listen(fd.get(), backlog) == 0) {
      return fd;
    }
    last_errno = errno;
  }
  errno = last_errno;
  ThrowErrno(fmt::format("cannot listen on {}", endpoint.ToString()));
}

TcpEndpoint LocalEndpoint(int fd) {
  sockaddr_storage address{};
  socklen_t length = sizeof address;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) ThrowErrno("getsockname");
  char host[INET6_ADDRSTRLEN] = "?";
  TcpEndpoint endpoint;
  if (address.ss_family == AF_INET6) {
    const auto& a = reinterpret_cast<const sockaddr_in6&>(address);
    inet_ntop(AF_INET6, &a.sin6_addr, host, sizeof host);
    endpoint.port = ntohs(a.sin6_port);
  } else {
    const auto& a = reinterpret_cast<const sockaddr_in&>(address);
    inet_ntop(AF_INET, &a.sin_addr, host, sizeof host);
    endpoint.port = ntohs(a.sin_port);
  }
  endpoint.host = host;
  return endpoint;
}

UniqueFd ConnectTcp(const TcpEndpoint& endpoint) {
  auto info = Resolve(endpoint, /*passive=*/false);
  int last_errno = 0;
  for (const addrinfo* ai = info.get(); ai != nullptr; ai = ai->ai_next) {
    UniqueFd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol));
    if (!fd) {
      last_errno = errno;
      continue;
    }
    int rc;
    do {
      rc = ::connect(fd.get(), ai->ai_addr, ai->ai_addrlen);
    } while (rc != 0 && errno == EINTR);
    if (rc == 0) {
      SetNoDelay(fd.get());
      return fd;
    }
    last_errno = errno;
  }
  errno = last_errno;
  ThrowErrno(fmt::format("cannot connect to {}", endpoint.ToString()));
}

std::string PeerName(int fd) {
  sockaddr_storage address{};
  socklen_t length = sizeof address;
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) return "unknown peer";
  return FormatAddress(address);
}

int AcceptNamed(int listen_fd, int flags, std::string& peer) {
  sockaddr_storage address{};
  socklen_t length = sizeof address;
  const int fd = ::accept4(listen_fd, reinterpret_cast<sockaddr*>(&address), &length, flags);
  if (fd >= 0) peer = FormatAddress(address);
  return fd;
}

void SetNonBlocking(int fd, bool non_blocking) {
  const int flags = fcntl(fd, F_GETFL);
  fcntl(fd, F_SETFL, non_blocking ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK));
}

void SetNoDelay(int fd) {
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

void SetRecvTimeoutMs(int fd, int timeout_ms) {
  timeval tv{.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

ssize_t RecvSome(int fd, char* data, size_t n, int flags) {
  ssize_t rc;
  do {
    rc = ::recv(fd, data, n, flags);
  } while (rc < 0 && errno == EINTR);
  return rc;
}

ssize_t SendSome(int fd, const char* data, size_t n, int flags) {
  ssize_t rc;
  do {
    rc = ::send(fd, data, n, flags | MSG_NOSIGNAL);
  } while (rc < 0 && errno == EINTR);
  return rc;
}

bool SendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t sent = SendSome(fd, data.data(), data.size());
    if (sent < 0) return false;
    data.remove_prefix(static_cast<size_t>(sent));
  }
  return true;
}

bool SendFrame(int fd, std::string_view payload) {
  std::string frame;
  frame.reserve(4 + payload.size());
  AppendFrame(frame, payload);
  return SendAll(fd, frame);
}

RecvFrameResult RecvFrame(int fd, FrameReader& reader, std::string& out) {
  char chunk[64 * 1024];
  for (;;) {
    switch (reader.Next(out)) {
      case FrameReader::Status::kFrame: return RecvFrameResult::kFrame;
      case FrameReader::Status::kTooLarge: return RecvFrameResult::kTooLarge;
      case FrameReader::Status::kNeedMore: break;
    }
    const ssize_t n = RecvSome(fd, chunk, sizeof chunk);
    if (n == 0) return RecvFrameResult::kClosed;
    if (n < 0) return RecvFrameResult::kError;
    reader.Feed(chunk, static_cast<size_t>(n));
  }
}

}  // namespace gillab::servers
