// mq_server.cc — the `multiprocessing` server: Boost.Interprocess message
// queues between separate client and server processes (protocol and queue
// names in mq_protocol.h).
//
// Threads: the Run() thread accepts connections on NAME.ctl; each connection
// gets its own I/O thread that receives on NAME.TOKEN.req and answers on
// NAME.TOKEN.rep (a message queue cannot be waited on together with another,
// so one thread per connection is the only way to serve several at once).
// Every one of them is an engine I/O thread: it holds the lock except inside
// each queue receive and send, like a Python server around a blocking
// Queue.get/put.
//
// Shutdown and dead peers: waits are timed (kMqPollIntervalMs) so a thread can
// notice Stop() or a client that was killed without saying "bye"; the timeout
// bounds shutdown latency only, since a message wakes a waiter at once. Stop()
// also posts a control message to every queue a server thread waits on, so it
// is normally immediate. The server removes its queues when a connection ends
// and all of them on exit; on start it removes stale queues of its name left
// by a killed run, unless a live server still holds the flock on NAME.ctl.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <list>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>

#include <boost/date_time/posix_time/posix_time_types.hpp>
#include <fmt/core.h>

#include "gil/error.h"
#include "servers/message_servers.h"
#include "servers/mq_protocol.h"

namespace gillab::servers {
namespace {
namespace bip = boost::interprocess;
using Queue = bip::message_queue;

boost::posix_time::ptime Deadline(int timeout_ms) {
  return boost::posix_time::microsec_clock::universal_time() +
         boost::posix_time::milliseconds(timeout_ms);
}

void TrySendControl(Queue* queue, std::string_view message) {
  if (queue == nullptr) return;
  try {
    queue->try_send(message.data(), message.size(), kControlPriority);
  } catch (const bip::interprocess_exception&) {
  }
}

class MqServer final : public Server {
 public:
  MqServer(const ServerOptions& options, Engine& engine) : options_(options), engine_(engine) {}

  ~MqServer() override {
    Stop();
    JoinConnections();
    RemoveAll();
  }

  void Bind() override {
    name_ = ParseIpcName(options_.endpoint);
    const std::string control_name = ControlQueueName(name_);
    // A live server holds an flock on its control queue; the kernel drops it
    // when that process dies, even by kill -9, so a lockable queue is stale.
    const std::string shm_path = "/" + control_name;
    if (int fd = shm_open(shm_path.c_str(), O_RDWR, 0); fd >= 0) {
      const bool live = flock(fd, LOCK_EX | LOCK_NB) != 0;
      close(fd);
      if (live) throw UsageError(fmt::format("ipc://{} is in use by a running server", name_));
    }
    if (const int stale = RemoveMqQueues(name_); stale > 0) {
      fmt::print(stderr, "multiprocessing server: removed {} stale queue(s) of ipc://{} left by an earlier run\n",
                 stale, name_);
    }
    try {
      control_ = std::make_unique<Queue>(bip::create_only, control_name.c_str(), kControlQueueCapacity,
                                         kControlMessageBytes);
    } catch (const bip::interprocess_exception& e) {
      throw std::runtime_error(fmt::format("cannot create queue {}: {}", control_name, e.what()));
    }
    owns_queues_ = true;
    lock_fd_ = shm_open(shm_path.c_str(), O_RDWR, 0);
    if (lock_fd_ >= 0) flock(lock_fd_, LOCK_EX | LOCK_NB);
  }

  std::string endpoint() const override { return "ipc://" + name_; }

  void Run() override {
    if (!control_) throw std::logic_error("MqServer::Run before Bind");
    auto io = engine_.AttachIo("io");
    char message[kControlMessageBytes];
    while (!stopping_) {
      size_t received = 0;
      unsigned priority = 0;
      bool got = false;
      {
        BlockingSection blocking(*io);
        // Stop() posts "stop" here; the timeout is only a backstop.
        got = control_->timed_receive(message, sizeof message, received, priority, Deadline(1000));
      }
      if (stopping_) break;
      ReapFinished();
      if (got) Accept(std::string_view(message, received));
    }
    io.reset();
    JoinConnections();
    RemoveAll();
  }

  void Stop() override {
    if (stopping_.exchange(true)) return;
    TrySendControl(control_.get(), "stop");
    std::lock_guard lock(mutex_);
    for (auto& connection : connections_) TrySendControl(connection->req.get(), "stop");
  }

 private:
  struct Connection {
    std::string token;
    pid_t client_pid = 0;
    int number = 0;
    std::unique_ptr<Queue> req;
    std::unique_ptr<Queue> rep;
    std::thread thread;
    std::atomic<bool> done{false};
  };

