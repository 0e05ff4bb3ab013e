// queued_lock.h — the mechanism `ticket` and `priority` share: an explicit
// queue of parked waiters and a direct hand-off to the one that runs next.
//
// The two policies differ only in how they rank a waiter (RankOf): `ticket`
// ranks everybody equal, so the queue is pure arrival order; `priority` ranks
// by the thread's lock priority. Everything else (the queue, the drop
// requests, the hand-off) is this one piece of code, so a difference between
// their results comes from the ranking and nothing else.
// The notes on behaviour and races are in ticket_lock.h and priority_lock.h;
// the mechanics are described beside the code in queued_lock.cc.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "gil/futex.h"
#include "gil/gil.h"

namespace gillab::gil {

class QueuedLock : public Gil {
 public:
  // Threads parked in the queue right now (for tests and diagnostics).
  int waiting() const;

 protected:
  QueuedLock(std::string name, GilOptions options);

  // Larger runs first; equal ranks run in arrival order.
  virtual int RankOf(const ThreadState& t) const = 0;

  std::unique_ptr<ThreadState> NewThreadState() override;
  bool DoTryAcquire(ThreadState& t) override;
  void DoAcquire(ThreadState& t) override;
  void DoRelease(ThreadState& t) override;
  void DoYield(ThreadState& t) override;
  void OnPriorityChanged(ThreadState& t) override;

 private:
  struct Waiter;
  // Makes w the owner if the lock is free (then the queue is empty); caller holds mu_.
  bool TakeFreeLocked(Waiter& w);
  // Takes the next waiter off the queue and makes it the owner; caller holds mu_.
  Waiter* PopNextLocked();
  void EnqueueLocked(Waiter& w);
  // Parks w until it is handed the lock, asking the owner to drop as the policy says.
  void WaitForGrant(Waiter& w, uint64_t seen_switch);

  mutable std::mutex mu_;  // guards everything below (not the futex words: see Waiter)
  bool locked_ = false;
  Waiter* owner_ = nullptr;  // the holder, or the waiter already handed the lock
  int owner_rank_ = 0;
  uint64_t switch_number_ = 0;  // hand-offs so far: a waiter's "did anything happen?"
  uint64_t next_seq_ = 0;       // arrival tickets
  std::vector<Waiter*> queue_;  // best first: rank desc, then seq asc
};

}  // namespace gillab::gil
