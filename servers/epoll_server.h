// epoll_server.h — what the four event-loop stream servers (nonblocking,
// green, transactional, parallel) share: one level-triggered epoll set over
// non-blocking sockets, and the socket half of serving a connection on it:
// accept, one recv per readiness event, one send, the epoll interest.
//
// Each socket call is its own section, and the caller's `release` says whether
// that section releases the engine's lock (a BlockingSection) or keeps it.
// That choice is where the servers differ, and it stays theirs: nonblocking
// and transactional always release; green unless --hub-release poll
// (hub_releases_every_call); parallel only while no context is in flight (it
// must hold the lock while contexts run, parallel_server.cc). The same goes
// for which thread calls and when: nothing here starts or waits for a thread.
//
// Invariants. A client's `interest` is what the epoll set watches for its
// socket, or kUnwatched while it is off the set. A connection is read only
// while it has not asked to close and fewer than kMaxOutboxBytes of replies
// wait unsent (back-pressure instead of unbounded memory); a stalled client
// only leaves bytes in its own protocol state. Replies are written as soon as
// there are any (the socket buffer usually has room), not one epoll round later.
//
//   OpenEpoll();  // in Run(), after Bind()
//   const int ready = Wait(io, true, events, -1);  // then for a client's event:
//   if (Receive(io, true, c.conn, event) == Received::kBytes) ProcessRequests(io, c.conn);  Flush(io, true, c);
#pragma once

#include <sys/epoll.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "servers/stream_server.h"

namespace gillab::servers {

// A connection on the epoll set. The servers' clients extend it with their own state.
struct EpollClient {
  EpollClient(UniqueFd fd, std::unique_ptr<StreamProtocol> protocol, std::string peer)
      : conn(std::move(fd), std::move(protocol), std::move(peer)) {}
  StreamConnection conn;
  uint32_t interest = EPOLLIN;  // see the header comment
};

// The base of the four event-loop servers (see the header comment).
class EpollServer : public StreamServer {
 protected:
  static constexpr size_t kMaxOutboxBytes = 4 << 20;
  static constexpr int kMaxEvents = 256;  // the size of a Wait's event vector
  static constexpr uint32_t kUnwatched = ~uint32_t{0};  // EpollClient::interest while off the set

  using StreamServer::StreamServer;

  // Run(), after Bind(): a new epoll set watching the listening socket and
  // the stop latch for input.
  void OpenEpoll();
  int epoll_fd() const { return epoll_.get(); }
  // epoll_ctl; a failed EPOLL_CTL_DEL is ignored (the socket may be off the set already).
  void Watch(int op, int fd, uint32_t events);
  // epoll_wait into `events` (all its size), retried on EINTR, in a section
  // that releases the lock when `release`; timeout_ms as epoll_wait's. Returns
  // how many events are ready.
  int Wait(IoThread& io, bool release, std::vector<epoll_event>& events, int timeout_ms);

  // The server stores a connection just accepted, and returns its client;
  // the client is then watched for its interest. Protocol state: NewProtocol().
  virtual EpollClient& Adopt(UniqueFd fd, std::string peer) = 0;
  // Accepts the waiting connections, at most 64 (level-triggered epoll
  // reports the rest again), each accept in a section that releases the lock
  // when `release`; each new socket is non-blocking, has TCP_NODELAY and goes
  // to Adopt. Returns 0, or the errno of an accept that failed for lack of
  // resources: the caller backs off (BackOffAfterAcceptError) if it may
  // release the lock.
  int AcceptAll(IoThread& io, bool release);

  enum class Received {
    kNothing,  // no input in `ready`, not reading (see the header comment), or EAGAIN
    kBytes,    // the protocol has new bytes: run ProcessRequests (or hand them on)
    kClosed,   // end of stream or a failed recv, reported on stderr: close now
  };
  // For a readiness event `ready` with input (EPOLLIN, or EPOLLHUP/EPOLLERR,
  // which the recv reports): one recv and, in the same section (lock released
  // when `release`), the protocol's Feed, which parses what needs no
  // interpreter (stream_protocol.h).
  Received Receive(IoThread& io, bool release, StreamConnection& conn, uint32_t ready);
  // One send of what the outbox holds (lock released when `release`), then
  // the interest: EPOLLOUT while replies wait, EPOLLIN while reading. False
  // when the connection must close: the send failed (reported), or it asked to
  // close and its last reply is out (FinishClose). `reply_pending`: a request
  // of this connection is still being handled (green's parked coroutine), so
  // it neither closes nor is read yet.
  bool Flush(IoThread& io, bool release, EpollClient& client, bool reply_pending = false);
  // Takes the client's socket off the set until the next Flush.
  void Unwatch(EpollClient& client);

 private:
  // Not asked to close, and fewer than kMaxOutboxBytes of replies wait unsent.
  static bool Reading(const StreamConnection& conn);

  UniqueFd epoll_;
  std::vector<char> chunk_;  // Receive's buffer
};

}  // namespace gillab::servers
