// zmq_server.cc — the `zmq` server: one I/O thread, one ROUTER socket.
//
// ROUTER rather than REP so that one client may hold several connections (REQ
// or DEALER sockets) and so that a malformed multipart message costs only the
// peer that sent it: a REP socket would drop it silently, a ROUTER lets us log
// it. A request arrives as [routing id, envelope..., "", body] from a REQ
// socket or [routing id, body] from a DEALER; the reply goes back with the same
// envelope. Anything else is malformed: one stderr line, no reply.
//
// The engine lock is held as a pyzmq server holds the GIL: released around
// each recv_multipart and each send_multipart (two blocking sections per
// request), held while the handler runs. Stop() shuts the context down, which
// makes a blocking recv fail with ETERM at once: no polling, no timeout, so an
// idle server never wakes up to re-take the lock.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <iterator>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <fmt/core.h>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "gil/error.h"
#include "servers/message_servers.h"
#include "servers/socket.h"

namespace gillab::servers {
namespace {

std::string HexId(const zmq::message_t& id) {
  std::string out = "0x";
  for (auto byte : std::string_view(id.data<char>(), id.size())) {
    out += fmt::format("{:02x}", static_cast<unsigned char>(byte));
  }
  return out;
}

// "0x<routing id> at <address>": the id is what ties the line to a zmq peer,
// the address (libzmq's Peer-Address property of a frame it received) is what
// an operator can look up. The routing id frame itself carries no metadata.
std::string DescribePeer(const std::vector<zmq::message_t>& parts) {
  if (parts.empty()) return "?";
  std::string out = HexId(parts[0]);
  if (parts.size() > 1) {
    if (const char* address = zmq_msg_gets(parts.back().handle(), "Peer-Address")) {
      out += fmt::format(" at {}", address);
    }
  }
  return out;
}

// zmq spells "any port" as '*'; design §5 spells it 0.
std::string ZmqBindAddress(const std::string& endpoint) {
  if (IsTcpEndpoint(endpoint)) {
    TcpEndpoint parsed = ParseTcpEndpoint(endpoint);  // throws UsageError
    if (parsed.port == 0) {
      const bool ipv6 = parsed.host.find(':') != std::string::npos;
      return fmt::format("tcp://{}{}{}:*", ipv6 ? "[" : "", parsed.host, ipv6 ? "]" : "");
    }
    return parsed.ToString();
  }
  if (endpoint.starts_with("ipc://") && endpoint.size() > 6) return endpoint;
  throw UsageError(fmt::format("bad endpoint '{}' for the zmq server: expected tcp://HOST:PORT or ipc://PATH",
                               endpoint));
}

class ZmqServer final : public Server {
 public:
  ZmqServer(const ServerOptions& options, Engine& engine) : options_(options), engine_(engine) {}

  ~ZmqServer() override {
    Stop();
    socket_.close();
  }

  void Bind() override {
    const std::string address = ZmqBindAddress(options_.endpoint);
    socket_ = zmq::socket_t(context_, zmq::socket_type::router);
    socket_.set(zmq::sockopt::linger, 0);
    // libzmq buffers a whole message before recv returns it, whatever its
    // size. A message up to twice the limit (plus 64 KiB) is still read and
    // answered with an error; a larger one makes libzmq drop that peer's
    // connection, so no client can make the server hold gigabytes.
    const uint64_t cap_bytes = std::min<uint64_t>(options_.max_message_bytes, uint64_t{1} << 61) * 2 + (64 << 10);
    socket_.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(cap_bytes));
    if (address.find('[') != std::string::npos) socket_.set(zmq::sockopt::ipv6, 1);
    try {
      socket_.bind(address);
    } catch (const zmq::error_t& e) {
      throw UsageError(fmt::format("zmq server cannot bind {}: {}", options_.endpoint, e.what()));
    }
    endpoint_ = socket_.get(zmq::sockopt::last_endpoint);
    // libzmq (since 4.2) leaves an ipc socket file behind on close; remember
    // which file we bound so that Run() removes it, and only it (a later server
    // on the same path replaces the file, and a stale one left by kill -9 is
    // replaced by the next bind).
    if (endpoint_.starts_with("ipc://")) {
      struct stat st {};
      if (stat(endpoint_.c_str() + 6, &st) == 0) ipc_file_ = {st.st_dev, st.st_ino};
    }
  }

