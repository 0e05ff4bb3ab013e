// stall_monitor.h — reports a thread that holds the lock far too long while
// others wait: a native that burns CPU without releasing it (the toy VM's
// spin_holding_us, a C extension that never drops the GIL) or a VM loop
// without check points.
//
// What counts as a stall: one uninterrupted hold (Gil::SnapshotHold's
// serial unchanged) of at least threshold_ms, while at least one thread is
// blocked waiting for the lock and, for policies whose waiters ask for the
// lock (all but `mutex`), the drop request is set. The last condition keeps
// legitimate long holds quiet: a cpu thread alone with the lock (the io
// thread is in a blocking call), or a `priority` holder whose waiters all
// rank lower and so never ask. A holder that reaches a check point honours
// the request within microseconds, so "held for a second with the request
// pending" means no check point was reached.
//
// Each stall is reported once, when it crosses the threshold, by calling the
// sink (default: one line on stderr naming the thread and its role). The
// monitor polls SnapshotHold every poll_ms from its own thread: it costs the
// lock nothing beyond the stores SnapshotHold reads, and a stall is seen
// within one poll period of the threshold.
//
// The Gil must outlive the monitor; the monitor stops and joins its thread
// in its destructor.
//
//   gil::StallMonitor monitor(*gil, {.threshold_ms = 1000});
//   ... run ...   // stderr: "gillab: stall: thread cpu-0 (role cpu) has held the lock for 1.0 s ..."
//   uint64_t n = monitor.stalls_reported();
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "gil/gil.h"

namespace gillab::gil {

struct StallOptions {
  int64_t threshold_ms = 1000;  // must be > 0
  int64_t poll_ms = 0;          // 0: threshold_ms / 10, between 1 and 100 ms
};

struct Stall {
  std::string thread_name;
  Role role = Role::kOther;
  int64_t held_ns = 0;  // how long the hold had lasted when it was reported
  int waiting = 0;      // threads waiting for the lock at that moment
  std::string policy;
};

// "stall: thread cpu-0 (role cpu) has held the lock for 1.0 s without a check point (...)".
std::string DescribeStall(const Stall& stall);

class StallMonitor {
 public:
  using Sink = std::function<void(const Stall&)>;
  // Writes DescribeStall's line, prefixed "gillab: ", to stderr.
  static void PrintToStderr(const Stall& stall);

  // Starts polling `gil` at once. Throws UsageError when threshold_ms <= 0.
  explicit StallMonitor(const Gil& gil, StallOptions options = {}, Sink sink = PrintToStderr);
  ~StallMonitor();
  StallMonitor(const StallMonitor&) = delete;
  StallMonitor& operator=(const StallMonitor&) = delete;

  uint64_t stalls_reported() const { return reported_.load(std::memory_order_relaxed); }

 private:
  void Run();
  void Poll();

  const Gil& gil_;
  const StallOptions options_;
  const Sink sink_;
  std::atomic<uint64_t> reported_{0};
  // Monitor thread only:
  uint64_t seen_serial_ = 0;
  int64_t seen_since_ns_ = 0;  // when this monitor first saw seen_serial_
  bool seen_reported_ = false;
  std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;  // guarded by mu_
  std::thread thread_;  // last: starts after everything above is ready
};

}  // namespace gillab::gil
