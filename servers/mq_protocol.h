// mq_protocol.h — how the `multiprocessing` server and its clients talk over
// Boost.Interprocess shared-memory message queues (design §4), in one place so
// the two sides cannot disagree about a name or a control message.
//
// Queues for the endpoint ipc://NAME (each is /dev/shm/<queue name> on Linux):
//   NAME.ctl          control queue, created by the server. A client sends
//                     "connect TOKEN CLIENT_PID"; TOKEN is unique per client
//                     connection ("<pid>-<n>", characters [A-Za-z0-9_-], no dot).
//   NAME.TOKEN.req    per-connection request queue  } created by the server on
//   NAME.TOKEN.rep    per-connection reply queue    } "connect", removed by it
//                     when the connection ends or the server exits.
// Data messages are the raw N bytes at priority kDataPriority. Control
// messages travel on the same queues at kControlPriority (a receiver sees the
// priority, so no data byte is ever reserved):
//   on .rep: "hello SERVER_PID MAX_MESSAGE_BYTES" first, "closed" when the server stops;
//   on .req: "bye" when the client leaves, "stop" when the server wakes its own thread.
// Because tokens contain no dot, the entries belonging to NAME are exactly
// NAME.ctl and NAME.<token>.{req,rep}; ipc://a never claims ipc://a.b's queues.
// Each side checks the other's pid while it waits (kill(pid, 0)), so a peer
// killed mid-run costs a connection, never a wedged process. One case no
// timeout reaches: a peer killed while it held a queue's process-shared mutex
// (Boost locks it with no timeout), which leaves the other side blocked inside
// the call for good. The server abandons such a connection thread
// (mq_server.cc); a client process ends itself, after one line on stderr, when
// one of its calls has been stuck for kWedgedAfterMs and the server is dead.
//
//   MqClient client("demo", /*reply_timeout_ms=*/10000);  // server at ipc://demo
//   std::string reply;
//   client.Exchange("ping", reply);
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/interprocess/ipc/message_queue.hpp>


namespace gillab::servers {

constexpr unsigned kDataPriority = 0;
constexpr unsigned kControlPriority = 1;
constexpr size_t kControlMessageBytes = 256;
constexpr size_t kControlQueueCapacity = 16;
// One request in flight per connection, plus room for one control message.
constexpr size_t kConnectionQueueCapacity = 2;
// How long a waiter sleeps before checking its peer is alive and the stop flag.
// It bounds shutdown and dead-peer detection latency, not request latency: a
// message that arrives wakes the waiter at once.
constexpr int kMqPollIntervalMs = 200;
// A queue call that has not returned after this long, with the peer dead, is
// stuck for good: far above what a timed call takes, even on a loaded machine.
constexpr int kWedgedAfterMs = 3000;

// "ipc://NAME" -> "NAME"; throws UsageError unless NAME is 1..200 characters
// of [A-Za-z0-9_.-] (no slash: it names a shared-memory object, not a path).
std::string ParseIpcName(std::string_view endpoint);
bool IsValidMqToken(std::string_view token);

std::string ControlQueueName(std::string_view name);
std::string RequestQueueName(std::string_view name, std::string_view token);
std::string ReplyQueueName(std::string_view name, std::string_view token);

// The queue names under /dev/shm that belong to NAME (see above).
std::vector<std::string> ListMqQueues(std::string_view name);
// Removes every queue of NAME; returns how many were removed.
int RemoveMqQueues(std::string_view name);
// Milliseconds on the steady clock: when a queue call began, for the wedge checks.
int64_t SteadyNowMs();
// True if a process with this pid exists (EPERM counts as alive).
bool ProcessAlive(pid_t pid);
// True while a server serves NAME: it holds an flock on NAME.ctl from Bind to
// exit, which the kernel drops when it dies, even by kill -9. Queues of a NAME
// with no running server are stale.
bool MqServerRunning(std::string_view name);

// One client connection to a multiprocessing server. Not thread-safe: one per
// client thread. Every failure (no server, server gone, timeout, message above
// the server's limit) throws std::runtime_error with a one-line message.
class MqClient {
 public:
  MqClient(std::string_view name, int reply_timeout_ms);
  ~MqClient();  // says "bye" so the server frees the connection at once
  MqClient(const MqClient&) = delete;
  MqClient& operator=(const MqClient&) = delete;

  void Exchange(std::string_view request, std::string& reply);
  uint64_t max_message_bytes() const { return max_message_bytes_; }
  const std::string& token() const { return token_; }

 private:
  using Queue = boost::interprocess::message_queue;
  // Receives one message from rep_ into reply; returns its priority.
  unsigned Receive(std::string& reply, int timeout_ms);

  std::string name_;
  std::string token_;
  int reply_timeout_ms_;
  pid_t server_pid_ = 0;
  uint64_t max_message_bytes_ = 0;
  std::unique_ptr<Queue> req_;
  std::unique_ptr<Queue> rep_;
  std::unique_ptr<char[]> buffer_;
  size_t buffer_bytes_ = 0;
  // Milliseconds (steady clock) when the current queue call began, 0 outside
  // one; read by the process's stuck-call guard (mq_protocol.cc).
  std::atomic<int64_t> call_started_ms_{0};
  friend class MqCallGuard;
};

}  // namespace gillab::servers
