// trace_benchmark.cc — what the always-on statistics and the trace recorder
// cost, as throughput ratios measured side by side in one run.
//
// Each benchmark builds three locks of one policy: stats off (GilOptions::stats
// = false: no clock reads, only the I1/I2 checks), stats on (the default), and
// stats on + tracing into a TraceRecorder. It then runs the same workload on
// each in turn, in short interleaved blocks (so that the load of a shared
// 2-core machine, which drifts by the second, hits the three alike), and
// reports the median time per operation of each (thread CPU time for the
// single-thread workloads, wall time for the hand-off):
//   off_ns, stats_ns, trace_ns   median time per workload iteration
//   stats_cost_pct               (stats_ns / off_ns - 1) * 100   target <= 1
//   trace_cost_pct               (trace_ns / stats_ns - 1) * 100 target <= 3
// Workloads:
//   BM_LockCost/uncontended/<policy>  Acquire + Release by one thread: the
//       worst case, nothing but lock operations (a few tens of ns each)
//   BM_LockCost/hold_1us/<policy>     Acquire, ~1 us of work, Release: a
//       thread that touches the lock about as often as a busy io thread
//   BM_LockCost/handoff/ticket        two threads on one core hand the lock
//       to each other (Yield); one iteration is a round trip A -> B -> A
//
// The same comparison on toy-VM workloads (cpu_spin under `mutex`, a server's
// request loop) is interp/lock_cost_benchmark.cc (BM_VmLockCost).
//
//   build/interp/gillab_bench --benchmark_filter=LockCost
#include <benchmark/benchmark.h>
#include <pthread.h>
#include <sched.h>
#include <time.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gil/gil.h"
#include "gil/trace.h"

