// newgil_lock.h — policy `newgil`: the GIL of CPython 3.2 to 3.12
// (Python/ceval_gil.h, Antoine Pitrou's "new GIL"), transcribed.
//
// Notes about the implementation
// ------------------------------
// State, as in CPython: a mutex, a condition variable `cond` that waiters
// sleep on, `switch_cond` for forced switching, the `locked` flag, a
// `switch_number` counting changes of holder, and `last_holder`. All of it is
// guarded by the one mutex (CPython also has a separate switch_mutex; one
// mutex gives the same orderings here). `waiters_` counts threads inside the
// wait loop, which CPython does not need (see forced switching).
//
// Who requests a yield, and when: a waiter sleeps on `cond` for
// switch_interval_us. If it timed out, the lock is still taken, and
// switch_number has not moved since it started that wait, it sets the drop
// request; otherwise it simply waits another interval. So a holder is asked
// to drop only after a full interval in which nobody else got the lock. The
// new holder clears the request when it takes the lock.
//
// What a hand-off guarantees: a drop signals `cond`, which wakes one waiter;
// whoever gets the mutex first takes the lock (no ordering among waiters).
// Forced switching (options.forced_switching, on by default as in CPython):
// a thread dropping in answer to a request (Yield, or a Release while the
// request is set, as CPython's drop_gil does on every drop with the request
// set) waits on `switch_cond` until another thread has taken the lock, so it
// cannot take it straight back. It waits only when a thread is inside the wait
// loop; that thread will take the lock, so the wait always ends. Yield with
// nobody waiting drops and takes the lock back at once.
//
// Races accepted (CPython's): the request is read without the lock (I3); a
// waiter may set it just after the holder dropped for another reason, so the
// next holder may see a stale request and switch one check point early, or
// the request is cleared by the next holder while the waiter still waits — it
// asks again after its next interval (I5).
#pragma once

#include <mutex>

#include "gil/cond_var.h"
#include "gil/gil.h"

namespace gillab::gil {

class NewGilLock final : public Gil {
 public:
  explicit NewGilLock(GilOptions options) : Gil("newgil", options) {}
  // Threads inside the wait loop right now (for tests and diagnostics).
  int waiting() const;

 protected:
  bool DoTryAcquire(ThreadState& t) override;
  void DoAcquire(ThreadState& t) override;
  void DoRelease(ThreadState& t) override;
  void DoYield(ThreadState& t) override;

 private:
  // The end of take_gil, once `locked` is false; caller holds mu_.
  void TakeLocked(ThreadState& t);
  // CPython's drop_gil; `requested`: the drop answers a drop request.
  void Drop(ThreadState& t, bool requested);

  mutable std::mutex mu_;
  CondVar cond_;         // condition variables behind the platform seam (cond_var.h)
  CondVar switch_cond_;
  bool locked_ = false;
  uint64_t switch_number_ = 0;
  int last_holder_index_ = -1;  // ThreadState::index(): compared, never dereferenced
  int waiters_ = 0;
  int switch_waiters_ = 0;  // droppers waiting on switch_cond_ (forced switching)
};

}  // namespace gillab::gil
