// priority_lock.h — policy `priority`: waiters served by (lock priority desc,
// arrival); a higher-priority waiter preempts at the holder's next check point.
// Models Beazley's priority GIL proposal (sys.set_priority).
//
// Notes about the implementation
// ------------------------------
// State: as `ticket` (QueuedLock), with each waiter ranked by the lock
// priority it had when it queued, and the owner's current priority.
//
// Who requests a yield, and when:
// - a waiter that outranks the owner requests a drop at once, as it queues;
// - a waiter ranked equal to the owner requests after switch_interval_us
//   without a hand-off, and again after each further interval (round-robin
//   among equals, exactly as `ticket`);
// - a waiter ranked below the owner never requests: it runs when every
//   higher thread has released or blocked (starvation is the policy's point);
// - when the owner lowers its own priority (SetLockPriority, e.g. the VM's
//   set_priority native) below the best waiter, that waiter is woken to
//   re-evaluate and requests the drop itself.
//
// What a hand-off guarantees: Release and Yield give the lock to the best
// waiter (highest priority, earliest arrival among equals) and wake only that
// thread. On Yield the holder re-queues with its current priority and keeps
// the lock if it still outranks every waiter, so a stale request never hands
// the lock to a lower-priority thread; it hands off to an equal one.
//
// Races accepted: those of `ticket` (I3, I5). In addition a waiter's rank is
// a snapshot taken when it queued; a thread changes its priority only while
// it runs, so the snapshot is never stale while it waits.
#pragma once

#include "gil/queued_lock.h"

namespace gillab::gil {

class PriorityLock final : public QueuedLock {
 public:
  explicit PriorityLock(GilOptions options) : QueuedLock("priority", options) {}

 protected:
  int RankOf(const ThreadState& t) const override { return t.lock_priority(); }
};

}  // namespace gillab::gil
