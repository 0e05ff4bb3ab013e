// bad_input_test.cc — hostile and broken clients against the real `gillab
// serve` (issue 7, items 1 and 6), for every server kind with the native
// engine: oversized and 0xFFFFFFFF length prefixes, frames cut short, random
// garbage, resets mid-frame, a client trickling one byte at a time, 500 idle
// connections, 1,000 connect/close cycles, malformed zmq multipart messages,
// garbage control messages on the multiprocessing queues, a server out of
// file descriptors, and a message above the buffer budget next to legitimate
// ones. After each attack a good client gets a correct echo, each error is one
// stderr line naming the peer, RSS does not grow with the number of bad
// clients, and the server exits 0 on SIGTERM.
//
// What each kind does, asserted below:
//   nonblocking, threaded  serve everyone concurrently: a slow or idle client
//                          costs only its own socket (and, threaded, its thread).
//   blocking               serves one client at a time by design: a slow or
//                          idle client holds the server, the others wait in the
//                          listen backlog and are served once it leaves.
//   zmq                    libzmq owns the TCP connections: a peer that breaks
//                          the ZMTP handshake is dropped by libzmq and never
//                          reaches the server (no line); malformed multipart
//                          messages get one line naming the routing id.
//   multiprocessing        shared-memory queues: oversized messages cannot be
//                          sent at all; garbage control messages get one line.
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/core.h>
#include <gtest/gtest.h>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "servers/client_connection.h"
#include "servers/e2e_test_util.h"
#include "servers/frame.h"
#include "servers/mq_protocol.h"
#include "servers/socket.h"

namespace gillab::servers {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr int kReplyTimeoutMs = 5000;
constexpr int kLineTimeoutMs = 5000;
constexpr uint64_t kMaxMessageBytes = 1000;  // --max-message-bytes of most servers below
constexpr int64_t kRssSlackKiB = 8 * 1024;

// ---- process inspection -------------------------------------------------------

int64_t StatusField(pid_t pid, const std::string& field) {
  std::istringstream status(ReadFile(fmt::format("/proc/{}/status", pid)));
  for (std::string line; std::getline(status, line);) {
    if (line.starts_with(field + ":")) return std::stoll(line.substr(field.size() + 1));
  }
  return -1;
}
int64_t RssKiB(pid_t pid) { return StatusField(pid, "VmRSS"); }
int64_t ThreadCount(pid_t pid) { return StatusField(pid, "Threads"); }

std::vector<int> OpenFds(pid_t pid) {
  std::vector<int> fds;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(fmt::format("/proc/{}/fd", pid), ec)) {
    fds.push_back(std::stoi(entry.path().filename().string()));
  }
  std::sort(fds.begin(), fds.end());
  return fds;
}

