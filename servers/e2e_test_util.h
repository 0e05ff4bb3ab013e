// e2e_test_util.h — the real `gillab` binary as a child process, for the
// end-to-end tests (message_e2e_test, bad_input_test): Child runs any
// `gillab ARGS...` with stdout on a pipe and stderr in a file, Serve starts
// `gillab serve` and waits for its `listening ENDPOINT` line. Every wait is
// bounded and a Child that is still running when destroyed is killed and
// reaped, so a failing test leaves no process behind.
//
//   Serve serve("threaded", "native", "tcp://127.0.0.1:0", {"--max-message-bytes", "1000"});
//   ... talk to serve.endpoint ...
//   EXPECT_EQ(serve.Stop(), 0) << serve.child->Stderr();
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

extern char** environ;

namespace gillab::servers {

// A per-test-process scratch directory under the system temp dir.
inline std::filesystem::path ScratchDir() {
  static const std::filesystem::path dir = [] {
    std::filesystem::path d = std::filesystem::temp_directory_path() / fmt::format("gillab_e2e_{}", getpid());
    std::filesystem::create_directories(d);
    return d;
  }();
  return dir;
}

// Field `key` ("PPid", "State") of /proc/PID/status, or "" if the process is gone.
inline std::string ProcStatus(pid_t pid, const std::string& key) {
  std::ifstream in(fmt::format("/proc/{}/status", pid));
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with(key + ":")) {
      std::string value = line.substr(key.size() + 1);
      value.erase(0, value.find_first_not_of(" \t"));
      return value;
    }
  }
  return "";
}

inline bool AliveNotZombie(pid_t pid) {
  const std::string state = ProcStatus(pid, "State");
  return !state.empty() && !state.starts_with("Z");
}

inline std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A child process: stdout to a pipe we read, stderr to a file.
class Child {
 public:
  using Clock = std::chrono::steady_clock;

  explicit Child(const std::vector<std::string>& args) {
    static int counter = 0;
    stderr_path_ = ScratchDir() / fmt::format("stderr-{}.txt", ++counter);
    int out[2];
    if (pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    posix_spawn_file_actions_addopen(&actions, 2, stderr_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    const int rc = posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    close(out[1]);
    out_ = out[0];
    if (rc != 0) throw std::runtime_error("posix_spawn failed");
  }
  ~Child() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    close(out_);
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  // One line of stdout, or "" after timeout/EOF.
  std::string ReadLine(int timeout_ms = 20000) {
    const auto give_up = Clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      if (const size_t nl = buffer_.find('\n'); nl != std::string::npos) {
        std::string line = buffer_.substr(0, nl);
        buffer_.erase(0, nl + 1);
        return line;
      }
      const int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(give_up - Clock::now()).count());
      if (left <= 0) return "";
      pollfd p{out_, POLLIN, 0};
      if (poll(&p, 1, left) <= 0) return "";
      char chunk[4096];
      const ssize_t n = read(out_, chunk, sizeof chunk);
      if (n <= 0) return "";
      buffer_.append(chunk, static_cast<size_t>(n));
    }
  }
  // Everything until EOF (the child exited or closed stdout), bounded by the timeout.
  std::string ReadAll(int timeout_ms = 60000) {
    const auto give_up = Clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      const int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(give_up - Clock::now()).count());
      pollfd p{out_, POLLIN, 0};
      if (left <= 0 || poll(&p, 1, left) <= 0) break;
      char chunk[4096];
      const ssize_t n = read(out_, chunk, sizeof chunk);
      if (n <= 0) break;
      buffer_.append(chunk, static_cast<size_t>(n));
    }
    return std::exchange(buffer_, std::string());
  }
  void Signal(int signal) { kill(pid_, signal); }
  // Exit status (or 128+signal); -1 if it did not end within the timeout.
  int Wait(int timeout_ms = 60000) {
    const auto give_up = Clock::now() + std::chrono::milliseconds(timeout_ms);
    int status = 0;
    while (Clock::now() < give_up) {
      const pid_t r = waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return -1;
  }
  std::string Stderr() const { return ReadFile(stderr_path_); }
  pid_t pid() const { return pid_; }  // -1 once reaped

 private:
  pid_t pid_ = -1;
  int out_ = -1;
  std::string buffer_;
  std::filesystem::path stderr_path_;
};

// `gillab serve` with its endpoint once it prints "listening ENDPOINT"
// (empty if it did not within the timeout).
struct Serve {
  std::unique_ptr<Child> child;
  std::string endpoint;

  Serve(const std::string& kind, const std::string& engine, const std::string& endpoint_arg,
        std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {GILLAB_BINARY, "serve", "--server", kind, "--engine", engine,
                                     "--endpoint", endpoint_arg};
    args.insert(args.end(), extra.begin(), extra.end());
    child = std::make_unique<Child>(args);
    const std::string line = child->ReadLine();
    if (line.starts_with("listening ")) endpoint = line.substr(10);
  }
  // SIGTERM, then the exit status; `stats` gets the JSON line.
  int Stop(nlohmann::json* stats = nullptr) {
    child->Signal(SIGTERM);
    const std::string rest = child->ReadAll();
    const int status = child->Wait();
    if (stats != nullptr) {
      std::istringstream lines(rest);
      for (std::string line; std::getline(lines, line);) {
        if (line.starts_with("{")) *stats = nlohmann::json::parse(line, nullptr, false);
      }
    }
    return status;
  }
};

}  // namespace gillab::servers
