// transactional_server.cc — PyPy-STM's Tornado (design §12): one event-loop
// thread gathers the requests that became ready, hands each connection's
// complete requests to a pool of `--workers N` threads as one job (each
// handler call one atomic unit of the model, behind the framework prelude of
// interp/framework.h when the engine runs one), waits for the whole batch
// (transaction.run()), then writes the replies.
//
// Under a GIL the workers' units take turns; under `none` they race; under
// `stm` they run in parallel and conflicts abort and re-run. The loop and
// every idle worker wait in blocking sections (the lock released). One
// connection's requests go to one worker in arrival order, so pipelined
// requests are answered in order. Sockets are non-blocking, epoll is
// level-triggered, and each recv or send is one blocking section, as in the
// nonblocking server; a client with more than kMaxOutboxBytes unread is not
// read until it drains.
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
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
  bool keep = true;  // the batch's verdict: false closes at once
};

// The batch the loop hands to the workers, and how it waits for it.
class Batch {
 public:
  // Loop thread: publishes `jobs` and waits until every one is done.
  void RunAndWait(const std::vector<Client*>& jobs) {
    std::unique_lock lock(mu_);
    jobs_ = jobs;
    next_ = 0;
    remaining_ = jobs_.size();
    work_cv_.notify_all();
    done_cv_.wait(lock, [&] { return remaining_ == 0; });
    jobs_.clear();
  }
  // Worker: the next job, or nullptr once Quit.
  Client* Take() {
    std::unique_lock lock(mu_);
    work_cv_.wait(lock, [&] { return quit_ || next_ < jobs_.size(); });
    if (quit_) return nullptr;
    return jobs_[next_++];
  }
  void Done() {
    std::lock_guard lock(mu_);
    if (--remaining_ == 0) done_cv_.notify_one();
  }
  void Quit() {
    std::lock_guard lock(mu_);
    quit_ = true;
    work_cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable work_cv_, done_cv_;
  std::vector<Client*> jobs_;
  size_t next_ = 0;
  size_t remaining_ = 0;
  bool quit_ = false;
};

class TransactionalServer final : public EpollServer {
 public:
  TransactionalServer(const ServerOptions& options, Engine& engine) : EpollServer(options, engine), workers_(options.workers) {}

  void Run() override {
    RequireBound();
    OpenEpoll();
    auto io = engine().AttachIo("loop");
    std::vector<std::thread> pool;
    {
      // The workers attach (and under a GIL, queue for the lock) on their own.
      BlockingSection released(*io);
      for (int i = 0; i < workers_; ++i) pool.emplace_back([this, i] { Work(i); });
    }
    try {
      Loop(*io);
    } catch (...) {
      StopWorkers(*io, pool);
      throw;
    }
    StopWorkers(*io, pool);
    connections_.clear();  // closes every client socket
  }

 private:
  void Work(int index) {
    auto io = engine().AttachIo(fmt::format("worker-{}", index));
    for (;;) {
      Client* c;
      {
        BlockingSection released(*io);
        c = batch_.Take();
      }
      if (c == nullptr) break;
      c->keep = ProcessRequests(*io, c->conn);  // each handler call one unit
      batch_.Done();
    }
  }

  void StopWorkers(IoThread& io, std::vector<std::thread>& pool) {
    BlockingSection released(io);
    batch_.Quit();
    for (auto& t : pool) t.join();
  }

  void Loop(IoThread& io) {
    std::vector<epoll_event> events(kMaxEvents);
    std::vector<int> touched;
    while (!stopping()) {
      const int ready = Wait(io, true, events, -1);
      touched.clear();
      jobs_.clear();
      // 1. Read what is ready; a connection with new bytes joins the batch.
      for (int i = 0; i < ready; ++i) {
        const int fd = events[i].data.fd;
        if (fd == stop_fd()) continue;
        if (fd == listen_fd()) {
          if (const int error = AcceptAll(io, true); error != 0) BackOffAfterAcceptError(io, error);
          continue;
        }
        auto it = connections_.find(fd);
        if (it == connections_.end()) continue;
        touched.push_back(fd);
        Client& client = *it->second;
        const Received received = Receive(io, true, client.conn, events[i].events);
        client.keep = received != Received::kClosed;
        if (received == Received::kBytes) jobs_.push_back(&client);
      }
      // 2. Run the batch on the workers and wait for all of it.
      if (!jobs_.empty()) {
        BlockingSection released(io);
        batch_.RunAndWait(jobs_);
      }
      // 3. Write the replies; close what must close.
      for (int fd : touched) {
        auto it = connections_.find(fd);
        if (it == connections_.end()) continue;
        if (!it->second->keep || !Flush(io, true, *it->second)) Close(fd);
      }
    }
  }

  EpollClient& Adopt(UniqueFd fd, std::string peer) override {
    auto client = std::make_unique<Client>(std::move(fd), NewProtocol(), std::move(peer));
    const int key = client->conn.fd.get();
    return *connections_.emplace(key, std::move(client)).first->second;
  }

  void Close(int fd) {
    Watch(EPOLL_CTL_DEL, fd, 0);
    connections_.erase(fd);
  }

  const int workers_;
  Batch batch_;
  std::vector<Client*> jobs_;  // the loop's next batch
  std::unordered_map<int, std::unique_ptr<Client>> connections_;  // by socket fd
};

}  // namespace

std::unique_ptr<Server> MakeTransactionalServer(const ServerOptions& options, Engine& engine) {
  if (options.workers < 1) throw UsageError(fmt::format("--workers must be >= 1, got {}", options.workers));
  return std::make_unique<TransactionalServer>(options, engine);
}

}  // namespace gillab::servers
