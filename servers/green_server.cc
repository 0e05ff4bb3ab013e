// green_server.cc — the `green` server kind (design §10): gevent's hub. One OS
// thread, epoll over non-blocking sockets plus a timer heap, and one
// coroutine per connection: each request's handler runs as a HandlerCall (on
// the toy engine a VM coroutine) that parks in blocking natives (sleep_us,
// backend_us) instead of blocking the thread; the hub waits for every parked
// call at once and resumes each when its wait is over. The handler program is
// the one the threaded server runs, where the same natives block a thread.
//
// The loop: run ready coroutines (their waits are over) for at most the
// switch interval, then poll — epoll_wait with the lock released
// (BlockingSection), timed to the next timer — then turn expired timers into
// ready coroutines and serve socket events as the nonblocking server does (one
// recv or send per event, each in its own BlockingSection). The hub holds the
// engine's lock while running VM code, so under newgil it meets CPU threads in
// the convoy as gevent's hub meets them under CPython's GIL. With
// --hub-release poll it keeps the lock across its non-blocking accept, recv
// and send and gives it up only around epoll_wait: one release per loop
// instead of two or three per request (the convoy's fix, design §10).
//
// A parked request stays in its protocol (stream_protocol.h, HandlerParked);
// the connection is not read until it has finished, and its replies leave in
// request order. Figures (Stats(), the `hub` object of serve's exit JSON):
// scheduling latency (ready -> running) histogram, resumes, parks, lock
// releases per request; "hub blocked for X ms by PROGRAM:LINE" on stderr when
// one resume runs longer than kBlockedReportMs without yielding (at most one
// line a second).
#include <sys/epoll.h>

#include <algorithm>
#include <cerrno>
#include <deque>
#include <memory>
#include <queue>
#include <system_error>
#include <unordered_map>
#include <vector>

#include <fmt/core.h>

#include "gil/clock.h"
#include "gil/histogram.h"
#include "servers/epoll_server.h"

namespace gillab::servers {
namespace {

constexpr int64_t kBlockedReportMs = 100;  // gevent's default max_blocking_time

struct Client : EpollClient {
  Client(UniqueFd fd, std::unique_ptr<StreamProtocol> protocol, std::string peer, uint64_t id)
      : EpollClient(std::move(fd), std::move(protocol), std::move(peer)), id(id) {}
  uint64_t id;  // unique per connection: timers and ready entries of a closed one are ignored
  // The request's coroutine while it is parked or finished but not yet replied.
  std::unique_ptr<HandlerCall> call;
  size_t call_handler = 0;
  bool call_finished = false;
  bool call_failed = false;
  std::string call_outcome;  // the reply, or the error
};

struct Timer {
  int64_t deadline_ns;
  int fd;
  uint64_t client_id;
  bool operator>(const Timer& o) const { return deadline_ns > o.deadline_ns; }
};

struct Ready {
  int fd;
  uint64_t client_id;
  int64_t ready_at_ns;
};

class GreenServer;

// What the protocols call on the hub: HandleWith starts the request's
// coroutine, or returns the outcome of the one that has just finished.
class HubIo final : public IoThread {
 public:
  HubIo(IoThread& inner, GreenServer& server) : inner_(inner), server_(server) {}
  void set_current(Client* c) { current_ = c; }
  std::string Handle(std::string_view request) override { return HandleWith(0, request); }
  std::string HandleWith(size_t id, std::string_view request) override;
  void BeginBlocking() override { inner_.BeginBlocking(); }
  void EndBlocking() override { inner_.EndBlocking(); }
  uint64_t blocking_sections() const override { return inner_.blocking_sections(); }
  IoThread& inner() { return inner_; }

 private:
  IoThread& inner_;
  GreenServer& server_;
  Client* current_ = nullptr;
};

class GreenServer final : public EpollServer {
 public:
  GreenServer(const ServerOptions& options, Engine& engine)
      : EpollServer(options, engine),
        slice_ns_(std::max<int64_t>(options.switch_interval_us, 1) * 1000),
        release_every_call_(options.hub_releases_every_call) {}

