// parallel_server.cc — the `parallel` server (design §12, issue 14):
// PyParallel's design without its crashes. One main thread holds the
// engine's lock (under any policy) and does all the I/O as the nonblocking
// server does (epoll, non-blocking sockets, each syscall in a blocking
// section); the requests are run by a pool of --workers threads, each
// handler call in a parallel context (interp/parallel_model.h): outside the
// lock, its tables and strings in the worker's arena, freed whole once the
// reply is copied into the connection's outbox, main-heap objects readable
// but never written.
//
// In flight. The main thread reads every readable socket (Feed; the lock
// released only while no context runs), and hands each connection that got
// bytes to the pool: a connection's whole StreamProtocol::Process (its
// complete requests, in order; for http with --http-parser vm the parse as
// well) runs on one worker, the connection off the epoll set meanwhile (the
// main thread leaves it alone). A worker done with it writes an eventfd in
// the main thread's epoll set; the main thread then sends its replies.
// Contexts run ONLY while the main thread holds the engine's lock: as long as
// any connection is in flight, the main thread does its non-blocking I/O and
// even its epoll_wait without releasing the lock; it releases it around its
// syscalls (as every server does) only when no context runs. That is the
// guarantee that nobody changes the main heap while a context reads it: the
// main thread itself runs no VM code, and every other VM thread of the
// engine (CPU threads) needs the lock. (Under policy `none` the lock excludes
// nobody: the toy engine then refuses workers when it has CPU threads.) What
// ran under the lock while no context ran is seen by the next context (the
// pool's mutex orders it).
//
// Failures. A handler that fails (a VmError: a refused write, a context past
// --context-max-bytes, a stop) gets the protocol's error reply and one
// stderr line, as on every server; the connection and the server go on. A
// handler that runs longer than the stall threshold (EngineOptions::
// stall_threshold_ms, 1 s) is reported on stderr and stopped at its next
// check point: its request fails, nothing else does.
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <deque>
#include <cstdio>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <vector>

#include <fmt/core.h>

#include "gil/error.h"
#include "servers/epoll_server.h"

namespace gillab::servers {
namespace {

struct Client : EpollClient {
  using EpollClient::EpollClient;
  bool in_flight = false;  // a worker runs its Process: the main thread leaves conn alone
  StreamProtocol::Next next = StreamProtocol::Next::kKeepOpen;  // the worker's verdict
};

// The worker pool: Submit queues a client's Process; a finished client goes
// on the done list and the completion eventfd is written (the main thread
// watches it in its epoll set).
class WorkerPool {
 public:
  WorkerPool(Engine& engine, int workers, int64_t context_max_bytes) {
    done_fd_.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!done_fd_) throw std::system_error(errno, std::generic_category(), "eventfd");
    // Attached here (a toy engine's worker has no thread affinity before its
    // first call), so that an engine without parallel contexts is refused
    // before any thread starts.
    for (int i = 0; i < workers; ++i) {
      contexts_.push_back(engine.AttachContextWorker(fmt::format("worker-{}", i), context_max_bytes));
    }
    for (int i = 0; i < workers; ++i) threads_.emplace_back([this, i] { Loop(*contexts_[static_cast<size_t>(i)]); });
  }
  ~WorkerPool() {
    {
      std::lock_guard lock(mu_);
      quit_ = true;
    }
    work_cv_.notify_all();
    for (auto& t : threads_) t.join();
    contexts_.clear();
  }

  int done_fd() const { return done_fd_.get(); }

  void Submit(Client* client) {
    {
      std::lock_guard lock(mu_);
      queue_.push_back(client);
    }
    work_cv_.notify_one();
  }
  // The clients finished since the last call (drains the eventfd).
  void TakeDone(std::vector<Client*>& out) {
    uint64_t count;
    [[maybe_unused]] ssize_t rc = ::read(done_fd_.get(), &count, sizeof count);
    std::lock_guard lock(mu_);
    out.insert(out.end(), done_.begin(), done_.end());
    done_.clear();
  }
  // The stall report: each worker's handler call running longer than stall_ms is stopped.
  void StopStalled(int64_t stall_ms) {
    for (auto& c : contexts_) {
      const int64_t ran_ms = c->StopIfRunningLongerThan(stall_ms);
      if (ran_ms > 0) {
        fmt::print(stderr, "gillab serve: stall: a handler ran {} ms in a parallel context (threshold {} ms); stopping it\n",
                   ran_ms, stall_ms);
        std::fflush(stderr);
      }
    }
  }

 private:
  void Loop(ContextWorker& worker) {
    std::unique_lock lock(mu_);
    for (;;) {
      work_cv_.wait(lock, [&] { return quit_ || !queue_.empty(); });
      if (quit_) return;
      Client& client = *queue_.front();
      queue_.pop_front();
      lock.unlock();
      StreamConnection& conn = client.conn;
      try {
        client.next = conn.protocol->Process(worker, conn.outbox, conn.peer);
      } catch (const std::exception& e) {
        ReportPeer(conn.peer, fmt::format("{}; closing connection", e.what()));
        client.next = StreamProtocol::Next::kCloseNow;
      }
      lock.lock();
      done_.push_back(&client);
      const uint64_t one = 1;
      [[maybe_unused]] ssize_t rc = ::write(done_fd_.get(), &one, sizeof one);
    }
  }

