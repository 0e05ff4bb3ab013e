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
// Batches. Each epoll round, the main thread reads every readable socket
// (Feed, lock released), then hands the connections that got bytes to the
// workers as one batch — a connection's whole StreamProtocol::Process (its
// complete requests, in order; for http with --http-parser vm the parse as
// well) runs on one worker — and waits for the batch to finish while HOLDING
// the lock, outside any blocking section. That is the guarantee that nobody
// changes the main heap while a context reads it: the main thread runs no VM
// code during a batch, and every other VM thread of the engine (CPU threads)
// needs the lock the main thread holds. (Under policy `none` the lock
// excludes nobody: the toy engine then refuses workers when it has CPU
// threads.) Between batches the main thread sends the replies, accepts and
// reads; whatever ran under the lock meanwhile is seen by the next batch
// (the condition variable orders it).
//
// Failures. A handler that fails (a VmError: a refused write, a context past
// --context-max-bytes, a stop) gets the protocol's error reply and one
// stderr line, as on every server; the connection and the server go on. A
// handler that runs longer than the stall threshold (EngineOptions::
// stall_threshold_ms, 1 s) is reported on stderr and stopped at its next
// check point: its request fails, nothing else does.
#include <sys/epoll.h>
#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <exception>
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
  StreamProtocol::Next next = StreamProtocol::Next::kKeepOpen;  // the batch's verdict
};

// The worker pool: RunBatch hands every client of a batch to some worker and
// returns once all are done.
class WorkerPool {
 public:
  WorkerPool(Engine& engine, int workers, int64_t context_max_bytes, int64_t stall_ms) : stall_ms_(stall_ms) {
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

  void RunBatch(const std::vector<Client*>& batch) {
    if (batch.empty()) return;
    std::unique_lock lock(mu_);
    batch_ = &batch;
    next_ = 0;
    done_ = 0;
    ++generation_;
    work_cv_.notify_all();
    while (done_ < batch.size()) {
      if (stall_ms_ <= 0) {
        done_cv_.wait(lock);
        continue;
      }
      if (done_cv_.wait_for(lock, std::chrono::milliseconds(std::max<int64_t>(stall_ms_ / 4, 1))) ==
          std::cv_status::timeout) {
        for (auto& c : contexts_) {
          const int64_t ran_ms = c->StopIfRunningLongerThan(stall_ms_);
          if (ran_ms > 0) {
            fmt::print(stderr,
                       "gillab serve: stall: a handler ran {} ms in a parallel context (threshold {} ms); stopping it\n",
                       ran_ms, stall_ms_);
            std::fflush(stderr);
          }
        }
      }
    }
    batch_ = nullptr;
  }

 private:
  void Loop(ContextWorker& worker) {
    uint64_t seen = 0;
    std::unique_lock lock(mu_);
    for (;;) {
      work_cv_.wait(lock, [&] { return quit_ || (generation_ != seen && batch_ != nullptr); });
      if (quit_) return;
      seen = generation_;
      while (batch_ != nullptr && next_ < batch_->size()) {
        Client& client = *(*batch_)[next_++];
        lock.unlock();
        StreamConnection& conn = client.conn;
        try {
          client.next = conn.protocol->Process(worker, conn.outbox, conn.peer);
        } catch (const std::exception& e) {
          ReportPeer(conn.peer, fmt::format("{}; closing connection", e.what()));
          client.next = StreamProtocol::Next::kCloseNow;
        }
        lock.lock();
        if (++done_ == batch_->size()) done_cv_.notify_one();
      }
    }
  }

  const int64_t stall_ms_;
  std::vector<std::unique_ptr<ContextWorker>> contexts_;
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable work_cv_;
  std::condition_variable done_cv_;
  const std::vector<Client*>* batch_ = nullptr;
  size_t next_ = 0;
  size_t done_ = 0;
  uint64_t generation_ = 0;
  bool quit_ = false;
};

class ParallelServer final : public StreamServer {
 public:
  ParallelServer(const ServerOptions& options, Engine& engine)
      : StreamServer(options, engine), options_(options) {}

