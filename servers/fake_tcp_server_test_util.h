// fake_tcp_server_test_util.h — a loopback TCP server for client tests: it
// listens on 127.0.0.1 (port 0), accepts on its own thread and runs
// serve(fd) on one thread per connection, with plain blocking sockets. The
// test's serve function speaks the protocol by hand, so a bug in the code
// under test cannot hide on both sides. The destructor shuts every
// connection down, joins every thread and closes every socket.
//
//   FakeTcpServer tcp([](int fd) { /* recv, reply, ... */ });
//   LoadOptions o; o.endpoint = tcp.endpoint();
#pragma once

#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "servers/socket.h"

namespace gillab::servers {

class FakeTcpServer {
 public:
  explicit FakeTcpServer(std::function<void(int fd)> serve) : serve_(std::move(serve)) {
    listener_ = ListenTcp(ParseTcpEndpoint("tcp://127.0.0.1:0"));
    SetNonBlocking(listener_.get(), false);
    endpoint_ = LocalEndpoint(listener_.get()).ToString();
    acceptor_ = std::thread([this] { Accept(); });
  }
  ~FakeTcpServer() {
    stopping_ = true;
    shutdown(listener_.get(), SHUT_RDWR);
    acceptor_.join();
    std::lock_guard lock(mutex_);
    for (int fd : open_) shutdown(fd, SHUT_RDWR);
    for (auto& t : connections_) t.join();
    for (int fd : open_) close(fd);
  }
  FakeTcpServer(const FakeTcpServer&) = delete;
  FakeTcpServer& operator=(const FakeTcpServer&) = delete;

  const std::string& endpoint() const { return endpoint_; }
  int accepted() const { return accepted_; }

 private:
  void Accept() {
    while (!stopping_) {
      const int fd = accept(listener_.get(), nullptr, nullptr);
      if (fd < 0) return;
      ++accepted_;
      std::lock_guard lock(mutex_);
      open_.push_back(fd);
      connections_.emplace_back([this, fd] { serve_(fd); });
    }
  }

  std::function<void(int fd)> serve_;
  UniqueFd listener_;
  std::string endpoint_;
  std::thread acceptor_;
  std::atomic<bool> stopping_{false};
  std::atomic<int> accepted_{0};
  std::mutex mutex_;
  std::vector<int> open_;  // shut down to end their threads, closed after the join
  std::vector<std::thread> connections_;
};

}  // namespace gillab::servers
