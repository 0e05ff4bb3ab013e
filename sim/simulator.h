// simulator.h — the discrete-event core of `gillab simulate` (design §13):
// N virtual cores, virtual time in ns, virtual threads that run the real VM
// and the real lock policies.
//
// How it runs the real code. Each virtual thread is an OS thread, but only
// one thread of the simulation runs at any moment: the scheduler (the thread
// that called Run) and the virtual threads pass a baton (a semaphore per
// thread). A virtual thread has the simulator installed as its gil::Platform
// (gil/platform.h), so every clock read, futex wait/wake and condition-
// variable wait/notify of the lock policies comes here and is served from the
// event queue. Nothing else waits: the policies' internal std::mutexes are
// never contended, because a thread gives up the baton only in a platform
// wait or at Settle(), and the policies hold none of their mutexes there (a
// condition-variable wait releases its mutex before it parks). A spin-wait
// (the stm model's backoff) asks Platform::Pause for each round: a spin or
// a yield charges its cost (CostTable::spin_pause_ns, yield_ns) and settles,
// a yield also gives the core to a thread queued on it, a sleep leaves the
// core for the time asked plus the timer slack; so the thread it
// waits for gets to run, in virtual time.
//
// Time. Virtual time only moves when a thread charges for work: Charge(ns)
// adds to the thread's debt without giving up the baton (safe anywhere, even
// under a policy's mutex); Settle() (the VM's ticks, sleeps, futex waits)
// pays the debt: when no other event comes first the thread simply moves the
// clock on and keeps running (the fast path: no switch), otherwise it parks
// until the scheduler reaches its time. A thread's clock reads (NowNs) see
// now + debt. Waits under a mutex (condition variables) cannot switch before
// parking, so they fold their debt into the clock directly; the error is at
// most that debt (a few clock reads, tens of ns).
//
// The simulated OS (OsModel, costs.h): a run queue per core; a woken thread
// lands on an idle core if there is one (its previous core first, else one
// drawn from the PRNG), else on the shortest run queue (ties drawn); it runs
// after the wake-up latency (same core or cross core, plus the idle exit
// when the core was halted); a running thread is preempted at its next
// Settle once it has had its time slice and another thread waits on its
// core; a core that goes idle takes a thread from the longest other queue.
// Which waiter a wake picks, among several on one address: one drawn, or the
// oldest (OsModel::fifo_wake_order). A timed wait or sleep ends within the
// timer slack after its deadline (drawn, OsModel::timer_slack_ns).
//
// Determinism: every choice comes from one PRNG seeded by SimOptions::seed,
// events at the same time run in the order they were scheduled, and only
// one thread runs at a time, so the same seed and inputs replay exactly.
//
// Errors: an exception escaping a virtual thread's body ends the run: every
// other thread is unwound (its waits throw SimAborted) and Run rethrows the
// first exception. A run where every thread waits and no event is pending
// (a deadlock of the simulated program) ends the same way with SimError.
//
//   Simulator sim({.os = {.cores = 8}, .seed = 1});
//   sim.Spawn("cpu-0", [&] { ... real VM code ... });
//   sim.Run();                      // returns when every thread has finished
//   int64_t end_ns = sim.now_ns();
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>

#include "sim/costs.h"

namespace gillab::sim {

struct SimOptions {
  OsModel os;
  CostTable costs;
  uint64_t seed = 1;
  // Ends the run with SimError if virtual time passes this (0: no limit):
  // a guard against a simulated program that never finishes.
  int64_t max_virtual_ns = 0;
};

// The simulation cannot go on (deadlock, time limit). Thrown by Run.
struct SimError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// Thrown inside virtual threads to unwind them when the run is being torn
// down; never escapes Run.
struct SimAborted : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct SimStats {
  uint64_t events = 0;        // events the scheduler handled
  uint64_t switches = 0;      // baton passes to a virtual thread
  uint64_t fast_settles = 0;  // Settle calls that moved the clock without a switch
  uint64_t wakes = 0;         // threads woken by a futex wake or notify
  uint64_t timeouts = 0;      // waits that ended at their deadline
  uint64_t preemptions = 0;   // time-slice ends with another thread queued
  uint64_t migrations = 0;    // a thread ran on another core than the last time
};

class Simulator {
 public:
  explicit Simulator(SimOptions options);
  ~Simulator();
  Simulator(const Simulator&) = delete;
  Simulator& operator=(const Simulator&) = delete;

  // Adds a virtual thread that runs `body` (from the scheduler before Run, or
  // from a virtual thread). It becomes runnable at the current virtual time.
  void Spawn(std::string name, std::function<void()> body);
  // Runs until every virtual thread has finished. Call once, from the thread
  // that built the simulator. Rethrows the first exception of a thread body.
  void Run();

  // Virtual time: the scheduler's clock; from a virtual thread, its own clock
  // (now + debt).
  int64_t now_ns() const;
  const SimOptions& options() const { return options_; }
  const SimStats& stats() const { return stats_; }

  // From a virtual thread only. See "Time" above.
  void Charge(int64_t ns);
  void Settle();
  // Off its core for `ns` of virtual time (a blocking call), then runnable again.
  void Sleep(int64_t ns);
  // The running virtual thread's simulator, or nullptr on any other thread.
  static Simulator* Current();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  SimOptions options_;
  SimStats stats_;
};

}  // namespace gillab::sim
