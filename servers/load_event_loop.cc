// load_event_loop.cc — the frame protocol's load on one epoll loop (see load_event_loop.h).
#include "servers/load_event_loop.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <queue>
#include <system_error>
#include <vector>

#include <fmt/core.h>

#include "gil/clock.h"
#include "servers/frame.h"
#include "servers/socket.h"

namespace gillab::servers {
namespace {

constexpr size_t kMaxMessages = 10;
constexpr int kMaxEvents = 1024;

struct Conn {
  UniqueFd fd;
  FrameReader reader{uint64_t{1} << 30};
  std::string request;  // in flight
  std::string out;      // framed, not yet all sent
  size_t out_sent = 0;
  int64_t since_ns = 0;  // latency is measured from here (send or intended send time)
  int64_t sent = 0;      // requests sent in this phase
  int64_t quota = 0;     // requests of this phase
  int64_t k = 0;         // measured requests scheduled so far (open loop schedule index)
  bool in_flight = false;
  bool failed = false;
  uint32_t interest = 0;
};

struct Due {
  int64_t when_ns;
  int conn;
  bool operator>(const Due& o) const { return when_ns > o.when_ns; }
};

class Loop {
 public:
  Loop(const LoadOptions& o, bool expect_echo, const std::function<void(std::string&)>& next_payload, LoadResult& r)
      : o_(o), expect_echo_(expect_echo), next_payload_(next_payload), r_(r), conns_(static_cast<size_t>(o.connections)) {
    epoll_.reset(epoll_create1(EPOLL_CLOEXEC));
    if (!epoll_) throw std::system_error(errno, std::generic_category(), "epoll_create1");
    const TcpEndpoint endpoint = ParseTcpEndpoint(o.endpoint);
    for (size_t i = 0; i < conns_.size(); ++i) {
      conns_[i].fd = ConnectTcp(endpoint);  // throws std::system_error: the run cannot start
      const int fd = conns_[i].fd.get();
      SetNoDelay(fd);
      if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0) {
        throw std::system_error(errno, std::generic_category(), "fcntl O_NONBLOCK");
      }
      epoll_event ev{.events = 0, .data = {.u64 = i}};
      if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) throw std::system_error(errno, std::generic_category(), "epoll_ctl");
    }
  }

  void Run() {
    const int c = o_.connections;
    // Warm-up: closed loop, no think time, unmeasured.
    for (int i = 0; i < c; ++i) conns_[i].quota = o_.warmup / c + (i < o_.warmup % c ? 1 : 0);
    Phase(false);
    start_ns_ = gil::KernelNowNs();
    for (int i = 0; i < c; ++i) {
      conns_[i].quota = o_.requests / c + (i < o_.requests % c ? 1 : 0);
      conns_[i].sent = 0;
    }
    Phase(true);
    r_.seconds = static_cast<double>(std::max(finish_ns_, start_ns_) - start_ns_) / 1e9;
    for (const Conn& conn : conns_) r_.unsent += conn.quota - conn.sent;
  }

 private:
  void Phase(bool measured) {
    measured_ = measured;
    open_loop_ = measured && o_.rate > 0;
    const double gap_ns = open_loop_ ? 1e9 / o_.rate : 0;
    gap_ns_ = gap_ns;
    for (size_t i = 0; i < conns_.size(); ++i) {
      if (conns_[i].failed || conns_[i].quota == 0) continue;
      due_.push({open_loop_ ? Intended(i, 0) : 0, static_cast<int>(i)});
    }
    std::vector<epoll_event> events(kMaxEvents);
    int64_t last_progress_ns = gil::KernelNowNs();
    while (Active()) {
      const int64_t now_ns = gil::KernelNowNs();
      while (!due_.empty() && due_.top().when_ns <= now_ns) {
        const Due d = due_.top();
        due_.pop();
        Send(d.conn, d.when_ns);
      }
      timespec timeout{};
      const int64_t until_ns = due_.empty() ? o_.reply_timeout_ms * int64_t{1000000}
                                            : std::max<int64_t>(due_.top().when_ns - gil::KernelNowNs(), 0);
      const int64_t wait_ns = std::min<int64_t>(until_ns, o_.reply_timeout_ms * int64_t{1000000});
      timeout = {static_cast<time_t>(wait_ns / 1000000000), static_cast<long>(wait_ns % 1000000000)};
      int n = epoll_pwait2(epoll_.get(), events.data(), kMaxEvents, &timeout, nullptr);
      if (n < 0 && errno == ENOSYS) n = epoll_wait(epoll_.get(), events.data(), kMaxEvents, static_cast<int>((wait_ns + 999999) / 1000000));
      if (n < 0 && errno != EINTR) throw std::system_error(errno, std::generic_category(), "epoll_wait");
      for (int e = 0; e < n; ++e) {
        const auto i = static_cast<size_t>(events[e].data.u64);
        if (conns_[i].failed) continue;
        if (events[e].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) Receive(i);
        if (!conns_[i].failed && (events[e].events & EPOLLOUT)) Flush(i);
        last_progress_ns = gil::KernelNowNs();
      }
      if (n == 0 && InFlight() && gil::KernelNowNs() - last_progress_ns > o_.reply_timeout_ms * int64_t{1000000}) {
        for (size_t i = 0; i < conns_.size(); ++i) {
          if (conns_[i].in_flight) Fail(i, fmt::format("no reply within {} ms", o_.reply_timeout_ms));
        }
      }
    }
  }

