// mutex_lock.h — policy `mutex`: CPython 2's "old GIL", a plain mutex.
//
// Notes about the implementation
// ------------------------------
// State: one futex mutex word (Drepper's "Futexes are tricky", mutex #2, the
// algorithm of glibc's default mutex): 0 free, 1 locked, 2 locked and
// somebody may sleep on it. Written out here rather than std::mutex so that
// its sleeps go through the platform seam (platform.h) and the simulator
// can run this policy too; same fast path (one CAS), same barging.
//
// Who requests a yield, and when: nobody. The drop request is never set. The
// VM counts check_interval instructions ("ticks") and then calls Yield, which
// unlocks the mutex and locks it again at once.
//
// What a hand-off guarantees: nothing. The unlock wakes one sleeping waiter,
// but the yielding thread is still running and usually re-locks before the
// woken thread has been scheduled; the OS decides who runs. This is the
// behaviour Beazley measured on CPython 2 (a CPU thread starves an I/O thread
// on a multicore machine), kept on purpose.
//
// Races accepted: none of its own; the unfairness above is the model.
#pragma once

#include "gil/futex.h"
#include "gil/gil.h"

namespace gillab::gil {

class MutexLock final : public Gil {
 public:
  explicit MutexLock(GilOptions options) : Gil("mutex", options) {}

 protected:
  bool DoTryAcquire(ThreadState&) override { return word_.CompareExchange(kFree, kLocked); }
  void DoAcquire(ThreadState&) override {
    if (word_.CompareExchange(kFree, kLocked)) return;
    // Announce a sleeper, then sleep until a release leaves the word free.
    while (word_.Exchange(kContended) != kFree) word_.WaitWhile(kContended, 0);
  }
  void DoRelease(ThreadState&) override {
    if (word_.Exchange(kFree) == kContended) word_.Wake();
  }
  // DoYield: the default, DoRelease then DoAcquire, is exactly the old GIL.
  // Traits (policies.cc): requests no drops, uses ticks.

 private:
  static constexpr uint32_t kFree = 0;
  static constexpr uint32_t kLocked = 1;
  static constexpr uint32_t kContended = 2;
  FutexWord word_{kFree};
};

}  // namespace gillab::gil
