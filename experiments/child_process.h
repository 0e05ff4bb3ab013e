// child_process.h — the runner's child processes: spawn, capture, time out, reap.
//
// A ChildProcess is fork+exec'd into its own process group with stdout and
// stderr on pipes, optionally pinned to CPUs (sched_setaffinity before exec,
// inherited by every thread it starts), and with PR_SET_PDEATHSIG(SIGKILL) so
// that it dies if the runner is killed with -9 (the child re-checks getppid()
// after prctl: a runner that died in between is caught too). Output is
// collected by Pump(), which also reaps children that exited. The destructor
// kills (SIGKILL) and reaps a child that is still running: no child outlives
// its ChildProcess, nor its runner.
//
// Why SIGKILL and not SIGTERM as the death signal: SIGTERM would let a serve
// child remove its shared-memory queues, but a serve that does not exit on
// SIGTERM (wedged, or killed by SIGPIPE writing its exit JSON to the dead
// runner's pipe before it cleaned up) would then survive as an orphan, its CPU
// threads spinning, that nothing will ever stop. SIGKILL cannot be refused;
// the queues it leaves are removed by the next `gillab run` (runner.cc).
// The death signal fires when the *thread* that forked exits: create
// ChildProcess objects from a thread that lives as long as the child should
// (the runner uses its main thread).
//
// Ctrl-C and SIGTERM to the runner are caught by InstallInterruptHandlers():
// they set a flag and wake Pump(), and the runner stops its children itself
// (children do not see the terminal's SIGINT: they are in their own group).
//
//   ChildProcess serve({.argv = {bin, "serve", ...}, .cpus = {0}});
//   bool ready = WaitFor({&serve}, deadline_ns, [&] { return serve.out().find('\n') != npos; });
//   serve.Signal(SIGTERM); WaitFor({&serve}, deadline_ns, [&] { return serve.exited(); });
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "gil/clock.h"  // deadlines here are on gil::KernelNowNs() (CLOCK_MONOTONIC)

namespace gillab::experiments {

class ChildProcess {
 public:
  struct Options {
    std::vector<std::string> argv;  // argv[0] is the path executed
    std::vector<int> cpus;          // empty: not pinned
  };
  // Throws std::runtime_error when the program cannot be started.
  explicit ChildProcess(const Options& options);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  bool exited() const { return exited_; }
  // Valid once exited(): the exit code, or 128 + signal for a killed child.
  int exit_code() const { return exit_code_; }
  std::string ExitDescription() const;  // "exit status 2", "killed by signal 9"
  // Valid once exited(): ended by a signal of its own fault (SIGSEGV, SIGBUS,
  // SIGILL, SIGFPE, SIGABRT), not by one somebody sent it to stop.
  bool Crashed() const;
  const std::string& out() const { return out_; }
  const std::string& err() const { return err_; }
  // The last lines of stderr, for error messages.
  std::string ErrTail(size_t max_bytes = 600) const;

  void Signal(int signal);   // no-op once exited
  void KillAndReap();        // SIGKILL, then wait for it
  // SIGTERM, up to grace_s for it to exit (output still collected), then SIGKILL; reaped either way.
  void Stop(double grace_s);

 private:
  friend void Pump(const std::vector<ChildProcess*>& children, int timeout_ms);
  void ReadPipe(int& fd, std::string& into);
  void TryReap(bool block);

  pid_t pid_ = -1;
  int out_fd_ = -1;
  int err_fd_ = -1;
  bool exited_ = false;
  int exit_code_ = 0;
  int wait_status_ = 0;
  std::string out_;
  std::string err_;
};

// Reads what the children wrote and reaps those that exited; returns after
// some event or timeout_ms. Returns early when the runner is interrupted.
void Pump(const std::vector<ChildProcess*>& children, int timeout_ms);
// Pumps until done() is true (returns true), the deadline passes or the runner
// is interrupted (returns false).
bool WaitFor(const std::vector<ChildProcess*>& children, int64_t deadline_ns, const std::function<bool()>& done);

// Runs a program to completion and returns its stdout; "" if it fails to start,
// exits non-zero or takes longer than timeout_ms.
std::string CaptureOutput(const std::vector<std::string>& argv, int timeout_ms = 5000);

// SIGINT/SIGTERM/SIGHUP set a flag (and wake Pump) instead of killing the runner.
void InstallInterruptHandlers();
bool Interrupted();
int InterruptSignal();  // the signal that interrupted, or 0
void ClearInterruptForTest();


}  // namespace gillab::experiments
