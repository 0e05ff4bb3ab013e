// gil.h — the global interpreter lock: one contract, five policies chosen by name.
//
// Every policy (mutex, ticket, priority, newgil, none; design §2) is a subclass
// of Gil. The public, non-virtual Acquire/Release/Yield keep the statistics and
// check the contract in one place; the policies implement DoAcquire/DoRelease/
// DoYield. Threads attach once and pass their ThreadState to every call.
//
// Guarantees (each has a test named after it in gil_test.cc):
//   I1  At most one thread holds the lock (policy `none` has no holder at all).
//   I2  Only the holder releases or yields, and the lock is not re-entrant.
//       Misuse aborts the process with a message naming the thread; it is a
//       programming error, not a recoverable condition.
//   I3  DropRequested() is read without the lock (the eval breaker): a stale
//       read only delays a switch to the next check point.
//   I4  Yield returns with the caller holding the lock again.
//   I5  A drop request may be lost to a race (set just after a holder dropped);
//       the waiter that set it requests it again, so nothing waits forever.
// Waiters block in the kernel (futex or condition variable), never spin for
// long: the machines this runs on have two cores.
// Undefined: destroying the Gil while a thread holds or waits for it, or
// using a ThreadState from a thread other than the one that attached it.
//
//   auto gil = MakeGil("newgil", {.switch_interval_us = 5000});
//   auto me = gil->Attach(Role::kIo, "io");
//   gil->Acquire(*me); if (gil->DropRequested()) gil->Yield(*me); gil->Release(*me);
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gil/clock.h"
#include "gil/histogram.h"

namespace gillab::gil {

// The kernel thread id of the calling thread (for OS priorities and traces).
pid_t CurrentTid();

// What a thread does, for statistics, priorities and traces.
enum class Role : uint8_t { kIo, kCpu, kClient, kOther };
std::string_view RoleName(Role role);
std::optional<Role> ParseRole(std::string_view name);

struct GilOptions {
  // ticket, priority, newgil: how long a waiter waits before asking the holder to drop.
  int64_t switch_interval_us = 5000;
  // mutex: VM instructions between a release and immediate re-acquire (CPython 2 ticks).
  int64_t check_interval = 100;
  // newgil: after a forced drop, the dropper waits until another thread took the lock.
  bool forced_switching = true;
  // Per-thread and lock-wide statistics (and the clock reads they need). Off
  // only to measure what they cost (trace_benchmark.cc); a Gil without stats
  // cannot be traced.
  bool stats = true;
};

// Per-thread counters. Written only by the owning thread (handoffs excepted,
// see below); read by anyone once that thread is done with the lock.
struct ThreadStats {
  uint64_t acquisitions = 0;        // Acquire calls plus the re-acquisition inside each Yield
  uint64_t uncontended = 0;         // of those, Acquires taken by the fast path: waited exactly 0 ns
  uint64_t wait_ns = 0;             // total time from asking for the lock to holding it
  Histogram wait_hist_ns;           // the same, one sample per acquisition
  uint64_t hold_ns = 0;             // total time holding the lock
  uint64_t voluntary_releases = 0;  // Release calls
  uint64_t forced_drops = 0;        // Yield calls: drop requests honoured
  uint64_t yield_requests = 0;      // times this thread, waiting, asked the holder to drop
};

class Gil;
class TraceBuffer;
class TraceRecorder;

// One thread's record with one lock. Policies may subclass it (NewThreadState)
// to keep their per-waiter state beside it.
class ThreadState {
 public:
  virtual ~ThreadState() = default;
  ThreadState(const ThreadState&) = delete;
  ThreadState& operator=(const ThreadState&) = delete;

  Role role() const { return role_; }
  const std::string& name() const { return name_; }
  int index() const { return index_; }  // attach order, 0-based
  pid_t tid() const { return tid_; }
  int lock_priority() const { return lock_priority_.load(std::memory_order_relaxed); }
  const ThreadStats& stats() const { return stats_; }
  // Times the lock passed from this thread to a different one. Counted by the
  // next holder, hence atomic, and shared with the lock so that the count is
  // safe whichever of the two (this state, the Gil) is destroyed first.
  uint64_t handoffs() const { return handoffs_->load(std::memory_order_relaxed); }

 protected:
  ThreadState() = default;

 private:
  friend class Gil;
  Role role_ = Role::kOther;
  std::string name_;
  int index_ = 0;
  pid_t tid_ = 0;
  std::atomic<int> lock_priority_{0};
  std::shared_ptr<std::atomic<uint64_t>> handoffs_ = std::make_shared<std::atomic<uint64_t>>(0);
  ThreadStats stats_;
  int64_t acquired_at_ns_ = 0;
  bool holding_ = false;
  TraceBuffer* trace_ = nullptr;  // this thread's trace events; nullptr when not traced
};

// Lock-wide figures, kept by whoever holds the lock.
struct LockStats {
  uint64_t switches = 0;      // acquisitions by a thread other than the previous holder
  Histogram handoff_ns;       // release (or drop) by one thread to the next holder running
};

class Gil {
 public:
  virtual ~Gil();
  Gil(const Gil&) = delete;
  Gil& operator=(const Gil&) = delete;

  std::string_view name() const { return name_; }
  const GilOptions& options() const { return options_; }
  // Instructions between forced releases for the VM's countdown; 0 means none.
  int64_t check_interval() const { return name_ == "mutex" ? options_.check_interval : 0; }
  // True when at most one thread holds the lock (every policy but `none`): the
  // shared heap may then be accessed plainly (interp/heap.h).
  bool is_exclusive() const { return exclusive(); }

