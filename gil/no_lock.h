// no_lock.h — policy `none`: no lock at all, the free-threaded upper bound (PEP 703).
//
// Notes about the implementation
// ------------------------------
// State: none. Acquire, Release and Yield only keep the calling thread's own
// statistics (Gil does that); there is no holder, so I1/I2 are not checked
// and lock-wide statistics stay empty.
// Who requests a yield: nobody; DropRequested() is always false.
// What a hand-off guarantees: there is no hand-off; every thread runs at once.
// Races accepted: all of them, which is why `none` is only valid for
// workloads that share no mutable state.
#pragma once

#include "gil/gil.h"

namespace gillab::gil {

class NoLock final : public Gil {
 public:
  explicit NoLock(GilOptions options) : Gil("none", options) {}

 protected:
  bool DoTryAcquire(ThreadState&) override { return true; }
  void DoAcquire(ThreadState&) override {}
  void DoRelease(ThreadState&) override {}
  void DoYield(ThreadState&) override {}
  // Traits (policies.cc): not exclusive.
};

}  // namespace gillab::gil
