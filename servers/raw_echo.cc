// raw_echo.cc — `gillab_raw_echo`: the smallest echo server per transport,
// with none of gillab's server code, engine or lock. It is the floor that
// scripts/transport_floor measures the real servers against: whatever the
// gillab server adds on top of the transport shows as the ratio between the
// two, measured with the same load client in the same run.
//
//   gillab_raw_echo --transport tcp|zmq|mq [--endpoint E]   # prints "listening E"
//
// tcp: one connection at a time, blocking socket, 4-byte big-endian framing,
// header and body written back with one writev. zmq: a REP socket. mq: the
// multiprocessing protocol of mq_protocol.h (names only), one connection at a
// time. SIGINT/SIGTERM end it; the mq variant removes its queues first.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>

#include <boost/date_time/posix_time/posix_time_types.hpp>
#include <fmt/core.h>
#include <zmq.hpp>

#include "servers/mq_protocol.h"

namespace {

std::atomic<bool> stopping{false};

bool ReadAll(int fd, char* data, size_t n) {
  while (n > 0) {
    const ssize_t got = recv(fd, data, n, 0);
    if (got <= 0) return false;
    data += got;
    n -= static_cast<size_t>(got);
  }
  return true;
}

int ServeTcp(const std::string& endpoint) {
  // endpoint: tcp://127.0.0.1:PORT (IPv4 loopback only: this is a floor, not a server).
  const size_t colon = endpoint.rfind(':');
  const int port = colon == std::string::npos ? 0 : std::atoi(endpoint.c_str() + colon + 1);
  const int listener = socket(AF_INET, SOCK_STREAM, 0);
  const int one = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(static_cast<uint16_t>(port));
  if (bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 || listen(listener, 16) != 0) {
    fmt::print(stderr, "gillab_raw_echo: cannot listen on {}: {}\n", endpoint, std::strerror(errno));
    return 1;
  }
  socklen_t length = sizeof address;
  getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length);
  fmt::print("listening tcp://127.0.0.1:{}\n", ntohs(address.sin_port));
  std::fflush(stdout);
  std::string body;
  while (!stopping) {
    const int fd = accept(listener, nullptr, nullptr);
    if (fd < 0) continue;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    for (;;) {
      unsigned char header[4];
      if (!ReadAll(fd, reinterpret_cast<char*>(header), 4)) break;
      const uint32_t n = (uint32_t{header[0]} << 24) | (uint32_t{header[1]} << 16) |
                         (uint32_t{header[2]} << 8) | header[3];
      body.resize(n);
      if (!ReadAll(fd, body.data(), n)) break;
      iovec parts[2] = {{header, 4}, {body.data(), n}};
      size_t left = 4 + n;
      int first = 0;
      while (left > 0) {  // writev may be partial for large bodies
        const ssize_t sent = writev(fd, parts + first, 2 - first);
        if (sent <= 0) break;
        left -= static_cast<size_t>(sent);
        size_t done = static_cast<size_t>(sent);
        while (first < 2 && done >= parts[first].iov_len) done -= parts[first++].iov_len;
        if (first < 2) {
          parts[first].iov_base = static_cast<char*>(parts[first].iov_base) + done;
          parts[first].iov_len -= done;
        }
      }
      if (left > 0) break;
    }
    close(fd);
  }
  return 0;
}

int ServeZmq(std::string endpoint) {
  if (endpoint.ends_with(":0")) endpoint.replace(endpoint.size() - 1, 1, "*");
  zmq::context_t context;
  zmq::socket_t socket(context, zmq::socket_type::rep);
  socket.set(zmq::sockopt::linger, 0);
  socket.bind(endpoint);
  fmt::print("listening {}\n", socket.get(zmq::sockopt::last_endpoint));
  std::fflush(stdout);
  zmq::message_t message;
  while (!stopping) {
    try {
      if (!socket.recv(message)) continue;
      socket.send(message, zmq::send_flags::none);
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) throw;
    }
  }
  return 0;
}

int ServeMq(const std::string& endpoint) {
  namespace bip = boost::interprocess;
  using gillab::servers::kControlPriority;
  const std::string name = gillab::servers::ParseIpcName(endpoint);
  gillab::servers::RemoveMqQueues(name);
  const size_t max_bytes = size_t{16} << 20;
  bip::message_queue control(bip::create_only, gillab::servers::ControlQueueName(name).c_str(),
                             gillab::servers::kControlQueueCapacity, gillab::servers::kControlMessageBytes);
  fmt::print("listening ipc://{}\n", name);
  std::fflush(stdout);
  const auto deadline = [] {
    return boost::posix_time::microsec_clock::universal_time() + boost::posix_time::milliseconds(200);
  };
  std::unique_ptr<char[]> buffer(new char[max_bytes]);
  char text[gillab::servers::kControlMessageBytes + 1];
  while (!stopping) {
    size_t n = 0;
    unsigned priority = 0;
    if (!control.timed_receive(text, sizeof text - 1, n, priority, deadline())) continue;
    text[n] = '\0';
    char token[80] = {};
    if (std::sscanf(text, "connect %64s", token) != 1) continue;
    const std::string req_name = gillab::servers::RequestQueueName(name, token);
    const std::string rep_name = gillab::servers::ReplyQueueName(name, token);
    {
      bip::message_queue req(bip::create_only, req_name.c_str(), 2, max_bytes);
      bip::message_queue rep(bip::create_only, rep_name.c_str(), 2, max_bytes);
      const std::string hello = fmt::format("hello {} {}", getpid(), max_bytes);
      rep.send(hello.data(), hello.size(), kControlPriority);
      while (!stopping) {
        if (!req.timed_receive(buffer.get(), max_bytes, n, priority, deadline())) continue;
        if (priority == kControlPriority) break;
        rep.send(buffer.get(), n, 0);
      }
    }
    bip::message_queue::remove(req_name.c_str());
    bip::message_queue::remove(rep_name.c_str());
  }
  gillab::servers::RemoveMqQueues(name);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string transport, endpoint;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--transport") == 0) transport = argv[i + 1];
    else if (std::strcmp(argv[i], "--endpoint") == 0) endpoint = argv[i + 1];
  }
  if (endpoint.empty()) endpoint = transport == "mq" ? fmt::format("ipc://gillab-raw-{}", getpid()) : "tcp://127.0.0.1:0";
  // Signals end the serving loops; the mq loop wakes every 200 ms to notice.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::thread([signals] {
    int signal = 0;
    sigwait(&signals, &signal);
    stopping = true;
  }).detach();
  // tcp and zmq block without timeouts and have nothing to clean up: once
  // stopping, a watcher ends the process.
  const auto exit_when_stopping = [] {
    while (!stopping) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    _exit(0);
  };
  try {
    if (transport == "tcp") {
      std::thread(exit_when_stopping).detach();
      return ServeTcp(endpoint);
    }
    if (transport == "zmq") {
      std::thread(exit_when_stopping).detach();
      return ServeZmq(endpoint);
    }
    if (transport == "mq") return ServeMq(endpoint);
  } catch (const std::exception& e) {
    fmt::print(stderr, "gillab_raw_echo: {}\n", e.what());
    return 1;
  }
  fmt::print(stderr, "usage: gillab_raw_echo --transport tcp|zmq|mq [--endpoint E]\n");
  return 2;
}
