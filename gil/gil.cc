// gil.cc — the policy-independent half of the lock: the contract checks (I1,
// I2) and every statistic, kept here once so that the five policies only
// decide who runs next.
//
// Ordering that the bookkeeping relies on: a thread's holder_/stats writes on
// the way out happen before the policy's DoRelease (which publishes them to the
// next holder through the policy's own synchronisation), and the next holder's
// writes happen after its DoAcquire returned. Lock-wide fields (last_holder_*,
// released_at_ns_, lock_stats_) are therefore "guarded by the lock itself".
// Policy `none` has no such ordering, so it touches none of the lock-wide
// fields: only the calling thread's own record.
//
// Tracing (trace.h) hooks into the same two places, AfterAcquire and
// BeforeRelease, reusing their clock reads: when a thread is not traced its
// trace_ is nullptr and the hook is one branch. With options().stats off the
// clock is not read at all and only the contract checks remain (benchmarks).
//
// Clock reads, most of the cost of the statistics (NowNs(), clock.h: a bare
// TSC read, ~9 ns on the reference VM, where clock_gettime costs ~21 ns):
// exactly one per lock transition. An Acquire whose fast path (DoTryAcquire)
// succeeds waited 0 ns by definition, so it reads the clock once, for the
// start of the hold; only an Acquire that has to wait also reads it before
// waiting. A Yield starts its wait at the instant its hold ended, reusing
// that read. So an uncontended acquire/release pair costs two reads (hold
// start, hold end), a contended acquisition three.
//
// Stall monitoring (SnapshotHold) costs three relaxed stores per acquisition
// and, on the slow paths only, the waiting_ counter.
#include "gil/gil.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "gil/error.h"
#include "gil/trace.h"

