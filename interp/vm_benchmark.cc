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
//   BM_LocalReadWrite          ns per iteration of `x = x + 1` on a local (load/push/add/store + the loop)
//   BM_GlobalReadWrite/0       the same on a global (gload/push/add/gstore), heap not concurrent (exclusive policies)
//   BM_GlobalReadWrite/1       the same, concurrent heap (policy `none`: every gload/gstore takes the cell's lock)
//   BM_HeapOverhead            the three alternated in one benchmark: global_over_local_pct and
//                              concurrent_over_plain_pct against baselines of the same run (thread CPU time)
//   BM_CoroutineSwitch/N       ns per switch pair (design §10): N coroutines loop on `sleep_us 0`; each
//                              iteration pops one from a ready queue, resumes it until it parks again
//                              (resume + suspend), and queues it. bytes_per_coroutine: what each holds
//                              suspended (Coroutine::bytes()). scripts/coroutine_speed sets it beside
//                              Lua 5.4's coroutine.resume/yield pair.
// The VM runs under the execution model of each policy (MakeExecModel): the
// check points read the model's eval breaker, exactly as the servers do.
// Each iteration of the countdown is 2 instructions (inc, and jgt_li: the
// assembler's fusion of load/push/jgt); the loop is `while n > 0: n = n - 1`, the one scripts/vm_speed runs in Lua and CPython.
#include <time.h>

#include <deque>

#include <benchmark/benchmark.h>

#include "interp/assembler.h"
#include "interp/exec_model.h"
#include "interp/heap.h"
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

// x = x + 1, n times, on a local or on a global: 4 instructions + the loop's inc and jgt_li.
constexpr int64_t kReadWrites = 1'000'000;
const char* const kLocalLoop =
    "func main n\n  var x\n  jmp test\nbody:\n  load x\n  push 1\n  add\n  store x\n  inc n -1\n"
    "test:\n  load n\n  push 0\n  jgt body\n  load x\n  ret\nend\n";
const char* const kGlobalLoop =
    "global x\nfunc main n\n  jmp test\nbody:\n  gload x\n  push 1\n  add\n  gstore x\n  inc n -1\n"
    "test:\n  load n\n  push 0\n  jgt body\n  gload x\n  ret\nend\n";

std::unique_ptr<Vm> ReadWriteVm(Bench& b, const char* text, bool concurrent) {
  return std::make_unique<Vm>(Assemble(text, "readwrite.gasm"), *b.model, *b.me,
                              VmOptions{.heap = std::make_shared<Heap>(HeapOptions{.concurrent = concurrent})});
}

void BM_LocalReadWrite(benchmark::State& state) {
  Bench b("newgil");
  auto vm = ReadWriteVm(b, kLocalLoop, false);
  int64_t loops = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(vm->Call("main", {Value::Int(kReadWrites)}));
    loops += kReadWrites;
  }
  SetPerIteration(state, loops);
}

void BM_GlobalReadWrite(benchmark::State& state) {
  Bench b("newgil");
  auto vm = ReadWriteVm(b, kGlobalLoop, state.range(0) != 0);
  int64_t loops = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(vm->Call("main", {Value::Int(kReadWrites)}));
    loops += kReadWrites;
  }
  SetPerIteration(state, loops);
}

void BM_HeapOverhead(benchmark::State& state) {
  Bench b("newgil");
  auto local = ReadWriteVm(b, kLocalLoop, false);
  auto plain = ReadWriteVm(b, kGlobalLoop, false);
  auto concurrent = ReadWriteVm(b, kGlobalLoop, true);
  int64_t ns[3] = {0, 0, 0};
  for (auto _ : state) {
    Vm* vms[3] = {local.get(), plain.get(), concurrent.get()};
    for (int k = 0; k < 3; ++k) {
      const int64_t t0 = ThreadCpuNs();
      benchmark::DoNotOptimize(vms[k]->Call("main", {Value::Int(kReadWrites)}));
      ns[k] += ThreadCpuNs() - t0;
    }
  }
  const double n = static_cast<double>(state.iterations()) * kReadWrites;
  state.counters["local_ns_per_iteration"] = static_cast<double>(ns[0]) / n;
  state.counters["global_ns_per_iteration"] = static_cast<double>(ns[1]) / n;
  state.counters["concurrent_ns_per_iteration"] = static_cast<double>(ns[2]) / n;
  state.counters["global_over_local_pct"] = 100.0 * (static_cast<double>(ns[1]) / static_cast<double>(ns[0]) - 1.0);
  state.counters["concurrent_over_plain_pct"] = 100.0 * (static_cast<double>(ns[2]) / static_cast<double>(ns[1]) - 1.0);
}

// A coroutine that parks at every iteration: resume, `sleep_us 0` parks it.
constexpr const char* kYieldLoop = R"(
func loop
  var n
again:
  inc n 1
  push 0
  native sleep_us
  pop
  jmp again
  load n
  ret
end
)";

void BM_CoroutineSwitch(benchmark::State& state) {
  Bench b("newgil");
  Vm vm(Assemble(kYieldLoop, "yield_loop.gasm"), *b.model, *b.me);
  std::vector<std::unique_ptr<Coroutine>> cos;
  std::deque<Coroutine*> ready;
  for (int64_t i = 0; i < state.range(0); ++i) {
    cos.push_back(vm.Start("loop", {}));
    ready.push_back(cos.back().get());
  }
  for (auto _ : state) {
    Coroutine* co = ready.front();
    ready.pop_front();
    benchmark::DoNotOptimize(vm.Resume(*co, nullptr));
    ready.push_back(co);
  }
  state.counters["bytes_per_coroutine"] = static_cast<double>(cos.front()->bytes());
}

BENCHMARK(BM_CountdownLoop)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_CountdownLoopNoBreaker)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_CountdownLoopMutexTicks)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_EvalBreakerOverhead)->Unit(benchmark::kMillisecond)->MinTime(0.5)->Repetitions(10);
BENCHMARK(BM_LocalReadWrite)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_GlobalReadWrite)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_HeapOverhead)->Unit(benchmark::kMillisecond)->MinTime(2.0);
BENCHMARK(BM_CoroutineSwitch)->Arg(1)->Arg(1000)->Arg(10000);

}  // namespace
}  // namespace gillab::interp
