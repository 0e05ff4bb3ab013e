// client_connection.cc — the load client's three transports (see client_connection.h).
#include "servers/client_connection.h"

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <fmt/core.h>
#include <zmq.hpp>

#include "gil/error.h"
#include "servers/frame.h"
#include "servers/http_client.h"
#include "servers/mq_protocol.h"
#include "servers/server_kinds.h"
#include "servers/socket.h"

namespace gillab::servers {
namespace {

// A reply's declared length is trusted up to this much (replies are small or
// echoes of what we sent; a garbage length must not allocate gigabytes).
constexpr uint64_t kMaxReplyBytes = uint64_t{1} << 30;

class StreamConnection final : public ClientConnection {
 public:
  StreamConnection(const std::string& endpoint, int reply_timeout_ms)
      : endpoint_(endpoint), reader_(kMaxReplyBytes) {
    try {
      fd_ = ConnectTcp(ParseTcpEndpoint(endpoint));
    } catch (const std::system_error& e) {
      throw std::runtime_error(fmt::format("cannot connect to {}: {}", endpoint, e.what()));
    }
    SetRecvTimeoutMs(fd_.get(), reply_timeout_ms);
  }

  void Exchange(std::string_view request, std::string& reply) override {
    if (!SendFrame(fd_.get(), request)) {
      throw std::runtime_error(fmt::format("{}: send failed: {}", endpoint_, std::strerror(errno)));
    }
    switch (RecvFrame(fd_.get(), reader_, reply)) {
      case RecvFrameResult::kFrame:
        return;
      case RecvFrameResult::kClosed:
        throw std::runtime_error(fmt::format("{}: server closed the connection", endpoint_));
      case RecvFrameResult::kTooLarge:
        throw std::runtime_error(
            fmt::format("{}: reply declares {} bytes, more than {}", endpoint_, reader_.declared_bytes(), kMaxReplyBytes));
      case RecvFrameResult::kError:
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          throw std::runtime_error(fmt::format("{}: no reply within the reply timeout", endpoint_));
        }
        throw std::runtime_error(fmt::format("{}: recv failed: {}", endpoint_, std::strerror(errno)));
    }
  }

 private:
  std::string endpoint_;
  UniqueFd fd_;
  FrameReader reader_;
};

// One context for every zmq connection of the process: one zmq I/O thread,
// not one per connection, on a 2-core machine.
zmq::context_t& ClientContext() {
  static zmq::context_t context;
  return context;
}

class ZmqConnection final : public ClientConnection {
 public:
  ZmqConnection(const std::string& endpoint, int reply_timeout_ms)
      : endpoint_(endpoint), socket_(ClientContext(), zmq::socket_type::req) {
    socket_.set(zmq::sockopt::linger, 0);
    socket_.set(zmq::sockopt::rcvtimeo, reply_timeout_ms);
    socket_.set(zmq::sockopt::sndtimeo, reply_timeout_ms);
    if (endpoint.find('[') != std::string::npos) socket_.set(zmq::sockopt::ipv6, 1);
    try {
      socket_.connect(endpoint);
    } catch (const zmq::error_t& e) {
      throw UsageError(fmt::format("cannot connect a zmq socket to {}: {}", endpoint, e.what()));
    }
  }

  void Exchange(std::string_view request, std::string& reply) override {
    try {
      if (!socket_.send(zmq::buffer(request.data(), request.size()), zmq::send_flags::none)) {
        throw std::runtime_error(fmt::format("{}: send timed out (no server?)", endpoint_));
      }
      if (!socket_.recv(message_, zmq::recv_flags::none)) {
        throw std::runtime_error(fmt::format("{}: no reply within the reply timeout", endpoint_));
      }
    } catch (const zmq::error_t& e) {
      throw std::runtime_error(fmt::format("{}: {}", endpoint_, e.what()));
    }
    reply.assign(message_.data<char>(), message_.size());
  }

 private:
  std::string endpoint_;
  zmq::socket_t socket_;
  zmq::message_t message_;
};

class MqConnection final : public ClientConnection {
 public:
  MqConnection(const std::string& endpoint, int reply_timeout_ms)
      : client_(ParseIpcName(endpoint), reply_timeout_ms) {}
  void Exchange(std::string_view request, std::string& reply) override { client_.Exchange(request, reply); }

 private:
  MqClient client_;
};

}  // namespace

void ClientConnection::Send(std::string_view) { throw std::logic_error("pipelining needs the http transport"); }
void ClientConnection::Receive(HttpReply&) { throw std::logic_error("pipelining needs the http transport"); }

std::string TransportOfServerKind(std::string_view kind) {
  return std::string(RequireServerKind(kind).client_connection);
}

std::string DefaultTransport(std::string_view endpoint) {
  if (endpoint.starts_with("tcp://")) return "stream";
  if (endpoint.starts_with("ipc://")) return "multiprocessing";
  throw UsageError(fmt::format("bad endpoint '{}': expected tcp://HOST:PORT or ipc://NAME", endpoint));
}

void CheckEndpoint(std::string_view transport, std::string_view endpoint) {
  if (transport == "stream" || transport == "http") {
    if (ParseTcpEndpoint(endpoint).port == 0) {
      throw UsageError(fmt::format("endpoint '{}': a client needs the server's port, not 0", endpoint));
    }
  } else if (transport == "multiprocessing") {
    ParseIpcName(endpoint);
  } else if (transport == "zmq") {
    if (IsTcpEndpoint(endpoint)) {
      if (ParseTcpEndpoint(endpoint).port == 0) {
        throw UsageError(fmt::format("endpoint '{}': a client needs the server's port, not 0", endpoint));
      }
    } else if (!endpoint.starts_with("ipc://") || endpoint.size() <= 6) {
      throw UsageError(fmt::format("bad endpoint '{}' for zmq: expected tcp://HOST:PORT or ipc://PATH", endpoint));
    }
  } else {
    throw UsageError(fmt::format("unknown transport '{}'", transport));
  }
}

std::unique_ptr<ClientConnection> ConnectClient(std::string_view transport, const std::string& endpoint,
                                                int reply_timeout_ms, const std::string& http_target) {
  CheckEndpoint(transport, endpoint);
  if (transport == "stream") return std::make_unique<StreamConnection>(endpoint, reply_timeout_ms);
  if (transport == "http") return std::make_unique<HttpClientConnection>(endpoint, http_target, reply_timeout_ms);
  if (transport == "zmq") return std::make_unique<ZmqConnection>(endpoint, reply_timeout_ms);
  return std::make_unique<MqConnection>(endpoint, reply_timeout_ms);
}

}  // namespace gillab::servers