namespace gillab::gil {

pid_t CurrentTid() {
  // gettid() is cheap but not free; a thread's id never changes, so cache it.
  thread_local const pid_t tid = static_cast<pid_t>(syscall(SYS_gettid));
  return tid;
}

std::string_view RoleName(Role role) {
  switch (role) {
    case Role::kIo: return "io";
    case Role::kCpu: return "cpu";
    case Role::kClient: return "client";
    case Role::kOther: return "other";
  }
  return "other";
}

std::optional<Role> ParseRole(std::string_view name) {
  if (name == "io") return Role::kIo;
  if (name == "cpu") return Role::kCpu;
  if (name == "client") return Role::kClient;
  if (name == "other") return Role::kOther;
  return std::nullopt;
}

namespace {

// I2 violations are programming errors: say which thread and stop at once,
// before the lock's state can be corrupted any further.
[[noreturn]] void Misuse(const char* what, const ThreadState& t) {
  std::fprintf(stderr, "gillab: gil misuse: %s by thread %s\n", what, t.name().c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace

Gil::Gil(std::string name, GilOptions options)
    : name_(std::move(name)), options_(options), traits_(PolicyTraitsOf(name_)) {}

Gil::~Gil() = default;

std::unique_ptr<ThreadState> Gil::NewThreadState() {
  return std::unique_ptr<ThreadState>(new ThreadState());
}

std::unique_ptr<ThreadState> Gil::Attach(Role role, std::string name, int lock_priority) {
  std::unique_ptr<ThreadState> t = NewThreadState();
  t->role_ = role;
  t->name_ = std::move(name);
  t->index_ = attached_.fetch_add(1, std::memory_order_relaxed);
  t->tid_ = CurrentTid();
  t->lock_priority_.store(lock_priority, std::memory_order_relaxed);
  {
    std::lock_guard lock(attached_mu_);
    if (attached_threads_.size() <= static_cast<size_t>(t->index_)) attached_threads_.resize(t->index_ + 1);
    attached_threads_[t->index_] = {t->name_, role};
  }
  if (trace_recorder_ != nullptr) t->trace_ = trace_recorder_->NewBuffer(role, t->name_, t->tid_, t->index_, NowNs());
  return t;
}

void Gil::Acquire(ThreadState& t) {
  if (t.holding_ && exclusive()) Misuse("re-entrant Acquire", t);
  if (DoTryAcquire(t)) {
    AfterAcquire(t, kNoWait);
    return;
  }
  const int64_t asked_ns = options_.stats ? NowNs() : 0;
  waiting_.fetch_add(1, std::memory_order_relaxed);
  DoAcquire(t);
  waiting_.fetch_sub(1, std::memory_order_relaxed);
  AfterAcquire(t, asked_ns);
}

void Gil::Release(ThreadState& t) {
  BeforeRelease(t, "Release by a non-holder", /*forced=*/false);
  t.stats_.voluntary_releases++;
  DoRelease(t);
}

void Gil::Yield(ThreadState& t) {
  BeforeRelease(t, "Yield by a non-holder", /*forced=*/true);
  t.stats_.forced_drops++;
  // The wait starts where the hold ended: reuse that clock read (the lock is
  // still ours at the policy level, so released_at_ns_ is stable here).
  const int64_t asked_ns = !options_.stats ? 0 : exclusive() ? released_at_ns_ : NowNs();
  waiting_.fetch_add(1, std::memory_order_relaxed);
  DoYield(t);
  waiting_.fetch_sub(1, std::memory_order_relaxed);
  AfterAcquire(t, asked_ns);
}

void Gil::DoYield(ThreadState& t) {
  DoRelease(t);
  DoAcquire(t);
}

void Gil::SetLockPriority(ThreadState& t, int priority) {
  t.lock_priority_.store(priority, std::memory_order_relaxed);
  OnPriorityChanged(t);
}

void Gil::EnableTrace(TraceRecorder* recorder) {
  if (recorder != nullptr && !options_.stats) throw UsageError("a lock without statistics cannot be traced");
  if (recorder != nullptr) recorder->DescribeLock(name_, options_);
  trace_recorder_ = recorder;
}

void Gil::RequestDrop(ThreadState& waiter) {
  drop_request_.store(true, std::memory_order_relaxed);
  waiter.stats_.yield_requests++;
  if (waiter.trace_ != nullptr) waiter.trace_->OnDropRequest(NowNs());
}

void Gil::AfterAcquire(ThreadState& t, int64_t asked_ns) {
  if (!options_.stats) [[unlikely]] {
    t.holding_ = true;
    if (!exclusive()) return;
    if (holder_.exchange(&t, std::memory_order_acq_rel) != nullptr) {
      Misuse("Acquire while another thread holds the lock (I1)", t);
    }
    holder_index_.store(t.index_, std::memory_order_relaxed);
    hold_serial_.store(hold_serial_.load(std::memory_order_relaxed) + 1, std::memory_order_release);
    return;
  }
  const int64_t now_ns = NowNs();
  ThreadStats& s = t.stats_;
  if (asked_ns == kNoWait) {
    asked_ns = now_ns;
    s.uncontended++;
  }
  const int64_t wait_ns = now_ns - asked_ns;
  s.acquisitions++;
  s.wait_ns += static_cast<uint64_t>(wait_ns);
  s.wait_hist_ns.Record(wait_ns);
  t.acquired_at_ns_ = now_ns;
  t.holding_ = true;
  if (t.trace_ != nullptr) [[unlikely]] t.trace_->OnAcquired(asked_ns, now_ns);
  if (!exclusive()) return;

  // I1: a second holder means the policy is broken; one load, always checked.
  ThreadState* previous = holder_.exchange(&t, std::memory_order_acq_rel);
  if (previous != nullptr) Misuse("Acquire while another thread holds the lock (I1)", t);
  holder_index_.store(t.index_, std::memory_order_relaxed);
  holder_since_ns_.store(now_ns, std::memory_order_relaxed);
  hold_serial_.store(hold_serial_.load(std::memory_order_relaxed) + 1, std::memory_order_release);
  if (last_holder_index_ != t.index_) {
    if (last_holder_index_ >= 0) {
      lock_stats_.switches++;
      lock_stats_.handoff_ns.Record(now_ns - released_at_ns_);  // two threads' clocks: Record clamps at 0
      // The previous holder may have finished and freed its state: the
      // counter is shared, so this is safe either way.
      last_holder_handoffs_->fetch_add(1, std::memory_order_relaxed);
    }
    last_holder_index_ = t.index_;
    last_holder_handoffs_ = t.handoffs_;
  }
}

void Gil::BeforeRelease(ThreadState& t, const char* what, bool forced) {
  if (!options_.stats) [[unlikely]] {
    if (exclusive()) {
      if (!t.holding_ || holder_.load(std::memory_order_relaxed) != &t) Misuse(what, t);
      holder_.store(nullptr, std::memory_order_release);
    }
    t.holding_ = false;
    return;
  }
  const int64_t now_ns = NowNs();
  if (exclusive()) {
    if (!t.holding_ || holder_.load(std::memory_order_relaxed) != &t) Misuse(what, t);
    holder_.store(nullptr, std::memory_order_release);
    released_at_ns_ = now_ns;
  } else if (!t.holding_) {
    return;  // `none`: nothing is held, so there is no hold time to count
  }
  t.stats_.hold_ns += static_cast<uint64_t>(now_ns - t.acquired_at_ns_);
  t.holding_ = false;
  if (t.trace_ != nullptr) [[unlikely]] t.trace_->OnReleased(t.acquired_at_ns_, now_ns, forced);
}

Gil::HoldSnapshot Gil::SnapshotHold() const {
  HoldSnapshot h;
  if (!exclusive()) return h;
  h.serial = hold_serial_.load(std::memory_order_acquire);
  h.held = holder_.load(std::memory_order_acquire) != nullptr;
  h.holder_index = holder_index_.load(std::memory_order_relaxed);
  h.since_ns = holder_since_ns_.load(std::memory_order_relaxed);
  h.waiting = waiting_.load(std::memory_order_relaxed);
  // A new hold began while we looked: the fields may mix two holds, and the
  // lock evidently moved, so there is nothing stuck to report.
  if (hold_serial_.load(std::memory_order_acquire) != h.serial) h.held = false;
  if (!options_.stats) h.since_ns = 0;
  return h;
}

std::pair<std::string, Role> Gil::AttachedThread(int index) const {
  std::lock_guard lock(attached_mu_);
  if (index < 0 || static_cast<size_t>(index) >= attached_threads_.size()) return {"?", Role::kOther};
  return attached_threads_[index];
}

}  // namespace gillab::gil
