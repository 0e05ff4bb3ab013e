// socket.h — TCP endpoints and the few socket calls every stream server and
// the load client share: parse "tcp://HOST:PORT", listen, connect, name a
// peer, and blocking send/recv that retry EINTR and never raise SIGPIPE.
//
// Nothing here touches the engine lock: callers wrap each call that may block
// in a BlockingSection themselves (design §1). Errors from the user's input
// (a malformed endpoint) throw UsageError; errors from the kernel throw
// std::system_error (ListenTcp, ConnectTcp) or come back as a return value
// with errno set (the send/recv helpers, which sit on hot paths).
//
//   TcpEndpoint ep = ParseTcpEndpoint("tcp://127.0.0.1:0");
//   UniqueFd listener = ListenTcp(ep);               // LocalEndpoint(listener.get()) has the port
//   UniqueFd conn = ConnectTcp(LocalEndpoint(listener.get()));
//   SendFrame(conn.get(), "hello");  RecvFrame(conn.get(), reader, reply);
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "servers/frame.h"

namespace gillab::servers {

// Owns one file descriptor; closes it on destruction.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  int release();
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

// "tcp://HOST:PORT": HOST is an IPv4 address, a name (resolved to IPv4 or
// IPv6), "*" (any IPv4 address) or "[IPv6]"; PORT 0 means any free port.
struct TcpEndpoint {
  std::string host;
  uint16_t port = 0;
  std::string ToString() const;  // back to "tcp://HOST:PORT"
};

bool IsTcpEndpoint(std::string_view endpoint);
TcpEndpoint ParseTcpEndpoint(std::string_view endpoint);  // throws UsageError

// A non-blocking listening socket with SO_REUSEADDR. Throws std::system_error.
UniqueFd ListenTcp(const TcpEndpoint& endpoint, int backlog = 1024);
// The address a socket is bound to, port resolved.
TcpEndpoint LocalEndpoint(int fd);
// A blocking, connected socket with TCP_NODELAY. Throws std::system_error.
UniqueFd ConnectTcp(const TcpEndpoint& endpoint);

// "127.0.0.1:40312" (IPv6: "[::1]:40312"); "unknown peer" if the socket has none.
std::string PeerName(int fd);
// accept4 that also names the peer from the address accept returns, which
// (unlike getpeername) survives a reset that arrived before the accept.
int AcceptNamed(int listen_fd, int flags, std::string& peer);
void SetNonBlocking(int fd, bool non_blocking);
void SetNoDelay(int fd);                        // disable Nagle: one frame, one segment
void SetRecvTimeoutMs(int fd, int timeout_ms);  // SO_RCVTIMEO; 0 = wait forever

// recv/send once, retrying EINTR only. Return what the syscall returned.
ssize_t RecvSome(int fd, char* data, size_t n, int flags = 0);
ssize_t SendSome(int fd, const char* data, size_t n, int flags = 0);  // adds MSG_NOSIGNAL
// Sends every byte on a blocking socket; false on error (errno set).
bool SendAll(int fd, std::string_view data);

// Blocking frame I/O for clients (the servers use their own loops).
bool SendFrame(int fd, std::string_view payload);  // false on error (errno set)
enum class RecvFrameResult { kFrame, kClosed, kTooLarge, kError };
// Reads until `reader` yields a frame into `out`. kClosed: orderly close by the
// peer (reader.mid_frame() says whether it cut a frame); kError: errno set
// (EAGAIN after a SetRecvTimeoutMs timeout).
RecvFrameResult RecvFrame(int fd, FrameReader& reader, std::string& out);

}  // namespace gillab::servers