  // The workers start here, so that an engine without parallel contexts (or
  // policy `none` with CPU threads) is refused before `listening` is printed.
  void Bind() override {
    StreamServer::Bind();
    if (!pool_) pool_ = std::make_unique<WorkerPool>(engine(), options_.workers, options_.context_max_bytes,
                                                     options_.context_stall_ms);
  }

  void Run() override {
    RequireBound();
    epoll_.reset(epoll_create1(EPOLL_CLOEXEC));
    if (!epoll_) throw std::system_error(errno, std::generic_category(), "epoll_create1");
    Watch(EPOLL_CTL_ADD, listen_fd(), EPOLLIN);
    Watch(EPOLL_CTL_ADD, stop_fd(), EPOLLIN);
    chunk_.resize(kRecvChunkBytes);
    WorkerPool& pool = *pool_;
    auto io = engine().AttachIo("io");  // holds the lock from here on, except in blocking sections
    std::vector<epoll_event> events(kMaxEvents);
    std::vector<Client*> batch;
    std::vector<int> serviced;
    while (!stopping()) {
      int ready;
      {
        BlockingSection released(*io);
        do {
          ready = epoll_wait(epoll_.get(), events.data(), kMaxEvents, -1);
        } while (ready < 0 && errno == EINTR);
      }
      if (ready < 0) throw std::system_error(errno, std::generic_category(), "epoll_wait");
      batch.clear();
      serviced.clear();
      for (int i = 0; i < ready; ++i) {
        const int fd = events[i].data.fd;
        if (fd == stop_fd()) continue;
        if (fd == listen_fd()) {
          AcceptAll(*io);
          continue;
        }
        auto it = connections_.find(fd);
        if (it == connections_.end()) continue;
        Client& client = *it->second;
        if (!Read(*io, client, events[i].events)) {
          Close(fd);
          continue;
        }
        if (client.next == StreamProtocol::Next::kKeepOpen && received_) batch.push_back(&client);
        serviced.push_back(fd);
      }
      // The batch: every handler call in a parallel context, lock held, no VM code here.
      pool.RunBatch(batch);
      for (int fd : serviced) {
        auto it = connections_.find(fd);
        if (it == connections_.end()) continue;
        if (!Finish(*io, *it->second)) Close(fd);
      }
    }
    connections_.clear();
  }

 private:
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

  // The read half of a readiness event; sets received_. False: close now.
  bool Read(IoThread& io, Client& client, uint32_t ready) {
    StreamConnection& conn = client.conn;
    received_ = false;
    client.next = StreamProtocol::Next::kKeepOpen;
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
    received_ = received > 0;
    return true;
  }

  // After the batch: the protocol's verdict, then the write half. False: close.
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
    UpdateInterest(client);
    return true;
  }

  void UpdateInterest(Client& client) {
    const size_t pending = client.conn.outbox.size() - client.conn.outbox_sent;
    const bool reading = pending < kMaxOutboxBytes && !client.conn.close_after_send;
    const uint32_t wanted = (reading ? uint32_t{EPOLLIN} : 0u) | (pending > 0 ? uint32_t{EPOLLOUT} : 0u);
    if (client.interest == wanted) return;
    client.interest = wanted;
    Watch(EPOLL_CTL_MOD, client.conn.fd.get(), wanted);
  }

  void Close(int fd) {
    Watch(EPOLL_CTL_DEL, fd, 0);
    connections_.erase(fd);
  }

  ServerOptions options_;
  std::unique_ptr<WorkerPool> pool_;  // Bind() starts it; the server's end joins it
  UniqueFd epoll_;
  std::vector<char> chunk_;
  bool received_ = false;
  std::unordered_map<int, std::unique_ptr<Client>> connections_;
};

}  // namespace

std::unique_ptr<Server> MakeParallelServer(const ServerOptions& options, Engine& engine) {
  if (options.workers < 1) throw UsageError(fmt::format("--workers must be at least 1 (got {})", options.workers));
  return std::make_unique<ParallelServer>(options, engine);
}

}  // namespace gillab::servers
