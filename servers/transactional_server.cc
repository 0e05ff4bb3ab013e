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
#include <sys/epoll.h>
#include <sys/socket.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <vector>

#include <fmt/core.h>

#include "gil/error.h"
#include "servers/stream_server.h"

namespace gillab::servers {
namespace {

constexpr size_t kMaxOutboxBytes = 4 << 20;
constexpr int kMaxEvents = 256;
constexpr int kMaxAcceptsPerEvent = 64;

struct Client {
  Client(UniqueFd fd, std::unique_ptr<StreamProtocol> protocol, std::string peer)
      : conn(std::move(fd), std::move(protocol), std::move(peer)) {}
  StreamConnection conn;
  uint32_t interest = EPOLLIN;
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

class TransactionalServer final : public StreamServer {
 public:
  TransactionalServer(const ServerOptions& options, Engine& engine) : StreamServer(options, engine), workers_(options.workers) {}

  void Run() override {
    RequireBound();
    epoll_.reset(epoll_create1(EPOLL_CLOEXEC));
    if (!epoll_) throw std::system_error(errno, std::generic_category(), "epoll_create1");
    Watch(EPOLL_CTL_ADD, listen_fd(), EPOLLIN);
    Watch(EPOLL_CTL_ADD, stop_fd(), EPOLLIN);
    chunk_.resize(kRecvChunkBytes);
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
      int ready;
      {
        BlockingSection released(io);
        do {
          ready = epoll_wait(epoll_.get(), events.data(), kMaxEvents, -1);
        } while (ready < 0 && errno == EINTR);
      }
      if (ready < 0) throw std::system_error(errno, std::generic_category(), "epoll_wait");
      touched.clear();
      jobs_.clear();
      // 1. Read what is ready; a connection with new bytes joins the batch.
      for (int i = 0; i < ready; ++i) {
        const int fd = events[i].data.fd;
        if (fd == stop_fd()) continue;
        if (fd == listen_fd()) {
          AcceptAll(io);
          continue;
        }
        auto it = connections_.find(fd);
        if (it == connections_.end()) continue;
        touched.push_back(fd);
        if (!Receive(io, *it->second, events[i].events)) it->second->keep = false;
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
        if (!it->second->keep || !Send(io, *it->second)) Close(fd);
      }
    }
  }

  void Watch(int op, int fd, uint32_t events) {
    epoll_event event{.events = events, .data = {.fd = fd}};
    if (epoll_ctl(epoll_.get(), op, fd, &event) != 0 && op != EPOLL_CTL_DEL) {
      throw std::system_error(errno, std::generic_category(), "epoll_ctl");
    }
  }

  void AcceptAll(IoThread& io) {
    for (int i = 0; i < kMaxAcceptsPerEvent; ++i) {
      int fd;
      std::string peer;
      {
        BlockingSection released(io);
        fd = AcceptNamed(listen_fd(), SOCK_NONBLOCK | SOCK_CLOEXEC, peer);
      }
      if (fd < 0) {
        if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED || errno == EPROTO) return;
        BackOffAfterAcceptError(io, errno);
        return;
      }
      SetNoDelay(fd);
      auto client = std::make_unique<Client>(UniqueFd(fd), NewProtocol(), std::move(peer));
      Watch(EPOLL_CTL_ADD, fd, client->interest);
      connections_.emplace(fd, std::move(client));
    }
  }

  // One recv for a readiness event; false when the connection must close.
  // A connection that received bytes joins the batch.
  bool Receive(IoThread& io, Client& client, uint32_t ready) {
    StreamConnection& conn = client.conn;
    client.keep = true;
    if (!(ready & (EPOLLIN | EPOLLHUP | EPOLLERR)) || conn.close_after_send) return true;
    if (conn.outbox.size() - conn.outbox_sent >= kMaxOutboxBytes) return true;
    ssize_t received;
    {
      BlockingSection released(io);
      received = RecvSome(conn.fd.get(), chunk_.data(), chunk_.size());
      if (received > 0) conn.protocol->Feed(chunk_.data(), static_cast<size_t>(received));
    }
    if (received == 0) {
      ReportEndOfStream(conn);
      return false;
    }
    if (received < 0 && errno != EAGAIN) {
      ReportClose(conn.peer, fmt::format("recv failed: {}", std::strerror(errno)));
      return false;
    }
    if (received > 0) jobs_.push_back(&client);
    return true;
  }

  // Sends what it can; false when the connection must close.
  bool Send(IoThread& io, Client& client) {
    StreamConnection& conn = client.conn;
    if (conn.outbox_sent < conn.outbox.size()) {
      ssize_t sent;
      {
        BlockingSection released(io);
        sent = SendSome(conn.fd.get(), conn.outbox.data() + conn.outbox_sent, conn.outbox.size() - conn.outbox_sent,
                        MSG_DONTWAIT);
      }
      if (sent < 0 && errno != EAGAIN) {
        ReportClose(conn.peer, fmt::format("send failed: {}", std::strerror(errno)));
        return false;
      }
      if (sent > 0) conn.outbox_sent += static_cast<size_t>(sent);
      if (conn.outbox_sent == conn.outbox.size()) {
        conn.outbox.clear();
        conn.outbox_sent = 0;
      }
    }
    if (conn.close_after_send && conn.outbox.empty()) {
      FinishClose(conn);
      return false;
    }
    const size_t pending = conn.outbox.size() - conn.outbox_sent;
    const bool reading = pending < kMaxOutboxBytes && !conn.close_after_send;
    const uint32_t wanted = (reading ? uint32_t{EPOLLIN} : 0u) | (pending > 0 ? uint32_t{EPOLLOUT} : 0u);
    if (client.interest != wanted) {
      client.interest = wanted;
      Watch(EPOLL_CTL_MOD, conn.fd.get(), wanted);
    }
    return true;
  }

  void Close(int fd) {
    Watch(EPOLL_CTL_DEL, fd, 0);
    connections_.erase(fd);
  }

  const int workers_;
  UniqueFd epoll_;
  std::vector<char> chunk_;
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
