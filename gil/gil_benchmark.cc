// gil_benchmark.cc — what a lock operation and a hand-off cost, per policy,
// against the floor a raw futex ping-pong sets in the same run.
//
// Benchmarks (Google Benchmark; wall-clock time, since waiters sleep):
//   BM_FutexPingPong/<pin>                 two threads wake each other through
//                                          two futex words: one round trip is
//                                          two wake-ups, the floor for any lock
//   BM_UncontendedAcquireRelease/<policy>  Acquire + Release by one thread
//   BM_HandoffRoundTrip/<policy>/<pin>     two threads yield the lock to each
//                                          other: one iteration is A -> B -> A
// <pin> is `same_core` (both threads pinned to one CPU: each wake-up is a
// context switch, ~3 us on the reference machines) or `two_cores` (one CPU
// each: each wake-up wakes a sleeping vCPU, ~45 us). The floor and the
// hand-offs are measured with the same pinning, and every hand-off reports
//   floor_ns        the ping-pong round trip measured just before and just
//                   after it (mean of the two), same pins: the machine's load
//                   changes by the second on a shared 2-core box, so the floor
//                   is taken next to the figure it scales
//   x_floor         its round trip divided by floor_ns
//   switches_per_rt changes of holder per round trip: 2 for a real hand-off.
//                   `mutex` never promises one, and `newgil` hands off on a
//                   Yield only when the other thread is already inside its
//                   wait loop (CPython's forced switching); an unrequested
//                   Yield otherwise takes the lock straight back. For those
//                   two the time per iteration is not a hand-off cost.
//   BM_ForcedSwitchRoundTrip/newgil/<pin> newgil's real hand-off: each thread
//                   yields only once the other is inside take_gil's wait
//                   loop, so every Yield is a forced switch (drop, wait on
//                   switch_cond until the other took it, wait again)
//   handoff_p50_ns  the lock's own figure (LockStats::handoff_ns): from the
//                   holder's release/yield to the next holder running
//                   (BM_HandoffRoundTrip also gives handoff_p90_ns, _p99_ns)
// The hand-off distribution with an io thread against K cpu threads comes from
// `gillab contend --json` (handoff_us), plotted per policy by scripts/handoff_cdf.py.
//
//   build/interp/gillab_bench --benchmark_filter='PingPong|Handoff'
#include <benchmark/benchmark.h>
#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <vector>
#include <string>
#include <thread>

#include "gil/futex.h"
#include "gil/gil.h"
#include "gil/newgil_lock.h"

