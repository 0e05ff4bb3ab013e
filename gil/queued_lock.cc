// queued_lock.cc — parked waiters and direct hand-off for `ticket` and `priority`.
//
// Mechanics (the behavioural notes are in ticket_lock.h / priority_lock.h):
// - mu_ guards the queue and the owner. It is held for a few instructions per
//   operation and never across a sleep, so it is not where threads wait.
// - Each thread parks on its own FutexWord. Release pops the best waiter,
//   makes it the owner while still under mu_ (the lock never becomes free when
//   somebody waits, so a newcomer cannot barge in), then, outside mu_, stores
//   kGranted into that waiter's word and wakes exactly that thread. The woken
//   thread returns straight away: it needs no mutex to start running.
// - !locked_ implies an empty queue, so the fast path is one uncontended
//   mutex round trip.
// - Drop requests are set and cleared under mu_: a waiter sets one only after
//   checking, under mu_, that it is still queued and that no hand-off happened
//   during its interval (switch_number_); a hand-off clears it under mu_. So a
//   request always concerns the current owner; the only race left is I3's
//   (the owner reads the flag without the lock and sees it one check point late).
#include "gil/queued_lock.h"

#include <algorithm>

namespace gillab::gil {

namespace {
constexpr uint32_t kWaiting = 0;
constexpr uint32_t kGranted = 1;
constexpr uint32_t kRecheck = 2;  // the owner's priority dropped: re-evaluate now
}  // namespace

struct QueuedLock::Waiter : ThreadState {
  FutexWord word{kGranted};
  // Guarded by mu_:
  bool queued = false;
  int rank = 0;      // snapshot taken when it queued
  uint64_t seq = 0;  // arrival ticket
};

QueuedLock::QueuedLock(std::string name, GilOptions options) : Gil(std::move(name), options) {}

int QueuedLock::waiting() const {
  std::lock_guard lock(mu_);
  return static_cast<int>(queue_.size());
}

std::unique_ptr<ThreadState> QueuedLock::NewThreadState() { return std::make_unique<Waiter>(); }

void QueuedLock::EnqueueLocked(Waiter& w) {
  w.rank = RankOf(w);
  w.seq = next_seq_++;
  w.queued = true;
  w.word.Set(kWaiting);
  auto pos = std::upper_bound(queue_.begin(), queue_.end(), &w, [](const Waiter* a, const Waiter* b) {
    return a->rank != b->rank ? a->rank > b->rank : a->seq < b->seq;
  });
  queue_.insert(pos, &w);
}

QueuedLock::Waiter* QueuedLock::PopNextLocked() {
  Waiter* next = queue_.front();
  queue_.erase(queue_.begin());
  next->queued = false;
  owner_ = next;
  owner_rank_ = next->rank;
  switch_number_++;
  ClearDrop();  // the request was for the previous owner; the new one gets a full interval
  return next;
}

bool QueuedLock::TakeFreeLocked(Waiter& w) {
  if (locked_) return false;
  locked_ = true;
  owner_ = &w;
  owner_rank_ = RankOf(w);
  if (DropRequested()) ClearDrop();  // stale: nobody is queued
  return true;
}

bool QueuedLock::DoTryAcquire(ThreadState& ts) {
  std::lock_guard lock(mu_);
  return TakeFreeLocked(static_cast<Waiter&>(ts));
}

void QueuedLock::DoAcquire(ThreadState& ts) {
  auto& w = static_cast<Waiter&>(ts);
  std::unique_lock lock(mu_);
  if (TakeFreeLocked(w)) return;  // freed since DoTryAcquire looked
  EnqueueLocked(w);
  // priority: a waiter that outranks the owner does not wait for an interval.
  if (w.rank > owner_rank_) RequestDrop(w);
  const uint64_t seen_switch = switch_number_;
  lock.unlock();
  WaitForGrant(w, seen_switch);
}

void QueuedLock::DoRelease(ThreadState&) {
  Waiter* next = nullptr;
  {
    std::lock_guard lock(mu_);
    if (queue_.empty()) {
      locked_ = false;
      owner_ = nullptr;
      return;
    }
    next = PopNextLocked();
  }
  next->word.Set(kGranted);
  next->word.Wake();
}

void QueuedLock::DoYield(ThreadState& ts) {
  auto& w = static_cast<Waiter&>(ts);
  Waiter* next = nullptr;
  uint64_t seen_switch = 0;
  {
    std::lock_guard lock(mu_);
    const int my_rank = RankOf(w);
    // Keep the lock when nobody waits or when w still outranks every waiter:
    // a stale request must not hand the lock to a lower-ranked thread.
    if (queue_.empty() || queue_.front()->rank < my_rank) {
      owner_rank_ = my_rank;
      ClearDrop();
      return;
    }
    next = PopNextLocked();
    EnqueueLocked(w);  // to the back of its rank: round-robin among equals
    seen_switch = switch_number_;
  }
  next->word.Set(kGranted);
  next->word.Wake();
  WaitForGrant(w, seen_switch);
}

void QueuedLock::WaitForGrant(Waiter& w, uint64_t seen_switch) {
  const int64_t interval_ns = options().switch_interval_us * 1000;
  // The first interval is timed relative to now without reading the clock:
  // most waits end in a grant well within it, and the hand-off is the hot path.
  bool timed_out = false;
  uint32_t word = w.word.WaitOnce(kWaiting, interval_ns, &timed_out);
  int64_t deadline_ns = 0;  // set once the clock has had to be read
  for (;;) {
    if (word == kGranted) return;
    if (word == kWaiting && !timed_out) {
      // A spurious wake-up in the first interval: go on against the clock
      // (this restarts the interval, which only delays a request).
      if (deadline_ns == 0) deadline_ns = NowNs() + interval_ns;
    } else {
      std::unique_lock lock(mu_);
      if (!w.queued) {
        // Already handed the lock; the releaser stores kGranted right after mu_.
        lock.unlock();
        while (w.word.WaitWhile(kWaiting, 0) != kGranted) {
          w.word.CompareExchange(kRecheck, kWaiting);  // a recheck raced with the grant
        }
        return;
      }
      if (w.word.CompareExchange(kRecheck, kWaiting)) {
        // The owner lowered its priority below ours: ask at once.
        if (w.rank > owner_rank_) RequestDrop(w);
        if (deadline_ns == 0) deadline_ns = NowNs() + interval_ns;  // keep (about) the interval
      } else {
        // The interval ran out. Ask only if nothing was handed over meanwhile
        // (the new owner deserves its own full interval) and only if we may
        // run before the owner: a lower-ranked waiter has no claim on the lock.
        if (switch_number_ == seen_switch && w.rank >= owner_rank_) RequestDrop(w);
        seen_switch = switch_number_;
        deadline_ns = NowNs() + interval_ns;
      }
    }
    word = w.word.WaitWhile(kWaiting, deadline_ns);
    timed_out = word == kWaiting;
  }
}

void QueuedLock::OnPriorityChanged(ThreadState& ts) {
  auto& w = static_cast<Waiter&>(ts);
  std::lock_guard lock(mu_);
  if (owner_ != &w) return;  // a non-holder's new priority counts from its next queueing
  owner_rank_ = RankOf(w);
  if (!queue_.empty() && queue_.front()->rank > owner_rank_) {
    // Let the waiter that now outranks us ask for the drop itself (its own
    // yield_requests counter is written only by its own thread).
    Waiter* top = queue_.front();
    if (top->word.CompareExchange(kWaiting, kRecheck)) top->word.Wake();
  }
}

}  // namespace gillab::gil