  void Run() override {
    RequireBound();
    OpenEpoll();
    auto io = engine().AttachIo("hub");
    HubIo hub(*io, *this);
    std::vector<epoll_event> events(kMaxEvents);
    while (!stopping()) {
      RunReady(hub);
      const int ready = Poll(*io, events);
      ExpireTimers();
      for (int i = 0; i < ready; ++i) {
        const int fd = events[i].data.fd;
        if (fd == stop_fd()) continue;  // the loop condition sees stopping()
        if (fd == listen_fd()) {
          if (const int error = AcceptAll(*io, release_every_call_); error != 0) BackOffAfterAcceptError(*io, error);
          continue;
        }
        auto it = connections_.find(fd);
        if (it == connections_.end()) continue;  // closed earlier in this batch
        if (!Service(hub, *it->second, events[i].events)) Close(fd);
      }
    }
    connections_.clear();  // parked coroutines are destroyed here, lock held, before io goes
    releases_ = io->blocking_sections();
  }

  nlohmann::json Stats() const override {
    const double requests = static_cast<double>(std::max<uint64_t>(requests_, 1));
    return {{"requests", requests_},
            {"resumes", resumes_},
            {"parks", parks_},
            {"max_parked", max_parked_},
            {"blocked_reports", blocked_reports_},
            {"lock_releases", releases_},
            {"lock_releases_per_request", static_cast<double>(releases_) / requests},
            {"sched_latency_ns",
             {{"count", sched_latency_ns_.count()},
              {"p50", sched_latency_ns_.Percentile(50)},
              {"p99", sched_latency_ns_.Percentile(99)},
              {"max", sched_latency_ns_.max()}}}};
  }

  // HubIo::HandleWith's first run of a new call; true when it has finished.
  bool Step(Client& c) {
    ++resumes_;
    const int64_t start_ns = gil::NowNs();
    HandlerCall::Step step;
    try {
      step = c.call->Resume();
    } catch (...) {
      ReportIfBlocked(c, start_ns);
      throw;
    }
    ReportIfBlocked(c, start_ns);
    if (step == HandlerCall::Step::kDone) return true;
    ++parks_;
    ++parked_;
    max_parked_ = std::max(max_parked_, parked_);
    timers_.push({gil::NowNs() + std::max<int64_t>(c.call->wait_us(), 0) * 1000, c.conn.fd.get(), c.id});
    return false;
  }
  void CountRequest() { ++requests_; }

 private:
  // Lock released: waits for socket events, at most until the next timer
  // (not at all while coroutines are ready).
  int Poll(IoThread& io, std::vector<epoll_event>& events) {
    timespec timeout{};
    const timespec* wait_for = &timeout;
    if (ready_.empty()) {
      if (timers_.empty()) {
        wait_for = nullptr;  // forever: a socket event or Stop()
      } else {
        const int64_t ns = std::max<int64_t>(timers_.top().deadline_ns - gil::NowNs(), 0);
        timeout = {static_cast<time_t>(ns / 1000000000), static_cast<long>(ns % 1000000000)};
      }
    }
    int ready;
    {
      BlockingSection released(io);
      do {
        ready = epoll_pwait2(epoll_fd(), events.data(), kMaxEvents, wait_for, nullptr);
        if (ready < 0 && errno == ENOSYS) {  // kernels before 5.11: millisecond timeouts, rounded up
          const int ms = wait_for == nullptr ? -1
                                             : static_cast<int>((wait_for->tv_sec * 1000000000 + wait_for->tv_nsec + 999999) / 1000000);
          ready = epoll_wait(epoll_fd(), events.data(), kMaxEvents, ms);
        }
      } while (ready < 0 && errno == EINTR);
    }
    if (ready < 0) throw std::system_error(errno, std::generic_category(), "epoll_wait");
    return ready;
  }

  void ExpireTimers() {
    const int64_t now_ns = gil::NowNs();
    while (!timers_.empty() && timers_.top().deadline_ns <= now_ns) {
      const Timer t = timers_.top();
      timers_.pop();
      ready_.push_back({t.fd, t.client_id, t.deadline_ns});
    }
  }

  // Runs ready coroutines, for at most the switch interval (at least one).
  void RunReady(HubIo& hub) {
    const int64_t start_ns = gil::NowNs();
    int64_t now_ns = start_ns;
    while (!ready_.empty() && (now_ns == start_ns || now_ns - start_ns < slice_ns_)) {
      const Ready r = ready_.front();
      ready_.pop_front();
      auto it = connections_.find(r.fd);
      if (it != connections_.end() && it->second->id == r.client_id && it->second->call) {
        --parked_;
        sched_latency_ns_.Record(std::max<int64_t>(now_ns - r.ready_at_ns, 0));
        if (!ResumeParked(hub, *it->second)) Close(r.fd);
      }
      now_ns = gil::NowNs();
    }
  }

