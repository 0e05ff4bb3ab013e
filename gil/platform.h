// platform.h — the one door through which the lock policies reach time,
// sleeping and waking: the real machine (TSC clock, futexes, condition
// variables) or a simulator's event queue (sim/, design §13).
//
// Every policy sleeps and wakes only through FutexWord (futex.h) and CondVar
// (cond_var.h) and reads time only through NowNs() (clock.h); a spin-wait's
// backoff (the stm model's: spin, yield, short sleep) asks Pause. Each of
// those asks ThreadPlatform() on its slow path: nullptr, the case of every thread
// of a real run, means the real machine; a thread that a simulator runs has
// its Platform installed (SetThreadPlatform) and every wait, wake and clock
// read of that thread goes to it instead. So there is one copy of each
// policy, and the simulator runs exactly the code a real run runs (LinSched's
// "same code" principle).
//
// Cost on the real fast paths: none on an uncontended acquire/release or a
// check point except CondVar::NotifyOne/NotifyAll (one thread-local load and
// a predictable branch; newgil's take and the stm's inevitable token call
// them). Pause is asked only once a spin-wait has failed its first check. The clock's fast path is
// untouched: a simulated thread's TSC anchor stays empty, so its every read
// falls to SlowNowNs(), which asks the platform first.
//
// Contract for an implementation (the simulator): the calls come from the
// thread the platform was installed on; a wait returns only after a wake for
// the same address, after the deadline, or spuriously (callers re-check, as
// with real futexes); a wake before the waiter has slept is not lost as long
// as the waiter re-checks its word/predicate (the callers do). Pause lets
// the given time pass on the caller's clock and lets the other threads run
// meanwhile (a spinning thread must not stop time: the one it waits for has
// to be able to move).
//
//   gil::SetThreadPlatform(&simulator_thread);   // in a simulated thread, before any lock call
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>

namespace gillab::gil {

class Platform {
 public:
  virtual ~Platform() = default;

  // The thread's clock, in ns (virtual in a simulator).
  virtual int64_t NowNs() = 0;
  // Sleeps while `word` holds `value`, until deadline_ns on NowNs()'s clock
  // (<= 0: no deadline). Returns true when the deadline passed.
  virtual bool WaitOnWord(const std::atomic<uint32_t>& word, uint32_t value, int64_t deadline_ns) = 0;
  // Wakes up to `count` threads sleeping on `word` (by address).
  virtual void WakeWord(const void* word, int count) = 0;
  // Condition variable `cv` (by address): releases `lock`, sleeps until
  // notified or timeout_ns passed (< 0: no timeout), re-takes `lock`.
  // Returns true when it timed out.
  virtual bool WaitOnCondition(const void* cv, std::unique_lock<std::mutex>& lock, int64_t timeout_ns) = 0;
  virtual void NotifyCondition(const void* cv, int count) = 0;

  // How a spin-wait backs off between two checks of what it waits for.
  enum class PauseKind : uint8_t {
    kSpin,   // stays on its core (the PAUSE instruction)
    kYield,  // offers its core to a thread queued on it (sched_yield)
    kSleep,  // leaves its core for the time (nanosleep)
  };
  // One backoff step of `ns`, then returns (the caller re-checks).
  virtual void Pause(PauseKind kind, int64_t ns) = 0;
};

namespace platform_internal {
extern constinit thread_local Platform* current;
}  // namespace platform_internal

// The calling thread's platform; nullptr: the real machine.
inline Platform* ThreadPlatform() { return platform_internal::current; }
// Installs `p` for the calling thread (nullptr: back to the real machine).
void SetThreadPlatform(Platform* p);

}  // namespace gillab::gil
