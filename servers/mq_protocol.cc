// mq_protocol.cc — queue names, cleanup and the client side of the
// multiprocessing transport (see mq_protocol.h).
#include "servers/mq_protocol.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>

#include <boost/date_time/posix_time/posix_time_types.hpp>
#include <fmt/core.h>

#include "gil/error.h"

namespace gillab::servers {
namespace bip = boost::interprocess;

namespace {

constexpr std::string_view kIpcScheme = "ipc://";
constexpr size_t kMaxNameChars = 200;
constexpr int kConnectTimeoutMs = 5000;

bool IsNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

boost::posix_time::ptime Deadline(int timeout_ms) {
  return boost::posix_time::microsec_clock::universal_time() +
         boost::posix_time::milliseconds(timeout_ms);
}

std::atomic<uint64_t> next_token{0};


}  // namespace

std::string ParseIpcName(std::string_view endpoint) {
  if (!endpoint.starts_with(kIpcScheme)) {
    throw UsageError(fmt::format("bad endpoint '{}': expected ipc://NAME", endpoint));
  }
  std::string_view name = endpoint.substr(kIpcScheme.size());
  bool ok = !name.empty() && name.size() <= kMaxNameChars && name.front() != '.';
  for (char c : name) ok = ok && (IsNameChar(c) || c == '.');
  if (!ok) {
    throw UsageError(fmt::format(
        "bad endpoint '{}': NAME must be 1-{} characters of [A-Za-z0-9_.-], not starting with '.'",
        endpoint, kMaxNameChars));
  }
  return std::string(name);
}

bool IsValidMqToken(std::string_view token) {
  if (token.empty() || token.size() > 64) return false;
  for (char c : token) {
    if (!IsNameChar(c)) return false;
  }
  return true;
}

std::string ControlQueueName(std::string_view name) { return fmt::format("{}.ctl", name); }
std::string RequestQueueName(std::string_view name, std::string_view token) {
  return fmt::format("{}.{}.req", name, token);
}
std::string ReplyQueueName(std::string_view name, std::string_view token) {
  return fmt::format("{}.{}.rep", name, token);
}

std::vector<std::string> ListMqQueues(std::string_view name) {
  std::vector<std::string> found;
  DIR* dir = opendir("/dev/shm");
  if (dir == nullptr) return found;
  const std::string control = ControlQueueName(name);
  const std::string prefix = fmt::format("{}.", name);
  while (const dirent* entry = readdir(dir)) {
    std::string_view entry_name = entry->d_name;
    if (entry_name == control) {
      found.emplace_back(entry_name);
      continue;
    }
    if (!entry_name.starts_with(prefix)) continue;
    std::string_view rest = entry_name.substr(prefix.size());
    if (!rest.ends_with(".req") && !rest.ends_with(".rep")) continue;
    if (IsValidMqToken(rest.substr(0, rest.size() - 4))) found.emplace_back(entry_name);
  }
  closedir(dir);
  return found;
}

int RemoveMqQueues(std::string_view name) {
  int removed = 0;
  for (const std::string& queue : ListMqQueues(name)) {
    if (bip::message_queue::remove(queue.c_str())) ++removed;
  }
  return removed;
}

int64_t SteadyNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

bool ProcessAlive(pid_t pid) { return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM); }

bool MqServerRunning(std::string_view name) {
  const std::string shm_path = "/" + ControlQueueName(name);
  const int fd = shm_open(shm_path.c_str(), O_RDWR, 0);
  if (fd < 0) return false;
  const bool running = flock(fd, LOCK_EX | LOCK_NB) != 0;  // our probe lock goes with the close
  close(fd);
  return running;
}

// The process's watch over its clients' queue calls (see mq_protocol.h): a
// thread, started with the first client, that ends the process when a call has
// been stuck for kWedgedAfterMs on a queue whose server is dead. A stuck
// thread cannot be freed, and a load client or test hanging forever is worse.
class MqCallGuard {
 public:
  static MqCallGuard& Get() {
    static auto* guard = new MqCallGuard;  // never destroyed: its thread outlives main
    return *guard;
  }
  void Add(MqClient* client) {
    std::lock_guard lock(mutex_);
    clients_.insert(client);
  }
  void Remove(MqClient* client) {
    std::lock_guard lock(mutex_);
    clients_.erase(client);
  }
  // Brackets one queue call of `client`.
  struct Call {
    explicit Call(MqClient& c) : client(c) { client.call_started_ms_ = SteadyNowMs(); }
    ~Call() { client.call_started_ms_ = 0; }
    MqClient& client;
  };

 private:
  MqCallGuard() {
    std::thread([this] {
      for (;;) {
        std::this_thread::sleep_for(std::chrono::milliseconds(kMqPollIntervalMs));
        std::lock_guard lock(mutex_);
        for (const MqClient* c : clients_) {
          const int64_t started = c->call_started_ms_;
          if (started == 0 || SteadyNowMs() - started < kWedgedAfterMs || ProcessAlive(c->server_pid_)) continue;
          fmt::print(stderr,
                     "ipc://{}: the server (pid {}) died holding a queue this client is blocked on; "
                     "exiting, nothing can free the call\n",
                     c->name_, c->server_pid_);
          std::fflush(nullptr);
          std::_Exit(1);
        }
      }
    }).detach();
  }
  std::mutex mutex_;
  std::set<const MqClient*> clients_;
};

