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
      while (UniqueFd fd = AcceptBlocking(*io, /*non_blocking=*/false)) {
        ReapFinished();
        auto worker = std::make_unique<Worker>();
        Worker* w = worker.get();
        w->thread = std::thread([this, w, fd = std::move(fd), name = fmt::format("io-{}", next_id++)]() mutable {
          ServeClient(std::move(fd), std::move(name));
          w->done.store(true, std::memory_order_release);
        });
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

  void ServeClient(UniqueFd fd, std::string name) {
    try {
      StreamConnection conn(std::move(fd), max_message_bytes());
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