// Waits (bounded) until `done()` holds; returns its last value.
template <typename Predicate>
bool WaitUntil(Predicate done, int timeout_ms = kLineTimeoutMs) {
  const auto give_up = Clock::now() + std::chrono::milliseconds(timeout_ms);
  while (!done()) {
    if (Clock::now() > give_up) return done();
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// The stderr lines of `serve` that contain `needle`, once at least `n` of them are there (bounded wait).
std::vector<std::string> LinesWith(const Serve& serve, const std::string& needle, size_t n = 1) {
  std::vector<std::string> found;
  WaitUntil([&] {
    found.clear();
    for (auto& line : Lines(serve.child->Stderr())) {
      if (line.find(needle) != std::string::npos) found.push_back(line);
    }
    return found.size() >= n;
  });
  return found;
}

// ---- stream clients -----------------------------------------------------------

UniqueFd Connect(const std::string& endpoint, int timeout_ms = kReplyTimeoutMs) {
  UniqueFd fd = ConnectTcp(ParseTcpEndpoint(endpoint));
  SetRecvTimeoutMs(fd.get(), timeout_ms);
  return fd;
}

// How the server names this client in its stderr lines: "127.0.0.1:PORT".
std::string PeerOf(int fd) { return fmt::format("127.0.0.1:{}", LocalEndpoint(fd).port); }

std::string Frame(std::string_view payload) {
  std::string frame;
  AppendFrame(frame, payload);
  return frame;
}

std::string Prefix(uint32_t n) {
  return {static_cast<char>(n >> 24), static_cast<char>(n >> 16), static_cast<char>(n >> 8), static_cast<char>(n)};
}

// One request/reply; a marker string instead of the reply on failure.
std::string Echo(int fd, std::string_view payload) {
  if (!SendFrame(fd, payload)) return "<send failed>";
  FrameReader reader(uint64_t{1} << 30);
  std::string reply;
  const RecvFrameResult result = RecvFrame(fd, reader, reply);
  if (result == RecvFrameResult::kClosed) return "<closed>";
  if (result != RecvFrameResult::kFrame) return "<no reply>";
  return reply;
}

// True once the server has closed or reset `fd` (reading and dropping
// anything before that); false if it stays open for the socket's timeout.
bool ClosedByServer(int fd) {
  char buf[4096];
  for (int i = 0; i < 10000; ++i) {
    const ssize_t n = RecvSome(fd, buf, sizeof buf);
    if (n == 0) return true;
    if (n < 0) return errno != EAGAIN && errno != EWOULDBLOCK;
  }
  return false;
}

// close() that sends RST instead of FIN.
void ResetConnection(UniqueFd& fd) {
  const linger abort_on_close{.l_onoff = 1, .l_linger = 0};
  setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &abort_on_close, sizeof abort_on_close);
  fd.reset();
}

void ExpectGoodClientServed(const std::string& endpoint, int seed = 0) {
  UniqueFd good = Connect(endpoint);
  for (size_t n : {size_t{0}, size_t{1}, size_t{100}, size_t{kMaxMessageBytes}}) {
    std::string payload(n, '\0');
    for (size_t i = 0; i < n; ++i) payload[i] = static_cast<char>(i * 31 + seed);
    EXPECT_EQ(Echo(good.get(), payload), payload) << n << " bytes";
  }
}

void RaiseOpenFileLimit(rlim_t wanted) {
  rlimit limit{};
  getrlimit(RLIMIT_NOFILE, &limit);
  if (limit.rlim_cur < wanted) {
    limit.rlim_cur = std::min(wanted, limit.rlim_max);
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

class StreamAttack : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { Start({"--max-message-bytes", std::to_string(kMaxMessageBytes)}); }
  void Start(std::vector<std::string> extra) {
    // The parallel server runs handlers in the toy VM's parallel contexts (design §12).
    const char* engine = GetParam() == "parallel" ? "toy" : "native";
    serve_ = std::make_unique<Serve>(GetParam(), engine, "tcp://127.0.0.1:0", std::move(extra));
    ASSERT_FALSE(serve_->endpoint.empty()) << serve_->child->Stderr();
    endpoint_ = serve_->endpoint;
    pid_ = serve_->child->pid();
  }
  // The one line naming `peer`, which must contain `what`.
  void ExpectOneLine(const std::string& peer, const std::string& what) {
    const auto lines = LinesWith(*serve_, "gillab serve: " + peer + ": ");
    ASSERT_EQ(lines.size(), 1u) << serve_->child->Stderr();
    EXPECT_NE(lines[0].find(what), std::string::npos) << lines[0];
    EXPECT_TRUE(lines[0].ends_with("; closing connection")) << lines[0];
  }
  void ExpectStopsCleanly() { EXPECT_EQ(serve_->Stop(), 0) << serve_->child->Stderr(); }
  bool blocking() const { return GetParam() == "blocking"; }

  std::unique_ptr<Serve> serve_;
  std::string endpoint_;
  pid_t pid_ = -1;
};

TEST_P(StreamAttack, OversizedLengthPrefixClosesThatConnectionWithOneLine) {
  UniqueFd bad = Connect(endpoint_);
  const std::string peer = PeerOf(bad.get());
  ASSERT_TRUE(SendAll(bad.get(), Prefix(kMaxMessageBytes + 1)));
  EXPECT_TRUE(ClosedByServer(bad.get()));
  ExpectOneLine(peer, "message of 1001 bytes exceeds --max-message-bytes 1000");
  ExpectGoodClientServed(endpoint_);
  ExpectStopsCleanly();
  EXPECT_EQ(Lines(serve_->child->Stderr()).size(), 1u) << serve_->child->Stderr();
}

TEST_P(StreamAttack, AllOnesLengthPrefixIsRefusedBeforeAnyAllocation) {
  const int64_t rss_before_kib = RssKiB(pid_);
  UniqueFd bad = Connect(endpoint_);
  const std::string peer = PeerOf(bad.get());
  ASSERT_TRUE(SendAll(bad.get(), "\xff\xff\xff\xff" + std::string(100, 'z')));
  EXPECT_TRUE(ClosedByServer(bad.get()));
  ExpectOneLine(peer, "message of 4294967295 bytes exceeds --max-message-bytes 1000");
  ExpectGoodClientServed(endpoint_);
  EXPECT_LT(RssKiB(pid_), rss_before_kib + kRssSlackKiB);
  ExpectStopsCleanly();
}

TEST_P(StreamAttack, TruncatedFrameThenCloseIsOneLine) {
  UniqueFd bad = Connect(endpoint_);
  const std::string peer = PeerOf(bad.get());
  ASSERT_TRUE(SendAll(bad.get(), Frame(std::string(100, 't')).substr(0, 50)));
  bad.reset();
  ExpectOneLine(peer, "connection closed mid-frame with 50 bytes of an unfinished frame");
  ExpectGoodClientServed(endpoint_);
  ExpectStopsCleanly();
}

// Random bytes, and an HTTP request (the usual stranger on a TCP port). A
// local FrameReader says what the server must make of each: frames echoed, an
// oversized prefix or a cut frame one line, a clean end nothing.
TEST_P(StreamAttack, RandomGarbageCostsOnlyTheSender) {
  std::mt19937 random(20261123);
  std::vector<std::string> garbage = {"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"};
  for (int i = 0; i < 24; ++i) {
    std::string bytes(1 + random() % 300, '\0');
    for (char& c : bytes) c = static_cast<char>(random());
    if (i % 2 == 0) bytes.replace(0, 4, Prefix(random() % 1200));  // often a plausible length
    garbage.push_back(bytes);
  }
  size_t expected_lines = 0;
  for (const std::string& bytes : garbage) {
    FrameReader model(kMaxMessageBytes);
    model.Feed(bytes.data(), bytes.size());
    std::string frame;
    FrameReader::Status status;
    int frames = 0;
    while ((status = model.Next(frame)) == FrameReader::Status::kFrame) ++frames;
    const bool too_large = status == FrameReader::Status::kTooLarge;

    UniqueFd bad = Connect(endpoint_);
    const std::string peer = PeerOf(bad.get());
    ASSERT_TRUE(SendAll(bad.get(), bytes));
    shutdown(bad.get(), SHUT_WR);
    // Read every reply until the server closes: the garbage has been handled then.
    std::string replies;
    char buf[4096];
    for (int reads = 0; reads < 1000; ++reads) {
      const ssize_t n = RecvSome(bad.get(), buf, sizeof buf);
      if (n <= 0) {
        EXPECT_TRUE(n == 0 || errno == ECONNRESET) << peer << ": " << std::strerror(errno);
        break;
      }
      replies.append(buf, static_cast<size_t>(n));
    }
    FrameReader reply_reader(kMaxMessageBytes);
    reply_reader.Feed(replies.data(), replies.size());
    int replies_seen = 0;
    while (reply_reader.Next(frame) == FrameReader::Status::kFrame) ++replies_seen;
    if (!too_large) { EXPECT_EQ(replies_seen, frames) << peer; }
    if (too_large) {
      ExpectOneLine(peer, "exceeds --max-message-bytes 1000");
      ++expected_lines;
    } else if (model.mid_frame()) {
      ExpectOneLine(peer, "connection closed mid-frame");
      ++expected_lines;
    }
  }
  ExpectGoodClientServed(endpoint_);
  ExpectStopsCleanly();
  EXPECT_EQ(Lines(serve_->child->Stderr()).size(), expected_lines) << serve_->child->Stderr();
  EXPECT_GT(expected_lines, 5u);  // the seed does exercise both error paths
}

TEST_P(StreamAttack, ResetMidFrameIsOneLine) {
  UniqueFd bad = Connect(endpoint_);
  const std::string peer = PeerOf(bad.get());
  ASSERT_EQ(Echo(bad.get(), "before the reset"), "before the reset");  // accepted and named
  ASSERT_TRUE(SendAll(bad.get(), Frame(std::string(500, 'r')).substr(0, 200)));
  ResetConnection(bad);
  const auto lines = LinesWith(*serve_, "gillab serve: " + peer + ": ");
  ASSERT_EQ(lines.size(), 1u) << serve_->child->Stderr();
  // Whether the kernel hands the server the 200 bytes before the reset is a race.
  EXPECT_TRUE(lines[0].find("recv failed: Connection reset by peer") != std::string::npos ||
              lines[0].find("connection closed mid-frame") != std::string::npos)
      << lines[0];
  ExpectGoodClientServed(endpoint_);
  ExpectStopsCleanly();
}

// One byte every 0.7 s (a 5-byte frame over ~3 s). nonblocking and threaded
// keep answering another client meanwhile; blocking is held by the slow client
// and answers the other one only after the slow one is done and gone.
TEST_P(StreamAttack, OneByteAtATimeClient) {
  std::atomic<bool> slow_done{false};
  std::string slow_reply;
  UniqueFd slow = Connect(endpoint_);
  ASSERT_EQ(Echo(slow.get(), "hello"), "hello");  // the server is now serving it
  std::thread slow_client([&] {
    for (char byte : Frame("!")) {
      std::this_thread::sleep_for(700ms);
      SendAll(slow.get(), std::string_view(&byte, 1));
    }
    FrameReader reader(kMaxMessageBytes);
    if (RecvFrame(slow.get(), reader, slow_reply) != RecvFrameResult::kFrame) slow_reply = "<no reply>";
    slow_done = true;
  });
  UniqueFd other = Connect(endpoint_, 1000);
  if (blocking()) {
    ASSERT_TRUE(SendFrame(other.get(), "waiting"));
    char byte;
    EXPECT_EQ(RecvSome(other.get(), &byte, 1), -1) << "blocking server answered while held by the slow client";
    EXPECT_TRUE(errno == EAGAIN || errno == EWOULDBLOCK);
    slow_client.join();
    slow.reset();  // now the server accepts `other`
    SetRecvTimeoutMs(other.get(), kReplyTimeoutMs);
    FrameReader reader(kMaxMessageBytes);
    std::string reply;
    EXPECT_EQ(RecvFrame(other.get(), reader, reply), RecvFrameResult::kFrame);
    EXPECT_EQ(reply, "waiting");
  } else {
    int answered = 0;
    int64_t worst_us = 0;
    for (int i = 0; i < 100000 && !slow_done; ++i) {
      const auto start = Clock::now();
      ASSERT_EQ(Echo(other.get(), std::to_string(i)), std::to_string(i));
      worst_us = std::max<int64_t>(worst_us, std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count());
      ++answered;
      std::this_thread::sleep_for(20ms);
    }
    slow_client.join();
    EXPECT_GT(answered, 20) << "other client served only " << answered << " times in ~3 s";
    EXPECT_LT(worst_us, 1'000'000) << "a reply waited for the slow client";
  }
  EXPECT_EQ(slow_reply, "!");
  slow.reset();
  other.reset();
  ExpectGoodClientServed(endpoint_);
  ExpectStopsCleanly();
  EXPECT_EQ(serve_->child->Stderr(), "");
}

// nonblocking and threaded hold all 500 and still answer; blocking is held by
// the first and answers once they are gone. Closing an idle connection is no error.
TEST_P(StreamAttack, FiveHundredIdleConnections) {
  constexpr int kIdle = 500;
  RaiseOpenFileLimit(4 * kIdle);
  ExpectGoodClientServed(endpoint_);  // Run() is under way: its epoll descriptor exists
  size_t fds_before = OpenFds(pid_).size();
  for (int i = 0; i < 20; ++i, std::this_thread::sleep_for(5ms)) {  // and the good client's socket is closed
    fds_before = std::min(fds_before, OpenFds(pid_).size());
  }
  std::vector<UniqueFd> idle;
  for (int i = 0; i < kIdle; ++i) idle.push_back(Connect(endpoint_));
  if (blocking()) {
    UniqueFd other = Connect(endpoint_, 300);
    ASSERT_TRUE(SendFrame(other.get(), "queued"));
    char byte;
    EXPECT_EQ(RecvSome(other.get(), &byte, 1), -1) << "blocking server answered while held by an idle client";
    idle.clear();
    SetRecvTimeoutMs(other.get(), kReplyTimeoutMs);
    FrameReader reader(kMaxMessageBytes);
    std::string reply;
    EXPECT_EQ(RecvFrame(other.get(), reader, reply), RecvFrameResult::kFrame);
    EXPECT_EQ(reply, "queued");
  } else {
    EXPECT_TRUE(WaitUntil([&] { return OpenFds(pid_).size() >= fds_before + kIdle; }))
        << "the server holds " << OpenFds(pid_).size() - fds_before << " connections";
    ExpectGoodClientServed(endpoint_);
    idle.clear();
  }
  EXPECT_TRUE(WaitUntil([&] { return OpenFds(pid_).size() <= fds_before; }))
      << "descriptors leaked: " << OpenFds(pid_).size() << ", " << fds_before << " before";
  ExpectGoodClientServed(endpoint_);
  ExpectStopsCleanly();
  EXPECT_EQ(serve_->child->Stderr(), "");
}

TEST_P(StreamAttack, ThousandConnectCloseCyclesLeakNothing) {
  ExpectGoodClientServed(endpoint_);
  const size_t fds_before = OpenFds(pid_).size();
  const int64_t threads_before = ThreadCount(pid_);
  for (int i = 0; i < 1000; ++i) {
    UniqueFd fd = ConnectTcp(ParseTcpEndpoint(endpoint_));
    ASSERT_TRUE(fd) << i;
  }
  ExpectGoodClientServed(endpoint_);
  EXPECT_TRUE(WaitUntil([&] { return OpenFds(pid_).size() <= fds_before; }))
      << OpenFds(pid_).size() << " descriptors, " << fds_before << " before";
  // The threaded server joins finished connection threads at its next accept.
  EXPECT_TRUE(WaitUntil([&] {
    ExpectGoodClientServed(endpoint_);
    return ThreadCount(pid_) <= threads_before + 1;
  })) << ThreadCount(pid_) << " threads, " << threads_before << " before";
  ExpectStopsCleanly();
  EXPECT_EQ(serve_->child->Stderr(), "");
}

// 200 bad clients of every sort after a warm-up of 200: RSS must not follow
// them. The server runs with the default 16 MiB limit so that a client
// announcing a maximal frame and sending little of it is part of the mix.
TEST_P(StreamAttack, RssStaysFlatUnderTwoHundredBadClients) {
  serve_->Stop();
  Start({});
  constexpr uint32_t kMax = 16u << 20;
  const std::string chunk(64 * 1024, 'c');
  int lines_expected = 0;
  const auto attack = [&](int rounds) {
    for (int i = 0; i < rounds; ++i) {
      UniqueFd bad = Connect(endpoint_);
      switch (i % 5) {
        case 0: SendAll(bad.get(), Prefix(kMax + 1)); break;
        case 1: SendAll(bad.get(), "\xff\xff\xff\xff"); break;
        case 2: SendAll(bad.get(), Prefix(kMax) + chunk); break;  // a whole frame announced, 64 KiB sent
        case 3: SendAll(bad.get(), Prefix(kMax) + chunk); ResetConnection(bad); break;
        case 4: SendAll(bad.get(), "GET / HTTP/1.1\r\n\r\n"); break;
      }
      if (bad && i % 5 != 2) ClosedByServer(bad.get());
      ++lines_expected;
    }
    EXPECT_TRUE(WaitUntil([&] { return Lines(serve_->child->Stderr()).size() >= size_t(lines_expected); }, 20000))
        << Lines(serve_->child->Stderr()).size() << " lines for " << lines_expected << " bad clients";
  };
  attack(200);
  ExpectGoodClientServed(endpoint_);
  const int64_t rss_warm_kib = RssKiB(pid_);
  attack(200);
  ExpectGoodClientServed(endpoint_);
  const int64_t rss_after_kib = RssKiB(pid_);
  EXPECT_LT(rss_after_kib, rss_warm_kib + kRssSlackKiB) << "RSS " << rss_warm_kib << " KiB after the warm-up";
  ExpectStopsCleanly();
  const auto lines = Lines(serve_->child->Stderr());
  EXPECT_EQ(lines.size(), 400u);
  for (const auto& line : lines) {
    EXPECT_TRUE(line.starts_with("gillab serve: 127.0.0.1:") && line.ends_with("; closing connection")) << line;
  }
}

// Item 6, descriptors. The limit is lowered under the running server so that
// it may open no descriptor at all (the existing client keeps its own): a new client
// is refused (closed at once, one line naming it) instead of waiting in the
// backlog, the existing client keeps being served, and raising the limit
// again brings new clients back. The blocking server refuses only once the
// existing client is gone, since it serves one at a time.
TEST_P(StreamAttack, OutOfDescriptorsRefusesNewClientsAndServesExistingOnes) {
  UniqueFd existing = Connect(endpoint_);
  ASSERT_EQ(Echo(existing.get(), "existing"), "existing");
  // The limit is set just above the server's reserve (its last /dev/null):
  // only the free slots below it (`holes`) can still take a connection.
  const std::vector<int> fds = OpenFds(pid_);
  int reserve = -1;
  for (int fd : fds) {
    std::error_code ec;
    if (std::filesystem::read_symlink(fmt::format("/proc/{}/fd/{}", pid_, fd), ec) == "/dev/null") reserve = fd;
  }
  ASSERT_GT(reserve, 2) << "no reserve descriptor";
  int holes = 0;
  for (int n = 0; n <= reserve; ++n) holes += !std::binary_search(fds.begin(), fds.end(), n);
  rlimit original{};
  ASSERT_EQ(prlimit(pid_, RLIMIT_NOFILE, nullptr, &original), 0);
  rlimit low = original;
  low.rlim_cur = static_cast<rlim_t>(reserve + 1);
  ASSERT_EQ(prlimit(pid_, RLIMIT_NOFILE, &low, nullptr), 0) << std::strerror(errno);

  // nonblocking and threaded keep the served ones open, filling the holes;
  // blocking serves one at a time, so each served client frees its hole again.
  std::vector<UniqueFd> kept;
  int served = 0, refused = 0;
  for (int i = 0; i < holes + 3; ++i) {
    UniqueFd client = Connect(endpoint_, 3000);
    const std::string peer = PeerOf(client.get());
    ASSERT_TRUE(SendFrame(client.get(), "refused?"));
    if (blocking() && i == 0) {
      EXPECT_EQ(Echo(existing.get(), "still served"), "still served");
      existing.reset();  // the server takes the next client only now
    }
    FrameReader reader(kMaxMessageBytes);
    std::string reply;
    const RecvFrameResult result = RecvFrame(client.get(), reader, reply);
    if (result == RecvFrameResult::kFrame) {
      EXPECT_EQ(reply, "refused?");
      ++served;
      if (!blocking()) kept.push_back(std::move(client));
      continue;
    }
    ASSERT_TRUE(result == RecvFrameResult::kClosed || errno == ECONNRESET)
        << peer << " was neither served nor refused: " << std::strerror(errno);
    ++refused;
    const auto lines = LinesWith(*serve_, "gillab serve: " + peer + ": ");
    ASSERT_EQ(lines.size(), 1u) << serve_->child->Stderr();
    EXPECT_NE(lines[0].find("refused, the server is out of file descriptors"), std::string::npos) << lines[0];
  }
  if (!blocking()) {
    EXPECT_EQ(served, holes);
    EXPECT_EQ(refused, 3);
    EXPECT_EQ(Echo(existing.get(), "after"), "after");
  } else {
    EXPECT_EQ(refused, holes == 0 ? 3 : 0) << holes << " free slots below the limit";
  }
  kept.clear();

  ASSERT_EQ(prlimit(pid_, RLIMIT_NOFILE, &original, nullptr), 0);
  ExpectGoodClientServed(endpoint_);
  existing.reset();
  ExpectStopsCleanly();
}

// Item 6, memory: with the address space capped a little above what the
// server uses, a client announcing a 16 MiB frame (within the default limit)
// cannot get its buffer (or, threaded, its thread's stack): that client is
// refused with one line, the existing client keeps being served.
// The address-space limit below makes the 16 MiB buffer fail only where the
// frame is read on the main thread's malloc arena. The transactional and
// parallel servers process frames on their workers, whose glibc arenas have
// reserved their 64 MiB of address space at start: the buffer fits, the server
// simply holds it, so this attack has no out-of-memory to provoke there
// (blocking, nonblocking, threaded and green only).
class StreamAttackOutOfMemory : public StreamAttack {};

TEST_P(StreamAttackOutOfMemory, OutOfMemoryForABufferRefusesThatClientAndServesExistingOnes) {
  serve_->Stop();
  Start({});  // the default 16 MiB --max-message-bytes
  UniqueFd existing = Connect(endpoint_);
  ASSERT_EQ(Echo(existing.get(), "existing"), "existing");
  rlimit original{};
  ASSERT_EQ(prlimit(pid_, RLIMIT_AS, nullptr, &original), 0);
  rlimit low = original;
  low.rlim_cur = static_cast<rlim_t>(StatusField(pid_, "VmSize") + 4096) * 1024;  // 4 MiB of headroom
  ASSERT_EQ(prlimit(pid_, RLIMIT_AS, &low, nullptr), 0) << std::strerror(errno);
  UniqueFd big = Connect(endpoint_);
  const std::string big_peer = PeerOf(big.get());
  ASSERT_TRUE(SendAll(big.get(), Prefix(16u << 20) + std::string(1000, 'b')));
  if (blocking()) {
    EXPECT_EQ(Echo(existing.get(), "still served"), "still served");
    existing.reset();  // the server takes the next client only now
  }
  EXPECT_TRUE(ClosedByServer(big.get()));
  const auto lines = LinesWith(*serve_, "gillab serve: " + big_peer + ": ");
  ASSERT_EQ(lines.size(), 1u) << serve_->child->Stderr();
  EXPECT_TRUE(lines[0].find("out of memory for a message of 16777216 bytes") != std::string::npos ||
              lines[0].find("refused, cannot start a connection thread") != std::string::npos)
      << lines[0];
  if (!blocking()) { EXPECT_EQ(Echo(existing.get(), "still served"), "still served"); }
  ASSERT_EQ(prlimit(pid_, RLIMIT_AS, &original, nullptr), 0);
  ExpectGoodClientServed(endpoint_);
  existing.reset();
  ExpectStopsCleanly();
}

// Item 6, buffers: a message above the budget (--max-message-bytes) is refused
// with one line while another client is in the middle of a legitimate one.
TEST_P(StreamAttack, MessageAboveTheBudgetIsRefusedWhileOthersAreServed) {
  UniqueFd legit = Connect(endpoint_);
  const std::string message(kMaxMessageBytes, 'm');
  const std::string frame = Frame(message);
  ASSERT_EQ(Echo(legit.get(), "first"), "first");
  ASSERT_TRUE(SendAll(legit.get(), frame.substr(0, 500)));
  UniqueFd big = Connect(endpoint_);
  const std::string big_peer = PeerOf(big.get());
  ASSERT_TRUE(SendAll(big.get(), Prefix(kMaxMessageBytes + 1) + std::string(1000, 'b')));
  if (!blocking()) {
    EXPECT_TRUE(ClosedByServer(big.get()));
    ExpectOneLine(big_peer, "message of 1001 bytes exceeds --max-message-bytes 1000");
  }
  ASSERT_TRUE(SendAll(legit.get(), frame.substr(500)));
  FrameReader reader(kMaxMessageBytes);
  std::string reply;
  EXPECT_EQ(RecvFrame(legit.get(), reader, reply), RecvFrameResult::kFrame);
  EXPECT_EQ(reply, message);
  legit.reset();
  if (blocking()) {
    EXPECT_TRUE(ClosedByServer(big.get()));
    ExpectOneLine(big_peer, "message of 1001 bytes exceeds --max-message-bytes 1000");
  }
  ExpectGoodClientServed(endpoint_);
  ExpectStopsCleanly();
}

INSTANTIATE_TEST_SUITE_P(Kinds, StreamAttack,
                         ::testing::Values("blocking", "nonblocking", "threaded", "green", "transactional", "parallel"));
INSTANTIATE_TEST_SUITE_P(Kinds, StreamAttackOutOfMemory,
                         ::testing::Values("blocking", "nonblocking", "threaded", "green"));

// ---- zmq ------------------------------------------------------------------------

std::string HexOf(std::string_view bytes) {
  std::string out = "0x";
  for (unsigned char c : bytes) out += fmt::format("{:02x}", c);
  return out;
}

class ZmqAttack : public ::testing::Test {
 protected:
  void SetUp() override {
    serve_ = std::make_unique<Serve>("zmq", "native", "tcp://127.0.0.1:0",
                                     std::vector<std::string>{"--max-message-bytes", std::to_string(kMaxMessageBytes)});
    ASSERT_FALSE(serve_->endpoint.empty()) << serve_->child->Stderr();
    pid_ = serve_->child->pid();
  }
  zmq::socket_t Socket(zmq::socket_type type, const std::string& routing_id = "") {
    zmq::socket_t socket(context_, type);
    socket.set(zmq::sockopt::linger, 0);
    socket.set(zmq::sockopt::rcvtimeo, kReplyTimeoutMs);
    if (!routing_id.empty()) socket.set(zmq::sockopt::routing_id, routing_id);
    socket.connect(serve_->endpoint);
    return socket;
  }
  void ExpectGoodClientServed() {
    auto client = ConnectClient("zmq", serve_->endpoint, kReplyTimeoutMs);
    std::string reply;
    for (size_t n : {size_t{0}, size_t{1}, size_t{kMaxMessageBytes}}) {
      const std::string payload(n, 'g');
      client->Exchange(payload, reply);
      EXPECT_EQ(reply, payload);
    }
  }
  static std::vector<std::string> Strings(const std::vector<zmq::message_t>& parts) {
    std::vector<std::string> out;
    for (const auto& p : parts) out.push_back(p.to_string());
    return out;
  }
  static std::vector<std::string> SendAndReceive(zmq::socket_t& socket, const std::vector<std::string>& parts) {
    std::vector<zmq::const_buffer> buffers;
    for (const auto& p : parts) buffers.emplace_back(p.data(), p.size());
    if (!zmq::send_multipart(socket, buffers)) return {"<send failed>"};
    std::vector<zmq::message_t> reply;
    if (!zmq::recv_multipart(socket, std::back_inserter(reply))) return {"<no reply>"};
    return Strings(reply);
  }
  void ExpectStopsCleanly() { EXPECT_EQ(serve_->Stop(), 0) << serve_->child->Stderr(); }

  zmq::context_t context_;
  std::unique_ptr<Serve> serve_;
  pid_t pid_ = -1;
};

// DEALER: [body] and ["", body] are requests (empty bodies included); frames
// without an empty delimiter before the body are dropped with one line naming
// the routing id. Replies come in order, so a good request after each bad one
// proves the bad one was handled.
TEST_F(ZmqAttack, MalformedMultipartFromDealer) {
  zmq::socket_t dealer = Socket(zmq::socket_type::dealer, "attacker");
  using V = std::vector<std::string>;
  EXPECT_EQ(SendAndReceive(dealer, {""}), V{""});
  EXPECT_EQ(SendAndReceive(dealer, {"", ""}), (V{"", ""}));
  EXPECT_EQ(SendAndReceive(dealer, {"", "", ""}), (V{"", "", ""}));
  const std::vector<V> malformed = {{"a", "b"}, {"a", "b", "c"}, {"", "x", "y"}, {"x", "", "", "y", "z"}};
  for (const V& bad : malformed) {
    std::vector<zmq::const_buffer> buffers;
    for (const auto& p : bad) buffers.emplace_back(p.data(), p.size());
    ASSERT_TRUE(zmq::send_multipart(dealer, buffers));
    EXPECT_EQ(SendAndReceive(dealer, {"", "after"}), (V{"", "after"}));
  }
  const auto lines = LinesWith(*serve_, "malformed request from peer " + HexOf("attacker"), malformed.size());
  EXPECT_EQ(lines.size(), malformed.size()) << serve_->child->Stderr();
  ExpectGoodClientServed();
  ExpectStopsCleanly();
  EXPECT_EQ(Lines(serve_->child->Stderr()).size(), malformed.size()) << serve_->child->Stderr();
}

// REQ adds the delimiter itself: extra frames from the application make the
// body ambiguous, so the server drops the request and the REQ waits in vain.
TEST_F(ZmqAttack, ExtraFramesFromReqAreDroppedWithOneLine) {
  {
    zmq::socket_t req = Socket(zmq::socket_type::req, "req-extra");
    req.set(zmq::sockopt::rcvtimeo, 300);
    EXPECT_EQ(SendAndReceive(req, {"a", "b"}), std::vector<std::string>{"<no reply>"});
  }
  {
    zmq::socket_t req = Socket(zmq::socket_type::req, "req-empty");
    EXPECT_EQ(SendAndReceive(req, {"", "body"}), (std::vector<std::string>{"", "body"}));
    EXPECT_EQ(SendAndReceive(req, {""}), std::vector<std::string>{""});
  }
  EXPECT_EQ(LinesWith(*serve_, "malformed request from peer " + HexOf("req-extra")).size(), 1u);
  ExpectGoodClientServed();
  ExpectStopsCleanly();
  EXPECT_EQ(Lines(serve_->child->Stderr()).size(), 1u) << serve_->child->Stderr();
}

TEST_F(ZmqAttack, OversizedMessageIsAnsweredWithAnErrorAndOneLine) {
  zmq::socket_t dealer = Socket(zmq::socket_type::dealer, "big");
  const auto reply = SendAndReceive(dealer, {"", std::string(kMaxMessageBytes + 1, 'B')});
  ASSERT_EQ(reply.size(), 2u);
  EXPECT_EQ(reply[1], "error: message of 1001 bytes exceeds max_message_bytes 1000");
  const auto lines = LinesWith(*serve_, "from peer " + HexOf("big"));
  ASSERT_EQ(lines.size(), 1u) << serve_->child->Stderr();
  EXPECT_NE(lines[0].find("1001 bytes"), std::string::npos) << lines[0];
  ExpectGoodClientServed();
  ExpectStopsCleanly();
}

// Far above the limit (beyond 2 x max + 64 KiB) libzmq itself drops the
// peer before buffering the message: no reply, no line, nothing held.
TEST_F(ZmqAttack, MessageFarAboveTheLimitIsDroppedByLibzmq) {
  const int64_t rss_before_kib = RssKiB(pid_);
  {
    zmq::socket_t dealer = Socket(zmq::socket_type::dealer, "huge");
    dealer.set(zmq::sockopt::rcvtimeo, 500);
    EXPECT_EQ(SendAndReceive(dealer, {"", std::string(32 << 20, 'H')}), std::vector<std::string>{"<no reply>"});
  }
  ExpectGoodClientServed();
  EXPECT_LT(RssKiB(pid_), rss_before_kib + kRssSlackKiB);
  ExpectStopsCleanly();
  EXPECT_EQ(serve_->child->Stderr(), "");
}

// Stream-style attacks on the zmq port: libzmq ends each connection during the
// ZMTP handshake; the server never sees them and stays silent and healthy.
TEST_F(ZmqAttack, RawTcpGarbageNeverReachesTheServer) {
  RaiseOpenFileLimit(2000);
  const std::string& endpoint = serve_->endpoint;
  for (const std::string& bytes : {Prefix(kMaxMessageBytes + 1), std::string("\xff\xff\xff\xff"),
                                   std::string("GET / HTTP/1.1\r\n\r\n"), std::string(300, '\x7f')}) {
    UniqueFd bad = Connect(endpoint, 500);  // libzmq may keep waiting for a greeting: do not wait long
    SendAll(bad.get(), bytes);
    ClosedByServer(bad.get());
  }
  {
    UniqueFd bad = Connect(endpoint);
    SendAll(bad.get(), std::string("\xff\0\0\0\0\0\0\0\x01\x7f", 10));  // a ZMTP greeting cut short
    ResetConnection(bad);
  }
  std::vector<UniqueFd> idle;
  for (int i = 0; i < 500; ++i) idle.push_back(Connect(endpoint));
  ExpectGoodClientServed();
  idle.clear();
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(ConnectTcp(ParseTcpEndpoint(endpoint))) << i;
  ExpectGoodClientServed();
  // A greeting trickled one byte at a time does not hold the server.
  UniqueFd slow = Connect(endpoint);
  std::atomic<bool> slow_done{false};
  std::thread trickle([&] {
    for (char byte : std::string("\xff\0\0\0", 4)) {
      std::this_thread::sleep_for(700ms);
      SendAll(slow.get(), std::string_view(&byte, 1));
    }
    slow_done = true;
  });
  int answered = 0;
  for (int i = 0; i < 10000 && !slow_done; ++i, ++answered) {
    ExpectGoodClientServed();
    std::this_thread::sleep_for(50ms);
  }
  trickle.join();
  EXPECT_GT(answered, 10);
  ExpectStopsCleanly();
  EXPECT_EQ(serve_->child->Stderr(), "");
}

TEST_F(ZmqAttack, RssStaysFlatUnderTwoHundredBadMessages) {
  zmq::socket_t dealer = Socket(zmq::socket_type::dealer, "rss");
  const auto attack = [&](int rounds) {
    for (int i = 0; i < rounds; ++i) {
      std::vector<zmq::const_buffer> bad = {zmq::str_buffer("x"), zmq::str_buffer("y"), zmq::str_buffer("z")};
      ASSERT_TRUE(zmq::send_multipart(dealer, bad));
      const auto reply = SendAndReceive(dealer, {"", std::string(kMaxMessageBytes + 1 + i % 7, 'o')});
      ASSERT_EQ(reply.size(), 2u);
      EXPECT_TRUE(reply[1].starts_with("error: message of")) << reply[1];
    }
  };
  attack(200);
  const int64_t rss_warm_kib = RssKiB(pid_);
  attack(200);
  EXPECT_LT(RssKiB(pid_), rss_warm_kib + kRssSlackKiB);
  ExpectGoodClientServed();
  ExpectStopsCleanly();
  EXPECT_EQ(Lines(serve_->child->Stderr()).size(), 800u);
}

// ---- multiprocessing ---------------------------------------------------------------

std::string MqName(std::string_view what) {
  static int counter = 0;
  return fmt::format("gillab-bad-{}-{}-{}", what, getpid(), ++counter);
}

class MqAttack : public ::testing::Test {
 protected:
  void SetUp() override {
    name_ = MqName("mq");
    serve_ = std::make_unique<Serve>("multiprocessing", "native", "ipc://" + name_,
                                     std::vector<std::string>{"--max-message-bytes", std::to_string(kMaxMessageBytes)});
    ASSERT_EQ(serve_->endpoint, "ipc://" + name_) << serve_->child->Stderr();
    pid_ = serve_->child->pid();
  }
  void TearDown() override { RemoveMqQueues(name_); }
  void ExpectGoodClientServed() {
    auto client = ConnectClient("multiprocessing", serve_->endpoint, kReplyTimeoutMs);
    std::string reply;
    for (size_t n : {size_t{0}, size_t{1}, size_t{kMaxMessageBytes}}) {
      const std::string payload(n, 'q');
      client->Exchange(payload, reply);
      EXPECT_EQ(reply, payload);
    }
  }
  void SendControl(std::string_view message) {
    boost::interprocess::message_queue control(boost::interprocess::open_only, ControlQueueName(name_).c_str());
    control.send(message.data(), message.size(), kControlPriority);
  }
  void ExpectStopsCleanly() {
    EXPECT_EQ(serve_->Stop(), 0) << serve_->child->Stderr();
    EXPECT_TRUE(ListMqQueues(name_).empty());
  }

  std::string name_;
  std::unique_ptr<Serve> serve_;
  pid_t pid_ = -1;
};

TEST_F(MqAttack, GarbageControlMessagesAreOneLineEach) {
  const std::vector<std::string> garbage = {
      "", "garbage", "connect", "connect tok", "connect bad.token 123", "connect tok -5", "connect tok 0",
      std::string("\xff\x00\x01connect", 10), std::string(kControlMessageBytes, 'c'), "two\nlines"};
  for (const auto& message : garbage) SendControl(message);
  const auto lines = LinesWith(*serve_, "malformed control message", garbage.size());
  EXPECT_EQ(lines.size(), garbage.size()) << serve_->child->Stderr();
  ExpectGoodClientServed();
  ExpectStopsCleanly();
  EXPECT_EQ(Lines(serve_->child->Stderr()).size(), garbage.size()) << serve_->child->Stderr();
}

// A "connect" that names a dead client, and one that reuses a live
// connection's token: one line each, and the live connection is untouched.
TEST_F(MqAttack, ForgedConnectsCostNothingButALine) {
  MqClient live(name_, kReplyTimeoutMs);
  std::string reply;
  live.Exchange("live", reply);
  ASSERT_EQ(reply, "live");
  SendControl(fmt::format("connect {} {}", live.token(), getpid()));
  SendControl("connect forged-dead 999999999");
  EXPECT_EQ(LinesWith(*serve_, "cannot open connection " + live.token()).size(), 1u) << serve_->child->Stderr();
  EXPECT_EQ(LinesWith(*serve_, "connect forged-dead from pid 999999999, which does not exist").size(), 1u)
      << serve_->child->Stderr();
  live.Exchange("still live", reply);
  EXPECT_EQ(reply, "still live");
  EXPECT_TRUE(WaitUntil([&] { return ListMqQueues(name_).size() == 3; }));  // .ctl + live's .req/.rep
  ExpectGoodClientServed();
  ExpectStopsCleanly();
}

// Anyone can write NAME.ctl: a flood of forged connects naming a live pid
// opens at most the server's connection limit, then one line per refusal.
TEST_F(MqAttack, ConnectFloodStopsAtTheConnectionLimit) {
  constexpr int kForged = 300;
  for (int i = 0; i < kForged; ++i) SendControl(fmt::format("connect flood-{} {}", i, getpid()));
  const size_t refused = LinesWith(*serve_, "connections open", kForged - 256).size();
  EXPECT_EQ(refused, static_cast<size_t>(kForged - 256)) << serve_->child->Stderr().substr(0, 2000);
  EXPECT_LE(ListMqQueues(name_).size(), 1u + 2 * 256);
  ExpectStopsCleanly();
}

TEST_F(MqAttack, OversizedMessageIsRefusedByTheQueue) {
  MqClient big(name_, kReplyTimeoutMs);
  std::string reply;
  EXPECT_THROW(big.Exchange(std::string(kMaxMessageBytes + 1, 'B'), reply), std::runtime_error);
  // Bypassing the client library: the queue itself refuses the message.
  boost::interprocess::message_queue req(boost::interprocess::open_only, RequestQueueName(name_, big.token()).c_str());
  const std::string oversized(kMaxMessageBytes + 1, 'B');
  EXPECT_THROW(req.send(oversized.data(), oversized.size(), kDataPriority), boost::interprocess::interprocess_exception);
  ExpectGoodClientServed();
  ExpectStopsCleanly();
}

TEST_F(MqAttack, ThousandConnectCloseCyclesLeakNothing) {
  ExpectGoodClientServed();
  const int64_t threads_before = ThreadCount(pid_);
  const int64_t rss_before_kib = RssKiB(pid_);
  for (int i = 0; i < 1000; ++i) {
    auto client = ConnectClient("multiprocessing", serve_->endpoint, kReplyTimeoutMs);
    if (i % 100 == 0) {
      std::string reply;
      client->Exchange("cycle", reply);
      ASSERT_EQ(reply, "cycle");
    }
  }
  ExpectGoodClientServed();
  EXPECT_TRUE(WaitUntil([&] { return ListMqQueues(name_).size() == 1; }));
  EXPECT_TRUE(WaitUntil([&] { return ThreadCount(pid_) <= threads_before; }, 3000))
      << ThreadCount(pid_) << " threads, " << threads_before << " before";
  EXPECT_LT(RssKiB(pid_), rss_before_kib + kRssSlackKiB);
  ExpectStopsCleanly();
  EXPECT_EQ(serve_->child->Stderr(), "");
}

}  // namespace
}  // namespace gillab::servers
