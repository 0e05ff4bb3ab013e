// vm_benchmark.cc — the VM's figures for `gillab_bench` (linked with the lock
// benchmarks of gil/gil_benchmark.cc):
//   BM_CountdownLoop           ns per iteration of countdown.gasm, eval-breaker checks on
//   BM_CountdownLoopNoBreaker  the same loop compiled without the checks (VmOptions::eval_breaker=false)
//   BM_CountdownLoopMutexTicks the same under `mutex` (an instruction countdown and a Yield every 100)
//   BM_EvalBreakerOverhead     both loops alternated in one benchmark: overhead_pct is the
//                              cost of the checks measured against a baseline of the same run
//                              (target <= 3%), both in thread CPU time. Run 10 times: the
//                              _mean/_median/_stddev/_cv rows give the spread over those
//                              repetitions, so that noise can be told from cost (a median
//                              overhead within a stddev or two of 0 is noise)
// The VM runs under the execution model of each policy (MakeExecModel): the
// check points read the model's eval breaker, exactly as the servers do.
// Each iteration of the countdown is 2 instructions (inc, and jgt_li: the
// assembler's fusion of load/push/jgt); the loop is `while n > 0: n = n - 1`, the one scripts/vm_speed runs in Lua and CPython.
#include <time.h>

#include <benchmark/benchmark.h>

#include "interp/exec_model.h"
#include "interp/vm.h"

namespace gillab::interp {
namespace {

constexpr int64_t kCountdown = 1'000'000;

struct Bench {
  explicit Bench(const char* policy) : model(MakeExecModel(policy)), me(model->Attach(gil::Role::kCpu, "bench")) {
    model->Enter(*me);
  }
  ~Bench() { model->Leave(*me); }
  std::unique_ptr<ExecModel> model;
  std::unique_ptr<ExecThread> me;
};

// CPU time of this thread: on a shared 2-core machine wall time mostly measures the neighbours.
int64_t ThreadCpuNs() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

void SetPerIteration(benchmark::State& state, int64_t loop_iterations) {
  // Seconds of CPU time per loop iteration, printed with an SI prefix ("6.2n" = 6.2 ns).
  state.counters["per_iteration"] = benchmark::Counter(
      static_cast<double>(loop_iterations), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

void Countdown(benchmark::State& state, const char* policy, bool eval_breaker) {
  Bench b(policy);
  Vm vm(LoadProgram("countdown"), *b.model, *b.me, VmOptions{.eval_breaker = eval_breaker});
  int64_t loops = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(vm.Call("main", {Value::Int(kCountdown)}));
    loops += kCountdown;
  }
  SetPerIteration(state, loops);
}

void BM_CountdownLoop(benchmark::State& state) { Countdown(state, "newgil", true); }
void BM_CountdownLoopNoBreaker(benchmark::State& state) { Countdown(state, "newgil", false); }
void BM_CountdownLoopMutexTicks(benchmark::State& state) { Countdown(state, "mutex", true); }

void BM_EvalBreakerOverhead(benchmark::State& state) {
  Bench b("newgil");
  auto program = LoadProgram("countdown");
  Vm with(program, *b.model, *b.me, VmOptions{.eval_breaker = true});
  Vm without(program, *b.model, *b.me, VmOptions{.eval_breaker = false});
  int64_t with_ns = 0;
  int64_t without_ns = 0;
  for (auto _ : state) {
    const int64_t t0 = ThreadCpuNs();
    benchmark::DoNotOptimize(with.Call("main", {Value::Int(kCountdown)}));
    const int64_t t1 = ThreadCpuNs();
    benchmark::DoNotOptimize(without.Call("main", {Value::Int(kCountdown)}));
    const int64_t t2 = ThreadCpuNs();
    with_ns += t1 - t0;
    without_ns += t2 - t1;
  }
  const double n = static_cast<double>(state.iterations()) * kCountdown;
  state.counters["with_ns_per_iteration"] = static_cast<double>(with_ns) / n;
  state.counters["without_ns_per_iteration"] = static_cast<double>(without_ns) / n;
  state.counters["overhead_pct"] = 100.0 * (static_cast<double>(with_ns) / static_cast<double>(without_ns) - 1.0);
}

BENCHMARK(BM_CountdownLoop)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_CountdownLoopNoBreaker)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_CountdownLoopMutexTicks)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_EvalBreakerOverhead)->Unit(benchmark::kMillisecond)->MinTime(0.5)->Repetitions(10);

}  // namespace
}  // namespace gillab::interp