  std::string endpoint() const override { return endpoint_; }

  void Run() override {
    auto io = engine_.AttachIo("io");
    std::vector<zmq::message_t> parts;
    for (;;) {
      parts.clear();
      try {
        BlockingSection blocking(*io);
        (void)zmq::recv_multipart(socket_, std::back_inserter(parts));
      } catch (const zmq::error_t& e) {
        if (e.num() == EINTR && !stopping_) continue;
        if (e.num() == ETERM || stopping_) break;
        throw;
      }
      std::vector<zmq::message_t> reply;
      if (!BuildReply(*io, parts, reply)) continue;
      try {
        BlockingSection blocking(*io);
        (void)zmq::send_multipart(socket_, reply);
      } catch (const zmq::error_t& e) {
        if (e.num() == ETERM || stopping_) break;
        // A peer that vanished between recv and send costs only its reply.
        // `parts` gave its envelope to `reply`.
        fmt::print(stderr, "zmq server: reply to peer {} failed: {}\n", HexId(reply[0]), e.what());
      }
    }
    socket_.close();  // before the context (Stop or destructor) terminates
    RemoveIpcFile();
    io.reset();
  }

  void Stop() override {
    if (!stopping_.exchange(true)) context_.shutdown();
  }

 private:
  // Fills `reply` with the envelope and the answer; false when the request
  // gets no reply (malformed).
  bool BuildReply(IoThread& io, std::vector<zmq::message_t>& parts, std::vector<zmq::message_t>& reply) {
    // [id, body] (DEALER) or [id, envelope..., "", body] (REQ and proxies).
    const bool dealer = parts.size() == 2;
    const bool delimited = parts.size() >= 3 && parts[parts.size() - 2].size() == 0;
    if (!dealer && !delimited) {
      fmt::print(stderr,
                 "zmq server: malformed request from peer {}: {} parts (routing id included) without "
                 "an empty delimiter before the body; dropped\n",
                 DescribePeer(parts), parts.size());
      return false;
    }
    std::string answer;
    if (parts.back().size() > options_.max_message_bytes) {
      fmt::print(stderr,
                 "zmq server: message of {} bytes from peer {} exceeds max_message_bytes {}; "
                 "answered with an error\n",
                 parts.back().size(), DescribePeer(parts), options_.max_message_bytes);
      answer = fmt::format("error: message of {} bytes exceeds max_message_bytes {}", parts.back().size(),
                           options_.max_message_bytes);
    } else {
      const zmq::message_t& body = parts.back();
      try {
        answer = io.Handle(std::string_view(body.data<char>(), body.size()));
      } catch (const std::runtime_error& e) {
        answer = fmt::format("error: {}", e.what());
      }
    }
    parts.pop_back();  // the body
    reply = std::move(parts);
    reply.emplace_back(answer.data(), answer.size());
    return true;
  }

  void RemoveIpcFile() {
    struct stat st {};
    const char* path = endpoint_.c_str() + 6;
    if (ipc_file_.second != 0 && stat(path, &st) == 0 && std::pair(st.st_dev, st.st_ino) == ipc_file_) unlink(path);
    ipc_file_ = {};
  }

  ServerOptions options_;
  Engine& engine_;
  std::pair<dev_t, ino_t> ipc_file_{};  // (device, inode) of our ipc socket file
  zmq::context_t context_;
  zmq::socket_t socket_;
  std::string endpoint_;
  std::atomic<bool> stopping_{false};
};

}  // namespace

std::unique_ptr<Server> MakeZmqServer(const ServerOptions& options, Engine& engine) {
  return std::make_unique<ZmqServer>(options, engine);
}

}  // namespace gillab::servers