  int64_t Intended(size_t i, int64_t k) const {
    return start_ns_ + static_cast<int64_t>((static_cast<double>(k) * o_.connections + static_cast<double>(i)) * gap_ns_);
  }

  bool Active() const {
    if (!due_.empty()) return true;
    return InFlight();
  }
  bool InFlight() const { return in_flight_ > 0; }

  void Send(int index, int64_t intended_ns) {
    Conn& conn = conns_[static_cast<size_t>(index)];
    if (conn.failed) return;
    next_payload_(conn.request);
    conn.out.clear();
    conn.out_sent = 0;
    AppendFrame(conn.out, conn.request);
    conn.since_ns = open_loop_ ? intended_ns : gil::KernelNowNs();
    conn.in_flight = true;
    ++in_flight_;
    ++conn.sent;
    ++conn.k;
    Flush(static_cast<size_t>(index));
  }

  void Flush(size_t i) {
    Conn& conn = conns_[i];
    while (conn.out_sent < conn.out.size()) {
      const ssize_t n = SendSome(conn.fd.get(), conn.out.data() + conn.out_sent, conn.out.size() - conn.out_sent, MSG_DONTWAIT);
      if (n < 0 && errno == EAGAIN) break;
      if (n <= 0) return Fail(i, fmt::format("send failed: {}", std::strerror(errno)));
      conn.out_sent += static_cast<size_t>(n);
    }
    Watch(i, conn.in_flight ? (EPOLLIN | (conn.out_sent < conn.out.size() ? uint32_t{EPOLLOUT} : 0u)) : 0u);
  }

  void Receive(size_t i) {
    Conn& conn = conns_[i];
    char buf[16384];
    const ssize_t n = RecvSome(conn.fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EAGAIN) return;
    if (n <= 0) return Fail(i, n == 0 ? std::string("server closed the connection") : fmt::format("recv failed: {}", std::strerror(errno)));
    conn.reader.Feed(buf, static_cast<size_t>(n));
    std::string reply;
    if (conn.reader.Next(reply) != FrameReader::Status::kFrame) return;
    const int64_t done_ns = gil::KernelNowNs();
    if (!conn.in_flight) return Fail(i, "a reply without a request");
    conn.in_flight = false;
    --in_flight_;
    if (expect_echo_ && reply != conn.request) {
      Note(i, fmt::format("wrong reply: {} bytes for a {}-byte request", reply.size(), conn.request.size()));
    } else if (measured_) {
      r_.latency_ns.Record(done_ns - conn.since_ns);
      ++r_.requests;
      finish_ns_ = std::max(finish_ns_, done_ns);
    }
    Watch(i, 0);
    if (conn.sent < conn.quota) {
      const int64_t next_ns = open_loop_ ? Intended(i, conn.k) : done_ns + (measured_ ? o_.think_us * 1000 : 0);
      due_.push({next_ns, static_cast<int>(i)});
    }
  }

  void Watch(size_t i, uint32_t events) {
    Conn& conn = conns_[i];
    if (conn.interest == events) return;
    conn.interest = events;
    epoll_event ev{.events = events, .data = {.u64 = i}};
    epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, conn.fd.get(), &ev);
  }

  void Note(size_t i, std::string message) {
    ++r_.errors;
    if (r_.error_messages.size() < kMaxMessages) r_.error_messages.push_back(fmt::format("connection {}: {}", i, message));
  }

  void Fail(size_t i, std::string message) {
    Note(i, std::move(message));
    Conn& conn = conns_[i];
    conn.failed = true;
    if (conn.in_flight) {
      --in_flight_;
      if (measured_) --conn.sent;  // the request in flight was not answered: count it unsent
    }
    conn.in_flight = false;
    epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, conn.fd.get(), nullptr);
    conn.fd.reset();
  }

  const LoadOptions& o_;
  bool expect_echo_;
  const std::function<void(std::string&)>& next_payload_;
  LoadResult& r_;
  std::vector<Conn> conns_;
  UniqueFd epoll_;
  std::priority_queue<Due, std::vector<Due>, std::greater<>> due_;
  bool measured_ = false;
  bool open_loop_ = false;
  double gap_ns_ = 0;
  int64_t start_ns_ = 0;
  int64_t finish_ns_ = 0;
  int64_t in_flight_ = 0;  // connections with a request in flight
};

}  // namespace

void RunFrameLoadOnEpoll(const LoadOptions& options, bool expect_echo,
                         const std::function<void(std::string&)>& next_payload, LoadResult& result) {
  Loop loop(options, expect_echo, next_payload, result);
  loop.Run();
}

}  // namespace gillab::servers
