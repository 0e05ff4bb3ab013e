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
//
// A client killed with SIGKILL can leave its queues' process-shared mutex
// locked or a dead waiter inside a process-shared condition variable (glibc's
// pthread_cond_signal then waits forever for it). Boost's queue calls lock that
// mutex without a timeout, so a server thread can block for good inside a call
// on a dead client's queue, and no timeout can free it. The server therefore
// never touches a dead client's queues from Stop(), and a connection thread that
// has been inside one call for kWedgedAfterMs while its client is dead is
// abandoned: one stderr line, its queue names unlinked, the thread detached and
// its memory kept until the process exits. Every other client goes on being served.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>
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

// Each connection costs two queues and a thread; a flood of forged "connect"
// messages (any process can write NAME.ctl) must not grow them without bound.
constexpr size_t kMaxConnections = 256;

// A control message as one printable line: other bytes as \xNN, at most 80 shown.
std::string Printable(std::string_view message) {
  std::string out;
  for (unsigned char c : message.substr(0, 80)) {
    if (c >= 0x20 && c < 0x7f && c != '\\') out += static_cast<char>(c);
    else out += fmt::format("\\x{:02x}", c);
  }
  if (message.size() > 80) out += fmt::format("... ({} bytes)", message.size());
  return out;
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
    if (MqServerRunning(name_)) throw UsageError(fmt::format("ipc://{} is in use by a running server", name_));
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
    lock_fd_ = shm_open(("/" + control_name).c_str(), O_RDWR, 0);  // the flock MqServerRunning tests
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
        got = control_->timed_receive(message, sizeof message, received, priority, Deadline(kMqPollIntervalMs));
      }
      if (stopping_) break;
      ReapFinished(/*wait=*/false);
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
    for (auto& connection : connections_)
      if (ProcessAlive(connection->client_pid)) TrySendControl(connection->req.get(), "stop");
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
    // SteadyNowMs() when the thread's current queue call began, 0 outside one,
    // kAbandoned once the server gave up on the thread inside one.
    std::atomic<int64_t> call_started_ms{0};
  };
  static constexpr int64_t kAbandoned = -1;

  // One queue call of a connection thread, with the lock released around it
  // (as a BlockingSection) and timed for the wedge check. Returns false when
  // the connection was abandoned while the call was stuck: the thread must
  // then return at once, touching neither the server nor the engine.
  template <class Call>
  static bool QueueCall(Connection& c, IoThread& io, Call&& call) {
    io.BeginBlocking();
    c.call_started_ms = SteadyNowMs();
    std::exception_ptr error;
    try {
      call();
    } catch (...) {
      error = std::current_exception();
    }
    if (c.call_started_ms.exchange(0) == kAbandoned) return false;
    io.EndBlocking();
    if (error) std::rethrow_exception(error);
    return true;
  }

  // Claims a connection whose thread is stuck in a call on a dead client's queue.
  static bool ClaimWedged(Connection& c) {
    int64_t started = c.call_started_ms;
    return started > 0 && SteadyNowMs() - started > kWedgedAfterMs && !ProcessAlive(c.client_pid) &&
           c.call_started_ms.compare_exchange_strong(started, kAbandoned);
  }

  void Accept(std::string_view message) {
    char token_buffer[80] = {};
    long long pid = 0;
    const std::string text(message);
    if (std::sscanf(text.c_str(), "connect %64s %lld", token_buffer, &pid) != 2 ||
        !IsValidMqToken(token_buffer) || pid <= 0) {
      fmt::print(stderr, "multiprocessing server: malformed control message '{}' on {}; ignored\n", Printable(text),
                 ControlQueueName(name_));
      return;
    }
    if (!ProcessAlive(static_cast<pid_t>(pid))) {
      fmt::print(stderr, "multiprocessing server: connect {} from pid {}, which does not exist; ignored\n",
                 token_buffer, pid);
      return;
    }
    {
      std::lock_guard lock(mutex_);
      if (connections_.size() >= kMaxConnections) {
        fmt::print(stderr, "multiprocessing server: refused connection {} of client pid {}: {} connections open\n",
                   token_buffer, pid, kMaxConnections);
        return;
      }
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
    if (!ServeRequests(c, *io)) {
      (void)io.release();  // abandoned (see ClaimWedged): the engine may be gone by now
      return;
    }
    io.reset();
    Queue::remove(RequestQueueName(name_, c.token).c_str());
    Queue::remove(ReplyQueueName(name_, c.token).c_str());
    c.done = true;
  }

  // Until the client says bye or dies, or Stop(); false if abandoned meanwhile.
  bool ServeRequests(Connection& c, IoThread& io) {
    const size_t capacity = c.req->get_max_msg_size();
    std::unique_ptr<char[]> buffer(new char[capacity]);  // untouched pages cost nothing
    const std::string peer = fmt::format("client pid {} (connection {})", c.client_pid, c.token);
    for (;;) {
      size_t received = 0;
      unsigned priority = 0;
      bool got = false;
      if (!QueueCall(c, io, [&] {
            got = c.req->timed_receive(buffer.get(), capacity, received, priority, Deadline(kMqPollIntervalMs));
          }))
        return false;
      if (stopping_) break;
      if (!got) {
        if (ProcessAlive(c.client_pid)) continue;
        fmt::print(stderr, "multiprocessing server: {} died without closing; connection closed\n", peer);
        break;
      }
      if (priority == kControlPriority) break;  // "bye" (or "stop")
      std::string reply;
      try {
        reply = io.Handle(std::string_view(buffer.get(), received));
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
        if (!QueueCall(c, io, [&] {
              sent = c.rep->timed_send(reply.data(), reply.size(), kDataPriority, Deadline(kMqPollIntervalMs));
            }))
          return false;
        if (!sent && (stopping_ || !ProcessAlive(c.client_pid))) break;
      }
      if (!sent) break;
    }
    if (stopping_ && ProcessAlive(c.client_pid)) return QueueCall(c, io, [&] { TrySendControl(c.rep.get(), "closed"); });
    return true;
  }

  // Joins the connection threads that have finished and abandons the wedged
  // ones; with `wait`, until every connection is one or the other.
  void ReapFinished(bool wait) {
    for (;;) {
      std::list<std::unique_ptr<Connection>> finished;
      bool pending = false;
      {
        std::lock_guard lock(mutex_);
        for (auto it = connections_.begin(); it != connections_.end();) {
          Connection& c = **it;
          if (c.done) {
            finished.push_back(std::move(*it));
            it = connections_.erase(it);
          } else if (ClaimWedged(c)) {
            Abandon(std::move(*it));
            it = connections_.erase(it);
          } else {
            pending = true;
            ++it;
          }
        }
      }
      for (auto& connection : finished) connection->thread.join();
      if (!wait || !pending) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

  void JoinConnections() { ReapFinished(/*wait=*/true); }

  // The thread is stuck in a queue call that no timeout can end (see the file
  // comment): unlink the queue names, let the thread go, keep what it uses.
  void Abandon(std::unique_ptr<Connection> connection) {
    Connection* c = connection.release();  // the stuck thread still reads it
    fmt::print(stderr,
               "multiprocessing server: client pid {} died inside a queue operation on connection {}; "
               "its I/O thread is stuck in Boost.Interprocess and is abandoned, other clients are served\n",
               c->client_pid, c->token);
    Queue::remove(RequestQueueName(name_, c->token).c_str());
    Queue::remove(ReplyQueueName(name_, c->token).c_str());
    c->thread.detach();
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
