// stream_protocol.h — the one request path of the stream servers (blocking,
// nonblocking, threaded): what turns the bytes of a connection into handler
// calls and replies. `--protocol` picks it (design §4, §11):
//
//   frame  4-byte big-endian length + payload, each way (FrameReader)
//   http   the RFC 9112 subset of design §11, routes from HttpRoutes,
//          request heads parsed natively (Beast) or by a toy program
//
// The servers call Feed with the lock released, inside the blocking section
// of the recv that produced the bytes: what needs no interpreter (a frame
// length, Beast's parse) runs there, as in a C server. Process runs with the
// lock held: it calls the engine for every complete request, in arrival
// order, and appends every reply to the connection's outbox, so a batch of
// pipelined requests leaves in one write.
//
//   auto protocol = MakeStreamProtocol(options);
//   { BlockingSection b(io); n = recv(fd, buf, ...); protocol->Feed(buf, n); }
//   switch (protocol->Process(io, outbox, peer)) { ... }   // lock held
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "servers/engine.h"
#include "servers/server.h"
#include "servers/server_kinds.h"

namespace gillab::servers {

// Thrown by IoThread::HandleWith under the green server (design §10) when the
// handler's coroutine parked in a blocking native. Not a std::exception: it
// passes through the protocols' error handling. A protocol must then leave
// that request unanswered and unconsumed, so that its next Process issues
// the same HandleWith call first; the green server calls Process again once
// the coroutine has finished, and that call returns the reply at once.
struct HandlerParked {};

class StreamProtocol {
 public:
  enum class Next {
    kKeepOpen,          // send the outbox, read on
    kCloseAfterReply,   // send the outbox (it may end with an error reply), then close
    kCloseNow,          // close at once (a frame error: the framing has no error reply)
  };
  virtual ~StreamProtocol() = default;
  // Lock released. Buffers the bytes and parses what needs no interpreter.
  virtual void Feed(const char* data, size_t n) = 0;
  // Lock held. Every complete request through the engine, replies appended to
  // `outbox`; one line on stderr per bad request, naming `peer`.
  virtual Next Process(IoThread& io, std::string& outbox, const std::string& peer) = 0;
  // The client closed: one line on stderr if it did so mid-request, else nothing.
  virtual void ReportEndOfStream(const std::string& peer) const = 0;
};

// StreamProtocolNames() and HttpParserNames() are data in server_kinds.h.
// One protocol instance per connection; throws UsageError for an unknown protocol.
std::unique_ptr<StreamProtocol> MakeStreamProtocol(const ServerOptions& options);

// One line on stderr: "gillab serve: PEER: WHAT".
void ReportPeer(const std::string& peer, const std::string& what);

}  // namespace gillab::servers