namespace gillab::gil {
namespace {

enum class Pin { kSameCore, kTwoCores };

const char* PinName(Pin pin) { return pin == Pin::kSameCore ? "same_core" : "two_cores"; }

// The CPUs this process may use, lowest first, as they were before any
// benchmark pinned the calling thread (so nested pinnings agree).
const std::vector<int>& AllowedCpus() {
  static const std::vector<int> cpus = [] {
    cpu_set_t set;
    CPU_ZERO(&set);
    std::vector<int> allowed;
    if (sched_getaffinity(0, sizeof(set), &set) != 0) return allowed;
    for (int c = 0; c < CPU_SETSIZE; ++c)
      if (CPU_ISSET(c, &set)) allowed.push_back(c);
    return allowed;
  }();
  return cpus;
}

void PinTo(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

// Pins the calling (benchmark) thread for the scope of one benchmark and says
// where the partner thread goes.
class Pinning {
 public:
  explicit Pinning(Pin pin) {
    pthread_getaffinity_np(pthread_self(), sizeof(saved_), &saved_);
    const std::vector<int>& cpus = AllowedCpus();
    if (cpus.empty() || (pin == Pin::kTwoCores && cpus.size() < 2)) return;
    main_cpu_ = cpus[0];
    partner_cpu_ = pin == Pin::kSameCore ? cpus[0] : cpus[1];
    PinTo(main_cpu_);
    ok_ = true;
  }
  ~Pinning() { pthread_setaffinity_np(pthread_self(), sizeof(saved_), &saved_); }
  bool ok() const { return ok_; }
  int partner_cpu() const { return partner_cpu_; }

 private:
  cpu_set_t saved_;
  bool ok_ = false;
  int main_cpu_ = 0;
  int partner_cpu_ = 0;
};

// One ping-pong partner: sleeps on `ping`, answers on `pong`, until stopped.
class PingPong {
 public:
  explicit PingPong(int cpu)
      : partner_([this, cpu] {
          PinTo(cpu);
          for (;;) {
            ping_.WaitWhile(0, 0);
            if (ping_.Load() == 2) return;
            ping_.Set(0);
            pong_.Set(1);
            pong_.Wake();
          }
        }) {}
  ~PingPong() {
    ping_.Set(2);
    ping_.Wake();
    partner_.join();
  }
  void RoundTrip() {
    ping_.Set(1);
    ping_.Wake();
    pong_.WaitWhile(0, 0);
    pong_.Set(0);
  }

 private:
  FutexWord ping_{0};
  FutexWord pong_{0};
  std::thread partner_;
};

double MeasureFloorNs(Pin pin, int round_trips) {
  Pinning pinning(pin);
  if (!pinning.ok()) return 0;
  PingPong pp(pinning.partner_cpu());
  for (int i = 0; i < 100; ++i) pp.RoundTrip();
  const int64_t start_ns = NowNs();
  for (int i = 0; i < round_trips; ++i) pp.RoundTrip();
  return static_cast<double>(NowNs() - start_ns) / round_trips;
}

void BM_FutexPingPong(benchmark::State& state, Pin pin) {
  Pinning pinning(pin);
  if (!pinning.ok()) {
    state.SkipWithError("not enough CPUs for this pinning");
    return;
  }
  PingPong pp(pinning.partner_cpu());
  for (int i = 0; i < 100; ++i) pp.RoundTrip();
  const int64_t start_ns = NowNs();
  for (auto _ : state) pp.RoundTrip();
  const double per_rt_ns = static_cast<double>(NowNs() - start_ns) / static_cast<double>(state.iterations());
  state.counters["floor_ns"] = per_rt_ns;
}

void BM_UncontendedAcquireRelease(benchmark::State& state, std::string policy) {
  auto gil = MakeGil(policy);
  auto me = gil->Attach(Role::kCpu, "bench");
  for (auto _ : state) {
    gil->Acquire(*me);
    gil->Release(*me);
  }
}

void BM_HandoffRoundTrip(benchmark::State& state, std::string policy, Pin pin) {
  Pinning pinning(pin);
  if (!pinning.ok()) {
    state.SkipWithError("not enough CPUs for this pinning");
    return;
  }
  // ~50 ms of floor on either side of the measurement.
  const int floor_round_trips = pin == Pin::kSameCore ? 5000 : 500;
  const double floor_before_ns = MeasureFloorNs(pin, floor_round_trips);
  auto gil = MakeGil(policy, {.switch_interval_us = 5000});
  auto a = gil->Attach(Role::kCpu, "a");
  std::atomic<bool> b_started{false};
  std::atomic<bool> stop{false};
  gil->Acquire(*a);
  std::thread partner([&, cpu = pinning.partner_cpu()] {
    PinTo(cpu);
    auto b = gil->Attach(Role::kCpu, "b");
    gil->Acquire(*b);
    b_started.store(true);
    while (!stop.load(std::memory_order_relaxed)) gil->Yield(*b);
    gil->Release(*b);
  });
  // Until b is queued, a Yield may find nobody waiting.
  const int64_t give_up_ns = NowNs() + 5'000'000'000;
  while (!b_started.load() && NowNs() < give_up_ns) {
    gil->Yield(*a);
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  for (int i = 0; i < 100; ++i) gil->Yield(*a);
  const uint64_t switches_before = gil->lock_stats().switches;  // a holds: stable
  const int64_t start_ns = NowNs();
  for (auto _ : state) gil->Yield(*a);  // a -> b -> a
  const double per_rt_ns = static_cast<double>(NowNs() - start_ns) / static_cast<double>(state.iterations());
  const uint64_t switches = gil->lock_stats().switches - switches_before;
  stop.store(true);
  gil->Release(*a);
  partner.join();

  const double floor_after_ns = MeasureFloorNs(pin, floor_round_trips);
  const double floor_ns = (floor_before_ns + floor_after_ns) / 2;
  state.counters["floor_ns"] = floor_ns;
  state.counters["x_floor"] = floor_ns > 0 ? per_rt_ns / floor_ns : 0;
  state.counters["switches_per_rt"] = static_cast<double>(switches) / static_cast<double>(state.iterations());
  state.counters["handoff_p50_ns"] = static_cast<double>(gil->lock_stats().handoff_ns.Percentile(50));
  state.counters["handoff_p90_ns"] = static_cast<double>(gil->lock_stats().handoff_ns.Percentile(90));
  state.counters["handoff_p99_ns"] = static_cast<double>(gil->lock_stats().handoff_ns.Percentile(99));
}

void BM_ForcedSwitchRoundTrip(benchmark::State& state, Pin pin) {
  const int floor_round_trips = pin == Pin::kSameCore ? 5000 : 500;
  const double floor_before_ns = MeasureFloorNs(pin, floor_round_trips);
  Pinning pinning(pin);
  if (!pinning.ok()) {
    state.SkipWithError("not enough CPUs for this pinning");
    return;
  }
  NewGilLock lock({});
  auto a = lock.Attach(Role::kCpu, "a");
  std::atomic<bool> stop{false};
  lock.Acquire(*a);
  std::thread partner([&, cpu = pinning.partner_cpu()] {
    PinTo(cpu);
    auto b = lock.Attach(Role::kCpu, "b");
    lock.Acquire(*b);
    while (!stop.load(std::memory_order_relaxed)) {
      while (lock.waiting() == 0 && !stop.load(std::memory_order_relaxed)) sched_yield();
      if (!stop.load(std::memory_order_relaxed)) lock.Yield(*b);
    }
    lock.Release(*b);
  });
  auto round_trip = [&] {
    while (lock.waiting() == 0) sched_yield();
    lock.Yield(*a);
  };
  for (int i = 0; i < 100; ++i) round_trip();
  const uint64_t switches_before = lock.lock_stats().switches;
  const int64_t start_ns = NowNs();
  for (auto _ : state) round_trip();
  const double per_rt_ns = static_cast<double>(NowNs() - start_ns) / static_cast<double>(state.iterations());
  const uint64_t switches = lock.lock_stats().switches - switches_before;
  stop.store(true);
  lock.Release(*a);
  partner.join();
  const double floor_ns = (floor_before_ns + MeasureFloorNs(pin, floor_round_trips)) / 2;
  state.counters["floor_ns"] = floor_ns;
  state.counters["x_floor"] = floor_ns > 0 ? per_rt_ns / floor_ns : 0;
  state.counters["switches_per_rt"] = static_cast<double>(switches) / static_cast<double>(state.iterations());
  state.counters["handoff_p50_ns"] = static_cast<double>(lock.lock_stats().handoff_ns.Percentile(50));
}

// The floor first, then the lock operations, then the hand-offs.
[[maybe_unused]] const bool kRegistered = [] {
  AllowedCpus();  // before anything is pinned
  for (Pin pin : {Pin::kSameCore, Pin::kTwoCores}) {
    benchmark::RegisterBenchmark((std::string("BM_FutexPingPong/") + PinName(pin)).c_str(), BM_FutexPingPong, pin)
        ->UseRealTime()
        ->MinTime(0.3);
  }
  for (const std::string& policy : PolicyNames()) {
    benchmark::RegisterBenchmark(("BM_UncontendedAcquireRelease/" + policy).c_str(),
                                 BM_UncontendedAcquireRelease, policy)
        ->MinTime(0.1);
  }
  for (Pin pin : {Pin::kSameCore, Pin::kTwoCores}) {
    for (const std::string& policy : PolicyNames()) {
      if (!PolicyTraitsOf(policy).exclusive) continue;  // nothing to hand off
      benchmark::RegisterBenchmark(("BM_HandoffRoundTrip/" + policy + "/" + PinName(pin)).c_str(),
                                   BM_HandoffRoundTrip, policy, pin)
          ->UseRealTime()
          ->MinTime(0.3);
    }
    benchmark::RegisterBenchmark((std::string("BM_ForcedSwitchRoundTrip/newgil/") + PinName(pin)).c_str(),
                                 BM_ForcedSwitchRoundTrip, pin)
        ->UseRealTime()
        ->MinTime(0.3);
  }
  return true;
}();

}  // namespace
}  // namespace gillab::gil