  UniqueFd done_fd_;
  std::vector<std::unique_ptr<ContextWorker>> contexts_;
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable work_cv_;
  std::deque<Client*> queue_;
  std::vector<Client*> done_;
  bool quit_ = false;
};

class ParallelServer final : public EpollServer {
 public:
  ParallelServer(const ServerOptions& options, Engine& engine)
      : EpollServer(options, engine), options_(options) {}

  // The workers start here, so that an engine without parallel contexts (or
  // policy `none` with CPU threads) is refused before `listening` is printed.
  void Bind() override {
    StreamServer::Bind();
    if (!pool_) pool_ = std::make_unique<WorkerPool>(engine(), options_.workers, options_.context_max_bytes);
  }

  void Run() override {
    RequireBound();
    OpenEpoll();
    Watch(EPOLL_CTL_ADD, pool_->done_fd(), EPOLLIN);
    auto io = engine().AttachIo("io");  // holds the lock from here on, except in blocking sections
    std::vector<epoll_event> events(kMaxEvents);
    while (!stopping() || in_flight_ > 0) {
      // While contexts run, the lock stays held, even in epoll_wait (see the header).
      const int ready = Wait(*io, in_flight_ == 0, events, WaitTimeoutMs());
      for (int i = 0; i < ready; ++i) {
        const int fd = events[i].data.fd;
        if (fd == stop_fd()) continue;
        if (fd == pool_->done_fd()) {
          Complete(*io);
          continue;
        }
        if (stopping()) continue;  // draining: only completions matter now
        if (fd == listen_fd()) {
          // The back-off releases the lock: only while no context runs (else epoll reports the backlog again).
          const int error = AcceptAll(*io, in_flight_ == 0);
          if (error != 0 && in_flight_ == 0) BackOffAfterAcceptError(*io, error);
          continue;
        }
        auto it = connections_.find(fd);
        if (it == connections_.end() || it->second->in_flight) continue;
        Client& client = *it->second;
        client.next = StreamProtocol::Next::kKeepOpen;
        // The lock released only while no context runs (see the header).
        const Received received = Receive(*io, in_flight_ == 0, client.conn, events[i].events);
        if (received == Received::kClosed) {
          Close(fd);
          continue;
        }
        if (received == Received::kBytes) {
          Submit(client);
        } else if (!Finish(*io, client)) {
          Close(fd);
        }
      }
      if (in_flight_ > 0 && options_.context_stall_ms > 0) pool_->StopStalled(options_.context_stall_ms);
    }
    connections_.clear();
  }

 private:
  int WaitTimeoutMs() const {
    if (in_flight_ == 0 || options_.context_stall_ms <= 0) return -1;
    return static_cast<int>(std::max<int64_t>(options_.context_stall_ms / 4, 1));
  }

  void Submit(Client& client) {
    client.in_flight = true;
    ++in_flight_;
    // Off the epoll set until the worker is done (a hang-up would otherwise be reported on every round).
    Unwatch(client);
    pool_->Submit(&client);
  }

  void Complete(IoThread& io) {
    done_.clear();
    pool_->TakeDone(done_);
    for (Client* client : done_) {
      client->in_flight = false;
      --in_flight_;
      const int fd = client->conn.fd.get();
      if (!Finish(io, *client)) Close(fd);
    }
  }

  EpollClient& Adopt(UniqueFd fd, std::string peer) override {
    auto client = std::make_unique<Client>(std::move(fd), NewProtocol(), std::move(peer));
    const int key = client->conn.fd.get();
    return *connections_.emplace(key, std::move(client)).first->second;
  }

  // The worker's verdict, then the write half. False: close.
  bool Finish(IoThread& io, Client& client) {
    StreamConnection& conn = client.conn;
    switch (client.next) {
      case StreamProtocol::Next::kKeepOpen:
        break;
      case StreamProtocol::Next::kCloseAfterReply:
        conn.close_after_send = true;
        break;
      case StreamProtocol::Next::kCloseNow:
        return false;
    }
    client.next = StreamProtocol::Next::kKeepOpen;
    return Flush(io, in_flight_ == 0, client);  // the lock released only while no context runs
  }

  void Close(int fd) {
    Watch(EPOLL_CTL_DEL, fd, 0);  // harmless when already off the set
    connections_.erase(fd);
  }

  ServerOptions options_;
  std::unique_ptr<WorkerPool> pool_;  // Bind() starts it; the server's end joins it
  int in_flight_ = 0;  // clients a worker is processing
  std::vector<Client*> done_;
  std::unordered_map<int, std::unique_ptr<Client>> connections_;
};

}  // namespace

std::unique_ptr<Server> MakeParallelServer(const ServerOptions& options, Engine& engine) {
  if (options.workers < 1) throw UsageError(fmt::format("--workers must be at least 1 (got {})", options.workers));
  return std::make_unique<ParallelServer>(options, engine);
}

}  // namespace gillab::servers