namespace gillab::gil {
namespace {

enum Mode { kOff, kStats, kTrace, kModes };

struct Subject {
  std::unique_ptr<TraceRecorder> recorder;
  std::unique_ptr<Gil> gil;
};

Subject MakeSubject(const std::string& policy, Mode mode) {
  Subject s;
  GilOptions options;
  options.stats = mode != kOff;
  s.gil = MakeGil(policy, options);
  if (mode == kTrace) {
    // Bounded as in real use; the bound is large enough that nothing is dropped
    // in a benchmark block (and dropping would only make tracing look cheaper).
    s.recorder = std::make_unique<TraceRecorder>(TraceOptions{.max_events_per_thread = 1 << 24});
    s.gil->EnableTrace(s.recorder.get());
  }
  return s;
}

// CPU time of this thread: on a shared 2-core machine a single-threaded
// block's wall time mostly measures the neighbours.
int64_t ThreadCpuNs() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

void BurnNs(int64_t ns) {
  const int64_t until_ns = NowNs() + ns;
  while (NowNs() < until_ns) {
  }
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

void Report(benchmark::State& state, const std::array<std::vector<double>, kModes>& per_op_ns) {
  const double off = Median(per_op_ns[kOff]), stats = Median(per_op_ns[kStats]), trace = Median(per_op_ns[kTrace]);
  state.counters["off_ns"] = off;
  state.counters["stats_ns"] = stats;
  state.counters["trace_ns"] = trace;
  state.counters["stats_cost_pct"] = off > 0 ? (stats / off - 1) * 100 : 0;
  state.counters["trace_cost_pct"] = stats > 0 ? (trace / stats - 1) * 100 : 0;
}

// One thread, `hold_ns` of work inside each Acquire/Release pair.
void BM_SingleThread(benchmark::State& state, std::string policy, int64_t hold_ns) {
  std::array<Subject, kModes> subjects;
  std::array<std::unique_ptr<ThreadState>, kModes> me;
  for (int m = 0; m < kModes; ++m) {
    subjects[m] = MakeSubject(policy, static_cast<Mode>(m));
    me[m] = subjects[m].gil->Attach(Role::kIo, "io");
  }
  const int ops = hold_ns > 0 ? 2000 : 20000;  // ~1-2 ms per block
  std::array<std::vector<double>, kModes> per_op_ns;
  for (auto _ : state) {
    for (int m = 0; m < kModes; ++m) {
      Gil& gil = *subjects[m].gil;
      ThreadState& t = *me[m];
      const int64_t start_ns = ThreadCpuNs();
      for (int i = 0; i < ops; ++i) {
        gil.Acquire(t);
        if (hold_ns > 0) BurnNs(hold_ns);
        gil.Release(t);
      }
      per_op_ns[m].push_back(static_cast<double>(ThreadCpuNs() - start_ns) / ops);
    }
  }
  Report(state, per_op_ns);
}

void PinTo(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

// Two threads pinned to one core yield the lock to each other: every Yield is
// a real hand-off (ticket hands off in arrival order), ~3 us per wake-up.
void BM_Handoff(benchmark::State& state, std::string policy) {
  cpu_set_t saved;
  pthread_getaffinity_np(pthread_self(), sizeof(saved), &saved);
  int cpu = 0;
  while (cpu < CPU_SETSIZE && !CPU_ISSET(cpu, &saved)) ++cpu;
  PinTo(cpu);
  std::array<Subject, kModes> subjects;
  std::array<std::unique_ptr<ThreadState>, kModes> a;
  std::atomic<bool> stop{false};
  std::atomic<int> started{0};
  std::vector<std::thread> partners;
  for (int m = 0; m < kModes; ++m) {
    subjects[m] = MakeSubject(policy, static_cast<Mode>(m));
    a[m] = subjects[m].gil->Attach(Role::kCpu, "a");
    subjects[m].gil->Acquire(*a[m]);
    partners.emplace_back([&, m] {
      PinTo(cpu);
      Gil& gil = *subjects[m].gil;
      auto b = gil.Attach(Role::kCpu, "b");
      started.fetch_add(1);
      gil.Acquire(*b);  // queued behind a: a's first Yield hands over
      while (!stop.load(std::memory_order_relaxed)) gil.Yield(*b);
      gil.Release(*b);
    });
  }
  // Until every partner is queued, a Yield may find nobody waiting.
  while (started.load() < kModes) std::this_thread::yield();
  for (int m = 0; m < kModes; ++m) {
    for (int i = 0; i < 200; ++i) subjects[m].gil->Yield(*a[m]);
  }
  const int round_trips = 300;  // ~2 ms per block at ~6 us per round trip
  std::array<std::vector<double>, kModes> per_op_ns;
  for (auto _ : state) {
    for (int m = 0; m < kModes; ++m) {
      Gil& gil = *subjects[m].gil;
      const int64_t start_ns = NowNs();
      for (int i = 0; i < round_trips; ++i) gil.Yield(*a[m]);  // between blocks a holds, b is parked
      per_op_ns[m].push_back(static_cast<double>(NowNs() - start_ns) / round_trips);
    }
  }
  stop.store(true);
  for (int m = 0; m < kModes; ++m) subjects[m].gil->Release(*a[m]);
  for (std::thread& t : partners) t.join();
  pthread_setaffinity_np(pthread_self(), sizeof(saved), &saved);
  Report(state, per_op_ns);
  state.counters["trace_dropped"] = static_cast<double>(subjects[kTrace].recorder->dropped_events());
}

[[maybe_unused]] const bool kRegistered = [] {
  for (const char* policy : {"ticket", "newgil", "mutex"}) {
    benchmark::RegisterBenchmark((std::string("BM_LockCost/uncontended/") + policy).c_str(), BM_SingleThread,
                                 std::string(policy), int64_t{0})
        ->Iterations(200)
        ->UseRealTime();
    benchmark::RegisterBenchmark((std::string("BM_LockCost/hold_1us/") + policy).c_str(), BM_SingleThread,
                                 std::string(policy), int64_t{1000})
        ->Iterations(100)
        ->UseRealTime();
  }
  benchmark::RegisterBenchmark("BM_LockCost/handoff/ticket", BM_Handoff, std::string("ticket"))
      ->Iterations(100)
      ->UseRealTime();
  return true;
}();

}  // namespace
}  // namespace gillab::gil
