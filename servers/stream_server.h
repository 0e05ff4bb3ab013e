// stream_server.h — what the three stream servers (blocking, nonblocking,
// threaded) share: the listening socket, the stop latch, the one request path
// and the blocking-socket connection loop.
//
// Lock discipline (design §1), the point of the whole project: an I/O thread
// attaches to the engine (AttachIo, which returns holding the lock) and then
// holds the lock except inside a BlockingSection wrapped around every socket
// call that can wait: poll/accept, each recv, each send, epoll_wait. Like
// CPython's socket module, the lock is released around the syscall even when
// the socket is non-blocking and the call returns at once; re-acquiring it
// afterwards is where an I/O thread queues behind CPU threads (the convoy).
// io->Handle runs with the lock held. Nothing else in these servers blocks.
//
// Stop() writes an eventfd that is never drained, so every poll and
// epoll_wait that includes it returns from then on: one write wakes every
// I/O thread, now or later.
//
// The servers differ only in concurrency model:
//   blocking    one thread; accept, serve that client until it closes, accept the next
//   nonblocking one thread; epoll over non-blocking sockets, replies buffered until writable
//   threaded    an accepting thread plus one thread per connection (io-0, io-1, …)
// The event-loop servers (nonblocking, green, transactional, parallel) share
// their epoll half, EpollServer (epoll_server.h).
//
//   auto server = MakeThreadedServer({.kind = "threaded"}, engine);
//   server->Bind(); std::thread t([&] { server->Run(); }); … server->Stop(); t.join();
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "servers/engine.h"
#include "servers/server.h"
#include "servers/socket.h"
#include "servers/stream_protocol.h"

namespace gillab::servers {

// recv() reads at most this much per call (asyncio reads 256 KiB; a smaller
// chunk costs a few more lock round trips on megabyte messages only).
constexpr size_t kRecvChunkBytes = 64 * 1024;

// One client connection: its socket, its protocol state (the requests it has
// sent so far) and the replies not yet written.
struct StreamConnection {
  // `peer_name` as AcceptNamed gave it; empty: asked of the socket.
  StreamConnection(UniqueFd socket, std::unique_ptr<StreamProtocol> protocol, std::string peer_name = {});
  UniqueFd fd;
  std::string peer;  // "ip:port", for error lines
  std::unique_ptr<StreamProtocol> protocol;
  std::string outbox;      // replies not yet sent
  size_t outbox_sent = 0;  // bytes of outbox already sent
  bool close_after_send = false;  // the protocol asked to close once the outbox is out
};

class StreamServer : public Server {
 public:
  void Bind() override;
  std::string endpoint() const override;
  void Stop() override;

 protected:
  StreamServer(const ServerOptions& options, Engine& engine);

  // The one request path: every complete request the connection's protocol
  // holds goes through the engine (lock held), replies onto conn.outbox.
  // Returns false when the connection must close at once (after one line on
  // stderr); sets conn.close_after_send when it must close once the outbox is
  // sent (an HTTP error reply, Connection: close).
  bool ProcessRequests(IoThread& io, StreamConnection& conn);
  // A new connection's protocol state, as --protocol and --http-parser say.
  std::unique_ptr<StreamProtocol> NewProtocol() const { return MakeStreamProtocol(options_); }
  // The blocking-socket client loop (blocking and threaded servers): recv,
  // ProcessFrames, send the replies, until the client closes, misbehaves or
  // Stop() is called. conn.fd must be a blocking socket.
  void ServeBlocking(IoThread& io, StreamConnection& conn);
  // Waits (lock released) for a connection and accepts it, naming it in
  // `peer`; an empty fd means Stop() was called. `non_blocking` sets
  // O_NONBLOCK on the accepted socket.
  UniqueFd AcceptBlocking(IoThread& io, bool non_blocking, std::string& peer);
  // With the lock released: waits until `fd` is ready for `events` (poll
  // flags) or Stop() is called; returns false on stop. Call inside a BlockingSection.
  bool WaitReady(int fd, short events) const;
  // After accept failed for lack of resources (EMFILE, ENOBUFS, …). Out of
  // descriptors (EMFILE, ENFILE), the reserve descriptor is closed to make room
  // to accept the waiting connection and close it at once, with one line naming
  // the peer: the client learns it was refused instead of waiting in the
  // backlog, and existing connections are untouched. Otherwise (or if that
  // fails): one line on stderr per run of failures, then a 10 ms pause with
  // the lock released, so the loop neither spins nor floods stderr.
  void BackOffAfterAcceptError(IoThread& io, int error);
  // One line on stderr: "gillab serve: PEER: WHAT; closing connection".
  static void ReportClose(const std::string& peer, const std::string& what);
  // For a closed connection: reports a request cut short; silent at a request boundary.
  static void ReportEndOfStream(const StreamConnection& conn);
  // Once the last reply of a connection that asked to close is out: ends our
  // side first, so the client reads the reply before the close.
  static void FinishClose(const StreamConnection& conn);

  void RequireBound() const;  // Run() before Bind() is a programming error
  bool stopping() const { return stopping_.load(std::memory_order_acquire); }
  int listen_fd() const { return listener_.get(); }
  int stop_fd() const { return stop_fd_.get(); }
  Engine& engine() { return engine_; }
  uint64_t max_message_bytes() const { return options_.max_message_bytes; }

 private:
  ServerOptions options_;
  Engine& engine_;
  UniqueFd listener_;
  UniqueFd stop_fd_;  // eventfd latch, see the header comment
  UniqueFd reserve_fd_;  // /dev/null, given up to refuse a connection when out of descriptors
  std::atomic<bool> stopping_{false};
  std::string endpoint_;
  int64_t last_accept_error_report_ns_ = 0;  // touched by the accepting thread only
};

// The three stream kinds (rows of server.cc's factory table); each throws
// UsageError for a non-tcp endpoint.
std::unique_ptr<Server> MakeBlockingServer(const ServerOptions& options, Engine& engine);
std::unique_ptr<Server> MakeNonblockingServer(const ServerOptions& options, Engine& engine);
std::unique_ptr<Server> MakeThreadedServer(const ServerOptions& options, Engine& engine);
// green_server.cc (design §10).
std::unique_ptr<Server> MakeGreenServer(const ServerOptions& options, Engine& engine);
// transactional_server.cc (design §12).
std::unique_ptr<Server> MakeTransactionalServer(const ServerOptions& options, Engine& engine);
// parallel_server.cc (design §12).
std::unique_ptr<Server> MakeParallelServer(const ServerOptions& options, Engine& engine);

}  // namespace gillab::servers
