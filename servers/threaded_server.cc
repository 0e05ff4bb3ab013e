// threaded_server.cc — Python's thread-per-connection server (socketserver's
// ThreadingMixIn): an accepting thread, attached as "io-accept", starts one
// thread per client, attached as io-0, io-1, …; all of them share the
// engine's one lock, each holding it except inside its blocking calls.
//
// Finished connection threads are joined by the acceptor after each accept
// (they have detached from the engine by then, so joining them with the lock
// held cannot deadlock). On Stop the acceptor joins the rest with the lock
// released, because they need it to notice the stop and detach.
#include <atomic>
#include <cstdio>
#include <exception>
#include <list>
#include <memory>
#include <string>
#include <system_error>
#include <thread>

#include <fmt/core.h>

#include "servers/stream_server.h"

namespace gillab::servers {
namespace {

class ThreadedServer final : public StreamServer {
 public:
  ThreadedServer(const ServerOptions& options, Engine& engine) : StreamServer(options, engine) {}

  void Run() override {
    RequireBound();
    auto io = engine().AttachIo("io-accept");
    uint64_t next_id = 0;
    try {
      std::string peer;
      while (UniqueFd fd = AcceptBlocking(*io, /*non_blocking=*/false, peer)) {
        ReapFinished();
        auto worker = std::make_unique<Worker>();
        Worker* w = worker.get();
        try {
          w->thread = std::thread([this, w, fd = std::move(fd), name = fmt::format("io-{}", next_id++), peer]() mutable {
            ServeClient(std::move(fd), std::move(name), std::move(peer));
            w->done.store(true, std::memory_order_release);
          });
        } catch (const std::system_error& e) {
          // Out of threads or memory for a stack: refuse this client (the
          // lambda, and with it the socket, is gone), keep serving the others.
          ReportClose(peer, fmt::format("refused, cannot start a connection thread: {}", e.what()));
          continue;
        }
        workers_.push_back(std::move(worker));
      }
    } catch (...) {
      Stop();  // connection threads must not outlive Run, whatever went wrong
      JoinAll(*io);
      throw;
    }
    JoinAll(*io);
  }

 private:
  struct Worker {
    std::thread thread;
    std::atomic<bool> done{false};
  };

  void ServeClient(UniqueFd fd, std::string name, std::string peer) {
    try {
      StreamConnection conn(std::move(fd), NewProtocol(), std::move(peer));
      auto io = engine().AttachIo(std::move(name));
      ServeBlocking(*io, conn);
    } catch (const std::exception& e) {
      fmt::print(stderr, "gillab serve: connection thread failed: {}\n", e.what());
    }
  }

  // After Stop(): the remaining threads need the lock to see it and detach.
  void JoinAll(IoThread& io) {
    {
      BlockingSection released(io);
      for (auto& w : workers_) w->thread.join();
    }
    workers_.clear();
  }

  void ReapFinished() {
    for (auto it = workers_.begin(); it != workers_.end();) {
      if ((*it)->done.load(std::memory_order_acquire)) {
        (*it)->thread.join();
        it = workers_.erase(it);
      } else {
        ++it;
      }
    }
  }

  std::list<std::unique_ptr<Worker>> workers_;  // touched by the acceptor thread only
};

}  // namespace

std::unique_ptr<Server> MakeThreadedServer(const ServerOptions& options, Engine& engine) {
  return std::make_unique<ThreadedServer>(options, engine);
}

}  // namespace gillab::servers
