// http_floor.cc — the floor the HTTP servers are judged against (issue 15,
// targets): a minimal C-style HTTP/1.1 responder with none of gillab's code —
// one thread, epoll, non-blocking sockets, and for every request that arrives
// (a GET: its head ends at the first blank line; bodies are not supported) the
// same fixed reply, the 6,600-byte /static page with keep-alive, sent in one
// write. Pipelined requests are answered together. It parses nothing else: it
// is the cost of the kernel and one event loop, not of HTTP.
//
//   gillab_http_floor [--port N]     # prints "listening tcp://127.0.0.1:PORT"; SIGTERM ends it
//   wrk -c 8 -t 2 -d 10 http://127.0.0.1:PORT/static
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <unordered_map>

namespace {

constexpr size_t kPageBytes = 6600;  // PyParallel's page, as GET /static of gillab serve --protocol http

std::string MakeReply() {
  std::string page;
  const std::string_view line = "gillab static page: the 6,600 bytes PyParallel's wrk runs fetched.\n";
  while (page.size() < kPageBytes) page.append(line);
  page.resize(kPageBytes);
  return "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " + std::to_string(kPageBytes) +
         "\r\nConnection: keep-alive\r\n\r\n" + page;
}

[[noreturn]] void Die(const char* what) {
  std::fprintf(stderr, "gillab_http_floor: %s: %s\n", what, std::strerror(errno));
  std::exit(1);
}

struct Connection {
  std::string in;   // bytes of a request head not complete yet
  std::string out;  // replies not yet written (the socket was full)
};

// Writes as much of c.out as the socket takes; false when the peer is gone.
bool Flush(int fd, Connection& c) {
  while (!c.out.empty()) {
    const ssize_t n = send(fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
    if (n > 0) {
      c.out.erase(0, static_cast<size_t>(n));
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  int port = 0;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
      char* end = nullptr;
      const long value = std::strtol(argv[++i], &end, 10);
      if (*end != '\0' || value < 0 || value > 65535) {
        std::fprintf(stderr, "gillab_http_floor: --port must be from 0 to 65535\n");
        return 2;
      }
      port = static_cast<int>(value);
    } else {
      std::fprintf(stderr, "usage: gillab_http_floor [--port N]\n");
      return 2;
    }
  }
  const std::string reply = MakeReply();

  const int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (listener < 0) Die("socket");
  const int one = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(static_cast<uint16_t>(port));
  if (bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) Die("bind");
  if (listen(listener, 1024) != 0) Die("listen");
  socklen_t length = sizeof address;
  getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length);

  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  sigprocmask(SIG_BLOCK, &stop_signals, nullptr);
  const int signals = signalfd(-1, &stop_signals, SFD_CLOEXEC);
  const int epoll = epoll_create1(EPOLL_CLOEXEC);
  if (signals < 0 || epoll < 0) Die("signalfd/epoll");
  epoll_event event{.events = EPOLLIN, .data = {.fd = listener}};
  epoll_ctl(epoll, EPOLL_CTL_ADD, listener, &event);
  event.data.fd = signals;
  epoll_ctl(epoll, EPOLL_CTL_ADD, signals, &event);
  std::printf("listening tcp://127.0.0.1:%d\n", ntohs(address.sin_port));
  std::fflush(stdout);

  std::unordered_map<int, Connection> connections;
  epoll_event events[256];
  char buffer[65536];
  for (;;) {
    const int ready = epoll_wait(epoll, events, 256, -1);
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) Die("epoll_wait");
    for (int i = 0; i < ready; ++i) {
      const int fd = events[i].data.fd;
      if (fd == signals) {
        for (auto& [c, unused] : connections) close(c);
        return 0;
      }
      if (fd == listener) {
        for (;;) {
          const int c = accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (c < 0) break;
          setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          epoll_event e{.events = EPOLLIN | EPOLLRDHUP, .data = {.fd = c}};
          epoll_ctl(epoll, EPOLL_CTL_ADD, c, &e);
          connections[c];
        }
        continue;
      }
      Connection& c = connections[fd];
      bool alive = true;
      if (events[i].events & EPOLLIN) {
        for (;;) {
          const ssize_t n = recv(fd, buffer, sizeof buffer, 0);
          if (n > 0) {
            c.in.append(buffer, static_cast<size_t>(n));
            for (size_t end; (end = c.in.find("\r\n\r\n")) != std::string::npos;) {
              c.in.erase(0, end + 4);
              c.out += reply;
            }
            continue;
          }
          if (n < 0 && errno == EINTR) continue;
          alive = n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
          break;
        }
      }
      if (alive) alive = Flush(fd, c);
      if (alive && !(events[i].events & (EPOLLHUP | EPOLLERR))) {
        epoll_event e{.events = EPOLLIN | EPOLLRDHUP | (c.out.empty() ? 0u : static_cast<uint32_t>(EPOLLOUT)),
                      .data = {.fd = fd}};
        epoll_ctl(epoll, EPOLL_CTL_MOD, fd, &e);
        continue;
      }
      close(fd);
      connections.erase(fd);
    }
  }
}