  // A parked coroutine whose wait is over; false when the connection must close.
  bool ResumeParked(HubIo& hub, Client& c) {
    try {
      if (!Step(c)) return true;  // parked again
      c.call_outcome = c.call->TakeReply();
      c.call_failed = false;
    } catch (const std::exception& e) {
      c.call_outcome = e.what();
      c.call_failed = true;
    }
    c.call_finished = true;
    // The protocol asks for the same request again and gets the outcome; then
    // it goes on with the connection's further (pipelined) requests.
    if (!Process(hub, c)) return false;
    return Flush(hub.inner(), release_every_call_, c, c.call != nullptr);
  }

  // The protocol over what the connection has sent; false: close now.
  bool Process(HubIo& hub, Client& c) {
    hub.set_current(&c);
    try {
      const bool keep = ProcessRequests(hub, c.conn);
      hub.set_current(nullptr);
      return keep;
    } catch (const HandlerParked&) {
      hub.set_current(nullptr);
      return true;
    }
  }

  EpollClient& Adopt(UniqueFd fd, std::string peer) override {
    auto client = std::make_unique<Client>(std::move(fd), NewProtocol(), std::move(peer), ++next_client_id_);
    const int key = client->conn.fd.get();
    return *connections_.emplace(key, std::move(client)).first->second;
  }

  // One readiness event; false when the connection must close. While a
  // request is parked nothing is read and nothing closes the connection but a
  // hang-up (EPOLLHUP/EPOLLERR, always reported).
  bool Service(HubIo& hub, Client& c, uint32_t ready) {
    if (!c.call) {
      const Received received = Receive(hub.inner(), release_every_call_, c.conn, ready);
      if (received == Received::kClosed) return false;
      if (received == Received::kBytes && !Process(hub, c)) return false;
    } else if (ready & (EPOLLHUP | EPOLLERR)) {
      // The client went away while its request is parked: drop the coroutine.
      ReportClose(c.conn.peer, "client hung up while its request was parked");
      return false;
    }
    return Flush(hub.inner(), release_every_call_, c, c.call != nullptr);
  }

  void Close(int fd) {
    auto it = connections_.find(fd);
    if (it != connections_.end() && it->second->call && !it->second->call_finished) --parked_;
    Watch(EPOLL_CTL_DEL, fd, 0);
    connections_.erase(fd);  // closes the socket, destroys a parked coroutine
  }

  void ReportIfBlocked(const Client& c, int64_t start_ns) {
    const int64_t ran_ns = gil::NowNs() - start_ns;
    if (ran_ns < kBlockedReportMs * 1000000) return;
    ++blocked_reports_;
    if (start_ns - last_blocked_report_ns_ < 1000000000) return;
    last_blocked_report_ns_ = start_ns;
    fmt::print(stderr, "gillab serve: hub blocked for {:.1f} ms by {}\n", static_cast<double>(ran_ns) / 1e6,
               c.call ? c.call->where() : std::string("handler"));
    std::fflush(stderr);
  }

  int64_t slice_ns_;
  bool release_every_call_;  // Receive, Flush and AcceptAll release the lock (not with --hub-release poll)
  std::unordered_map<int, std::unique_ptr<Client>> connections_;  // by socket fd
  uint64_t next_client_id_ = 0;
  std::priority_queue<Timer, std::vector<Timer>, std::greater<>> timers_;
  std::deque<Ready> ready_;
  gil::Histogram sched_latency_ns_;
  uint64_t requests_ = 0, resumes_ = 0, parks_ = 0, blocked_reports_ = 0, releases_ = 0;
  int64_t parked_ = 0, max_parked_ = 0;
  int64_t last_blocked_report_ns_ = INT64_MIN / 2;
};

std::string HubIo::HandleWith(size_t id, std::string_view request) {
  Client& c = *current_;
  if (c.call_finished) {  // the protocol asks again for the request whose coroutine has finished
    c.call_finished = false;
    c.call.reset();
    if (id != c.call_handler) throw std::logic_error("green server: a protocol re-issued a different request");
    if (c.call_failed) throw std::runtime_error(c.call_outcome);
    server_.CountRequest();
    return std::move(c.call_outcome);
  }
  c.call_handler = id;
  c.call = inner_.StartCall(id, request);
  bool done;
  try {
    done = server_.Step(c);
  } catch (...) {
    c.call.reset();
    throw;
  }
  if (!done) throw HandlerParked{};
  std::string reply = c.call->TakeReply();
  c.call.reset();
  server_.CountRequest();
  return reply;
}

}  // namespace

std::unique_ptr<Server> MakeGreenServer(const ServerOptions& options, Engine& engine) {
  return std::make_unique<GreenServer>(options, engine);
}

}  // namespace gillab::servers