MqClient::MqClient(std::string_view name, int reply_timeout_ms)
    : name_(name), reply_timeout_ms_(reply_timeout_ms) {
  std::unique_ptr<Queue> control;
  try {
    control = std::make_unique<Queue>(bip::open_only, ControlQueueName(name_).c_str());
  } catch (const bip::interprocess_exception&) {
    throw std::runtime_error(
        fmt::format("no multiprocessing server at ipc://{} (queue {} not found)", name_,
                    ControlQueueName(name_)));
  }
  token_ = fmt::format("{}-{}", getpid(), next_token.fetch_add(1));
  const std::string hello = fmt::format("connect {} {}", token_, getpid());
  if (!control->timed_send(hello.data(), hello.size(), kControlPriority, Deadline(kConnectTimeoutMs))) {
    throw std::runtime_error(fmt::format("ipc://{}: control queue full, server not answering", name_));
  }
  // The server creates .req before .rep, and open_only waits until a queue is
  // initialised, so once .rep opens both are ready. Connection set-up only:
  // polling here costs nothing on the request path.
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::milliseconds(kConnectTimeoutMs);
  while (!rep_) {
    try {
      rep_ = std::make_unique<Queue>(bip::open_only, ReplyQueueName(name_, token_).c_str());
      req_ = std::make_unique<Queue>(bip::open_only, RequestQueueName(name_, token_).c_str());
    } catch (const bip::interprocess_exception&) {
      rep_.reset();
      if (std::chrono::steady_clock::now() > give_up) {
        throw std::runtime_error(
            fmt::format("ipc://{}: server did not open a connection within {} ms", name_, kConnectTimeoutMs));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  buffer_bytes_ = rep_->get_max_msg_size();
  buffer_.reset(new char[buffer_bytes_]);
  std::string message;
  if (Receive(message, kConnectTimeoutMs) != kControlPriority || !message.starts_with("hello ")) {
    throw std::runtime_error(fmt::format("ipc://{}: unexpected first message from the server", name_));
  }
  long long pid = 0;
  unsigned long long max_bytes = 0;
  if (std::sscanf(message.c_str(), "hello %lld %llu", &pid, &max_bytes) != 2) {
    throw std::runtime_error(fmt::format("ipc://{}: malformed hello '{}'", name_, message));
  }
  server_pid_ = static_cast<pid_t>(pid);
  max_message_bytes_ = max_bytes;
  MqCallGuard::Get().Add(this);
}

MqClient::~MqClient() {
  constexpr std::string_view kBye = "bye";
  try {
    MqCallGuard::Call call(*this);
    req_->try_send(kBye.data(), kBye.size(), kControlPriority);
  } catch (const bip::interprocess_exception&) {
  }
  MqCallGuard::Get().Remove(this);
}

unsigned MqClient::Receive(std::string& reply, int timeout_ms) {
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    size_t received = 0;
    unsigned priority = 0;
    bool got = false;
    {
      MqCallGuard::Call call(*this);
      got = rep_->timed_receive(buffer_.get(), buffer_bytes_, received, priority, Deadline(kMqPollIntervalMs));
    }
    if (got) {
      reply.assign(buffer_.get(), received);
      return priority;
    }
    if (server_pid_ != 0 && !ProcessAlive(server_pid_)) {
      throw std::runtime_error(fmt::format("ipc://{}: server (pid {}) is gone", name_, server_pid_));
    }
    if (std::chrono::steady_clock::now() > give_up) {
      throw std::runtime_error(fmt::format("ipc://{}: no reply within {} ms", name_, timeout_ms));
    }
  }
}

void MqClient::Exchange(std::string_view request, std::string& reply) {
  if (request.size() > max_message_bytes_) {
    throw std::runtime_error(fmt::format(
        "ipc://{}: a message of {} bytes exceeds the server's max_message_bytes {}", name_,
        request.size(), max_message_bytes_));
  }
  // The server drains .req as fast as it answers, so a full queue means it stalled or died.
  auto send = [&] {
    MqCallGuard::Call call(*this);
    return req_->timed_send(request.data(), request.size(), kDataPriority, Deadline(kMqPollIntervalMs));
  };
  while (!send()) {
    if (!ProcessAlive(server_pid_)) {
      throw std::runtime_error(fmt::format("ipc://{}: server (pid {}) is gone", name_, server_pid_));
    }
  }
  if (Receive(reply, reply_timeout_ms_) == kControlPriority) {
    throw std::runtime_error(fmt::format("ipc://{}: server closed the connection ({})", name_, reply));
  }
}

}  // namespace gillab::servers
