// child_process.cc — fork/exec with pipes, affinity, death signal; poll-based pumping.
#include "experiments/child_process.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <fmt/core.h>

namespace gillab::experiments {
namespace {

std::atomic<int> g_interrupt_signal{0};
int g_wake_pipe[2] = {-1, -1};

void OnInterrupt(int signal) {
  g_interrupt_signal.store(signal);
  if (g_wake_pipe[1] >= 0) {
    char c = 1;
    [[maybe_unused]] ssize_t n = write(g_wake_pipe[1], &c, 1);
  }
}

void CloseFd(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

}  // namespace

ChildProcess::ChildProcess(const Options& options) {
  if (options.argv.empty()) throw std::runtime_error("ChildProcess: empty argv");
  int out_pipe[2], err_pipe[2], exec_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0 || pipe2(exec_pipe, O_CLOEXEC) != 0)
    throw std::runtime_error(fmt::format("pipe: {}", std::strerror(errno)));
  // Everything the child needs is prepared before fork: no allocation after it.
  std::vector<char*> argv;
  for (const auto& a : options.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  cpu_set_t cpus;
  CPU_ZERO(&cpus);
  for (int c : options.cpus) CPU_SET(c, &cpus);
  pid_t parent = getpid();

  pid_ = fork();
  if (pid_ < 0) throw std::runtime_error(fmt::format("fork: {}", std::strerror(errno)));
  if (pid_ == 0) {
    setpgid(0, 0);  // the terminal's Ctrl-C goes to the runner only
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);  // the runner died before prctl
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int s : {SIGINT, SIGTERM, SIGHUP, SIGPIPE}) signal(s, SIG_DFL);
    int failure = 0;
    if (!options.cpus.empty() && sched_setaffinity(0, sizeof cpus, &cpus) != 0) failure = errno;
    if (failure == 0 && (dup2(out_pipe[1], STDOUT_FILENO) < 0 || dup2(err_pipe[1], STDERR_FILENO) < 0)) failure = errno;
    if (failure == 0) {
      int devnull = open("/dev/null", O_RDONLY);
      if (devnull >= 0) dup2(devnull, STDIN_FILENO);
      execv(argv[0], argv.data());
      failure = errno;
    }
    [[maybe_unused]] ssize_t n = write(exec_pipe[1], &failure, sizeof failure);
    _exit(127);
  }
  close(out_pipe[1]);
  close(err_pipe[1]);
  close(exec_pipe[1]);
  out_fd_ = out_pipe[0];
  err_fd_ = err_pipe[0];
  int failure = 0;
  ssize_t n;
  do n = read(exec_pipe[0], &failure, sizeof failure);
  while (n < 0 && errno == EINTR);
  close(exec_pipe[0]);
  if (n == sizeof failure) {
    TryReap(true);
    CloseFd(out_fd_);
    CloseFd(err_fd_);
    throw std::runtime_error(fmt::format("cannot start {}: {}", options.argv[0], std::strerror(failure)));
  }
  fcntl(out_fd_, F_SETFL, O_NONBLOCK);
  fcntl(err_fd_, F_SETFL, O_NONBLOCK);
}

ChildProcess::~ChildProcess() {
  KillAndReap();
  CloseFd(out_fd_);
  CloseFd(err_fd_);
}

std::string ChildProcess::ExitDescription() const {
  if (!exited_) return "still running";
  if (WIFSIGNALED(wait_status_)) return fmt::format("killed by signal {} ({})", WTERMSIG(wait_status_), strsignal(WTERMSIG(wait_status_)));
  return fmt::format("exit status {}", exit_code_);
}

bool ChildProcess::Crashed() const {
  if (!exited_ || !WIFSIGNALED(wait_status_)) return false;
  const int sig = WTERMSIG(wait_status_);
  return sig == SIGSEGV || sig == SIGBUS || sig == SIGILL || sig == SIGFPE || sig == SIGABRT;
}

std::string ChildProcess::ErrTail(size_t max_bytes) const {
  std::string tail = err_.size() > max_bytes ? "..." + err_.substr(err_.size() - max_bytes) : err_;
  while (!tail.empty() && (tail.back() == '\n' || tail.back() == ' ')) tail.pop_back();
  return tail;
}

void ChildProcess::Signal(int signal) {
  if (!exited_ && pid_ > 0) kill(pid_, signal);
}

void ChildProcess::Stop(double grace_s) {
  if (pid_ <= 0 || exited_) return;
  Signal(SIGTERM);
  int64_t deadline_ns = gil::KernelNowNs() + static_cast<int64_t>(grace_s * 1e9);
  while (!exited_ && gil::KernelNowNs() < deadline_ns) Pump({this}, 20);
  KillAndReap();
}