  void Accept(std::string_view message) {
    char token_buffer[80] = {};
    long long pid = 0;
    const std::string text(message);
    if (std::sscanf(text.c_str(), "connect %64s %lld", token_buffer, &pid) != 2 ||
        !IsValidMqToken(token_buffer) || pid <= 0) {
      fmt::print(stderr, "multiprocessing server: malformed control message '{}' on {}; ignored\n", text,
                 ControlQueueName(name_));
      return;
    }
    auto connection = std::make_unique<Connection>();
    connection->token = token_buffer;
    connection->client_pid = static_cast<pid_t>(pid);
    connection->number = ++connections_accepted_;
    const uint64_t max_bytes = std::max<uint64_t>(options_.max_message_bytes, 1);
    const std::string req_name = RequestQueueName(name_, connection->token);
    const std::string rep_name = ReplyQueueName(name_, connection->token);
    try {
      // .req first: a client takes an openable .rep to mean both exist.
      connection->req = std::make_unique<Queue>(bip::create_only, req_name.c_str(), kConnectionQueueCapacity, max_bytes);
      connection->rep = std::make_unique<Queue>(bip::create_only, rep_name.c_str(), kConnectionQueueCapacity, max_bytes);
    } catch (const bip::interprocess_exception& e) {
      fmt::print(stderr, "multiprocessing server: cannot open connection {} for client pid {}: {}\n",
                 connection->token, pid, e.what());
      if (connection->req) Queue::remove(req_name.c_str());
      return;
    }
    const std::string hello = fmt::format("hello {} {}", getpid(), options_.max_message_bytes);
    TrySendControl(connection->rep.get(), hello);
    Connection& ref = *connection;
    {
      std::lock_guard lock(mutex_);
      connections_.push_back(std::move(connection));
    }
    ref.thread = std::thread([this, &ref] { Serve(ref); });
  }

  // One connection's I/O thread.
  void Serve(Connection& c) {
    auto io = engine_.AttachIo(fmt::format("io-mq-{}", c.number));
    const size_t capacity = c.req->get_max_msg_size();
    std::unique_ptr<char[]> buffer(new char[capacity]);  // untouched pages cost nothing
    const std::string peer = fmt::format("client pid {} (connection {})", c.client_pid, c.token);
    for (;;) {
      size_t received = 0;
      unsigned priority = 0;
      bool got = false;
      {
        BlockingSection blocking(*io);
        got = c.req->timed_receive(buffer.get(), capacity, received, priority, Deadline(kMqPollIntervalMs));
      }
      if (stopping_) break;
      if (!got) {
        if (ProcessAlive(c.client_pid)) continue;
        fmt::print(stderr, "multiprocessing server: {} died without closing; connection closed\n", peer);
        break;
      }
      if (priority == kControlPriority) break;  // "bye" (or "stop")
      std::string reply;
      try {
        reply = io->Handle(std::string_view(buffer.get(), received));
      } catch (const std::runtime_error& e) {
        reply = fmt::format("error: {}", e.what());
      }
      if (reply.size() > options_.max_message_bytes) {
        fmt::print(stderr, "multiprocessing server: reply of {} bytes to {} exceeds max_message_bytes {}\n",
                   reply.size(), peer, options_.max_message_bytes);
        reply = fmt::format("error: reply of {} bytes exceeds max_message_bytes", reply.size());
        reply.resize(std::min<size_t>(reply.size(), options_.max_message_bytes));
      }
      bool sent = false;
      while (!sent) {
        {
          BlockingSection blocking(*io);
          sent = c.rep->timed_send(reply.data(), reply.size(), kDataPriority, Deadline(kMqPollIntervalMs));
        }
        if (!sent && (stopping_ || !ProcessAlive(c.client_pid))) break;
      }
      if (!sent) break;
    }
    if (stopping_) TrySendControl(c.rep.get(), "closed");
    io.reset();
    Queue::remove(RequestQueueName(name_, c.token).c_str());
    Queue::remove(ReplyQueueName(name_, c.token).c_str());
    c.done = true;
  }

  void ReapFinished() {
    std::list<std::unique_ptr<Connection>> finished;
    {
      std::lock_guard lock(mutex_);
      for (auto it = connections_.begin(); it != connections_.end();) {
        if ((*it)->done) {
          finished.push_back(std::move(*it));
          it = connections_.erase(it);
        } else {
          ++it;
        }
      }
    }
    for (auto& connection : finished) connection->thread.join();
  }

  void JoinConnections() {
    std::list<std::unique_ptr<Connection>> all;
    {
      std::lock_guard lock(mutex_);
      all.swap(connections_);
    }
    for (auto& connection : all) {
      if (connection->thread.joinable()) connection->thread.join();
    }
  }

  void RemoveAll() {
    if (!owns_queues_) return;  // a refused Bind must not touch the live server's queues
    control_.reset();
    if (lock_fd_ >= 0) {
      close(lock_fd_);
      lock_fd_ = -1;
    }
    RemoveMqQueues(name_);
  }

  ServerOptions options_;
  Engine& engine_;
  std::string name_;
  std::unique_ptr<Queue> control_;
  int lock_fd_ = -1;
  bool owns_queues_ = false;
  std::atomic<bool> stopping_{false};
  int connections_accepted_ = 0;
  std::mutex mutex_;  // guards connections_ (Stop() walks it from another thread)
  std::list<std::unique_ptr<Connection>> connections_;
};

}  // namespace

std::unique_ptr<Server> MakeMqServer(const ServerOptions& options, Engine& engine) {
  return std::make_unique<MqServer>(options, engine);
}

}  // namespace gillab::servers
