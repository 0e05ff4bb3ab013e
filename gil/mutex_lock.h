// mutex_lock.h — policy `mutex`: CPython 2's "old GIL", a plain mutex.
//
// Notes about the implementation
// ------------------------------
// State: one std::mutex (a glibc futex mutex). Nothing else.
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

#include <mutex>

#include "gil/gil.h"

namespace gillab::gil {

class MutexLock final : public Gil {
 public:
  explicit MutexLock(GilOptions options) : Gil("mutex", options) {}

 protected:
  bool DoTryAcquire(ThreadState&) override { return mu_.try_lock(); }
  void DoAcquire(ThreadState&) override { mu_.lock(); }
  void DoRelease(ThreadState&) override { mu_.unlock(); }
  // DoYield: the default, DoRelease then DoAcquire, is exactly the old GIL.
  // Traits (policies.cc): requests no drops, uses ticks.

 private:
  std::mutex mu_;
};

}  // namespace gillab::gil