void ChildProcess::KillAndReap() {
  if (pid_ <= 0 || exited_) return;
  kill(pid_, SIGKILL);
  TryReap(true);
}

void ChildProcess::ReadPipe(int& fd, std::string& into) {
  if (fd < 0) return;
  char buffer[8192];
  for (;;) {
    ssize_t n = read(fd, buffer, sizeof buffer);
    if (n > 0) {
      // Bounded: a child that floods stderr cannot exhaust memory; keep the tail.
      into.append(buffer, static_cast<size_t>(n));
      constexpr size_t kMaxBytes = 4 << 20;
      if (into.size() > kMaxBytes) into.erase(0, into.size() - kMaxBytes / 2);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    CloseFd(fd);  // EOF or error
    return;
  }
}

void ChildProcess::TryReap(bool block) {
  if (exited_ || pid_ <= 0) return;
  int status = 0;
  pid_t r;
  do r = waitpid(pid_, &status, block ? 0 : WNOHANG);
  while (r < 0 && errno == EINTR);
  if (r == pid_) {
    exited_ = true;
    wait_status_ = status;
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  } else if (r < 0) {
    exited_ = true;  // ECHILD: someone else reaped it; nothing left to wait for
    exit_code_ = 255;
  }
}

void Pump(const std::vector<ChildProcess*>& children, int timeout_ms) {
  std::vector<pollfd> fds;
  if (g_wake_pipe[0] >= 0) fds.push_back({g_wake_pipe[0], POLLIN, 0});
  for (ChildProcess* c : children) {
    if (c->out_fd_ >= 0) fds.push_back({c->out_fd_, POLLIN, 0});
    if (c->err_fd_ >= 0) fds.push_back({c->err_fd_, POLLIN, 0});
  }
  bool reap_pending = false;
  for (ChildProcess* c : children) reap_pending |= !c->exited_;
  // A child whose pipes are closed can only be noticed by waitpid: poll briefly.
  size_t pipes = fds.size() - (g_wake_pipe[0] >= 0 ? 1 : 0);
  int wait_ms = (reap_pending && pipes == 0) ? std::min(timeout_ms, 10) : std::min(timeout_ms, 50);
  poll(fds.data(), fds.size(), wait_ms);
  if (g_wake_pipe[0] >= 0) {
    char buffer[64];
    while (read(g_wake_pipe[0], buffer, sizeof buffer) > 0) {
    }
  }
  for (ChildProcess* c : children) {
    c->ReadPipe(c->out_fd_, c->out_);
    c->ReadPipe(c->err_fd_, c->err_);
    c->TryReap(false);
  }
}

bool WaitFor(const std::vector<ChildProcess*>& children, int64_t deadline_ns, const std::function<bool()>& done) {
  for (;;) {
    if (done()) return true;
    if (Interrupted()) return false;
    int64_t left_ns = deadline_ns - gil::KernelNowNs();
    if (left_ns <= 0) return done();
    Pump(children, static_cast<int>(std::min<int64_t>(left_ns / 1'000'000 + 1, 50)));
  }
}

std::string CaptureOutput(const std::vector<std::string>& argv, int timeout_ms) {
  try {
    ChildProcess child({.argv = argv, .cpus = {}});
    bool done = WaitFor({&child}, gil::KernelNowNs() + int64_t{timeout_ms} * 1'000'000, [&] { return child.exited(); });
    if (!done || child.exit_code() != 0) return "";
    Pump({&child}, 0);  // collect anything left in the pipe
    return child.out();
  } catch (const std::exception&) {
    return "";
  }
}

void InstallInterruptHandlers() {
  if (g_wake_pipe[0] < 0 && pipe2(g_wake_pipe, O_CLOEXEC | O_NONBLOCK) != 0) g_wake_pipe[0] = g_wake_pipe[1] = -1;
  struct sigaction action {};
  action.sa_handler = OnInterrupt;
  sigemptyset(&action.sa_mask);
  for (int s : {SIGINT, SIGTERM, SIGHUP}) sigaction(s, &action, nullptr);
}

bool Interrupted() { return g_interrupt_signal.load() != 0; }
int InterruptSignal() { return g_interrupt_signal.load(); }

void ClearInterruptForTest() {
  g_interrupt_signal.store(0);
  if (g_wake_pipe[0] >= 0) {
    char buffer[64];
    while (read(g_wake_pipe[0], buffer, sizeof buffer) > 0) {
    }
  }
}

}  // namespace gillab::experiments
