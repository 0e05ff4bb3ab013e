// ticket_lock.h — policy `ticket`: a fair FIFO lock with timed drop requests.
//
// Notes about the implementation
// ------------------------------
// State: the queue of parked waiters in arrival order, the owner, and a
// switch counter (QueuedLock). Every waiter has rank 0, so the queue is pure
// arrival order: the "ticket" is the arrival sequence number.
//
// Who requests a yield, and when: a waiter that has not been served within
// switch_interval_us of its arrival (or of the last hand-off, whichever is
// later) sets the drop request, and sets it again after every further
// interval in which no hand-off happened (I5). The holder honours it at its
// next check point by calling Yield. A waiter never requests before a new
// holder has had one full interval: hand-offs clear the request.
//
// What a hand-off guarantees: strictly arrival order. Release and Yield give
// the lock directly to the head of the queue (the lock is never free while
// somebody waits, so nobody can barge in), and wake that one thread only. A
// yielding holder goes to the back of the queue and is served after everybody
// who was waiting when it yielded. Yield with nobody waiting returns at once.
//
// Races accepted: the holder reads the drop request without the lock (I3); a
// request made just before a hand-off is cleared with it, and its waiter asks
// again after its interval (I5). Both cost at most one interval, never
// correctness.
#pragma once

#include "gil/queued_lock.h"

namespace gillab::gil {

class TicketLock final : public QueuedLock {
 public:
  explicit TicketLock(GilOptions options) : QueuedLock("ticket", options) {}

 protected:
  int RankOf(const ThreadState&) const override { return 0; }
};

}  // namespace gillab::gil