  // Registers the calling thread. The state must be used by that thread only
  // and must outlive every call that names it.
  std::unique_ptr<ThreadState> Attach(Role role, std::string name, int lock_priority = 0);

  void Acquire(ThreadState& t);  // blocks until t holds the lock
  void Release(ThreadState& t);  // t must hold it (I2)
  void Yield(ThreadState& t);    // drop, let a waiter in, take it back (I4)
  // The eval breaker (I3): the holder polls this at check points and yields when set.
  bool DropRequested() const { return drop_request_.load(std::memory_order_relaxed); }
  // Called by t itself; `priority` re-evaluates who should run next.
  void SetLockPriority(ThreadState& t, int priority);
  bool HeldBy(const ThreadState& t) const { return t.holding_; }

  // Lock-wide statistics; read only when no thread uses the lock.
  const LockStats& lock_stats() const { return lock_stats_; }

  // What a stall monitor (stall_monitor.h) sees, from any thread, without
  // taking the lock: a racy snapshot, good enough to say "this hold has lasted
  // too long". `serial` names one hold: it changes with every acquisition
  // (Yield's re-acquisition included), so the same serial seen twice is the
  // same uninterrupted hold. Policy `none` never reports a holder.
  struct HoldSnapshot {
    bool held = false;
    uint64_t serial = 0;
    int holder_index = -1;  // attach index of the holder (AttachedThread)
    int64_t since_ns = 0;   // NowNs() when that hold began; 0 when stats are off
    int waiting = 0;        // threads blocked in Acquire or inside Yield
  };
  HoldSnapshot SnapshotHold() const;
  // The name and role a thread attached with, by attach index; any thread may ask.
  std::pair<std::string, Role> AttachedThread(int index) const;
  // Whether a waiter that wants the lock sets the drop request (every policy
  // but `mutex`, whose holder yields every check_interval instructions
  // unasked). A stall monitor uses it to tell a stuck holder from one that
  // legitimately keeps the lock (e.g. `priority` with only lower-ranked waiters).
  virtual bool RequestsDrops() const { return true; }

  // Records every later-attached thread's waits, holds and drops into
  // `recorder` (trace.h), which must outlive every use of this lock. Call
  // before threads attach; threads attached earlier stay untraced. Throws
  // UsageError when options().stats is off.
  void EnableTrace(TraceRecorder* recorder);
  TraceRecorder* trace_recorder() const { return trace_recorder_; }

 protected:
  Gil(std::string name, GilOptions options);

  virtual std::unique_ptr<ThreadState> NewThreadState();
  // The fast path: takes the lock and returns true if that needs no waiting
  // at all (nobody holds it and nobody is queued), else false without side
  // effects. Acquire tries it first; when it succeeds the wait is exactly 0
  // and no clock is read for it. Default: always false.
  virtual bool DoTryAcquire(ThreadState&) { return false; }
  virtual void DoAcquire(ThreadState& t) = 0;
  virtual void DoRelease(ThreadState& t) = 0;
  // Default: DoRelease then DoAcquire. Policies that must order the hand-off
  // (ticket: go to the back of the queue; newgil: forced switching) override it.
  virtual void DoYield(ThreadState& t);
  virtual void OnPriorityChanged(ThreadState&) {}
  // false for `none`: no holder, so no I1/I2 bookkeeping.
  virtual bool exclusive() const { return true; }

  void RequestDrop(ThreadState& waiter);  // sets the eval breaker, counts a yield request
  void ClearDrop() { drop_request_.store(false, std::memory_order_relaxed); }
  // The thread holding the lock, or nullptr. Valid inside DoAcquire for comparisons
  // (a racy read: it may change before the caller acts on it).
  const ThreadState* holder() const { return holder_.load(std::memory_order_acquire); }

 private:
  static constexpr int64_t kNoWait = -1;  // AfterAcquire: the fast path, waited 0 ns
  void AfterAcquire(ThreadState& t, int64_t asked_ns);
  void BeforeRelease(ThreadState& t, const char* what, bool forced);

  std::string name_;
  GilOptions options_;
  std::atomic<bool> drop_request_{false};
  std::atomic<ThreadState*> holder_{nullptr};
  // For SnapshotHold: written by each new holder (plain stores, no
  // read-modify-write: only the holder writes them), read by anyone.
  std::atomic<uint64_t> hold_serial_{0};
  std::atomic<int> holder_index_{-1};
  std::atomic<int64_t> holder_since_ns_{0};
  std::atomic<int> waiting_{0};  // slow paths only: the fast path never touches it
  std::atomic<int> attached_{0};
  mutable std::mutex attached_mu_;                           // guards attached_threads_
  std::vector<std::pair<std::string, Role>> attached_threads_;  // by attach index
  // The previous holder, by attach index (never by pointer: its state may be
  // gone), and its hand-off counter. Guarded by the lock itself.
  int last_holder_index_ = -1;
  std::shared_ptr<std::atomic<uint64_t>> last_holder_handoffs_;
  int64_t released_at_ns_ = 0;                // guarded by the lock itself
  LockStats lock_stats_;
  TraceRecorder* trace_recorder_ = nullptr;  // set before threads attach, then read-only
};

// The policy names, in the order `gillab list` prints them.
const std::vector<std::string>& PolicyNames();
// One line describing a policy, for `gillab list`.
std::string_view PolicySummary(std::string_view name);
// Throws UsageError for an unknown name or invalid options.
std::unique_ptr<Gil> MakeGil(std::string_view name, const GilOptions& options = {});

}  // namespace gillab::gil
