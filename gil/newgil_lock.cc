// newgil_lock.cc — CPython's take_gil / drop_gil; see newgil_lock.h for the notes.
#include "gil/newgil_lock.h"


namespace gillab::gil {

int NewGilLock::waiting() const {
  std::lock_guard lock(mu_);
  return waiters_;
}

void NewGilLock::DoAcquire(ThreadState& t) {
  std::unique_lock lock(mu_);
  if (locked_) {
    const int64_t interval_ns = options().switch_interval_us * 1000;
    waiters_++;
    while (locked_) {
      const uint64_t saved_switch_number = switch_number_;
      const bool timed_out = cond_.WaitForNs(lock, interval_ns);
      // Timed out and nobody got the lock meanwhile: time to ask the holder.
      if (timed_out && locked_ && switch_number_ == saved_switch_number) RequestDrop(t);
    }
    waiters_--;
  }
  TakeLocked(t);
}

bool NewGilLock::DoTryAcquire(ThreadState& t) {
  std::lock_guard lock(mu_);
  if (locked_) return false;
  TakeLocked(t);
  return true;
}

void NewGilLock::TakeLocked(ThreadState& t) {
  locked_ = true;
  if (last_holder_index_ != t.index()) {
    last_holder_index_ = t.index();
    switch_number_++;
  }
  // Forced switching: the dropper may now take it again. Signalled only when
  // a dropper waits (CPython signals always; with nobody waiting that is a
  // no-op, and skipping it keeps the uncontended path free of the seam).
  if (switch_waiters_ > 0) switch_cond_.NotifyOne();
  if (DropRequested()) ClearDrop();
}

void NewGilLock::Drop(ThreadState& t, bool requested) {
  std::unique_lock lock(mu_);
  locked_ = false;
  if (waiters_ > 0) cond_.NotifyOne();  // waiters_ > 0 exactly when a thread may sleep on cond_
  if (requested && options().forced_switching && waiters_ > 0) {
    ClearDrop();
    // Not switched yet => wait (a waiter is in the loop above and will take it).
    switch_waiters_++;
    while (last_holder_index_ == t.index()) switch_cond_.Wait(lock);
    switch_waiters_--;
  }
}

void NewGilLock::DoRelease(ThreadState& t) { Drop(t, DropRequested()); }

void NewGilLock::DoYield(ThreadState& t) {
  Drop(t, /*requested=*/true);
  DoAcquire(t);
}

}  // namespace gillab::gil
