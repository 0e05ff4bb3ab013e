// stm_benchmark.cc — what the `stm` model's own work costs (stm_model.h), for
// the simulator's cost table (sim/costs.h) and to watch the model's fast
// path. Part of `gillab_bench`. Each stm figure is measured against a
// baseline under `none` in the same benchmark, alternating, in thread CPU
// time (the machine is shared: wall time mostly measures the neighbours):
//   BM_StmUnit          unit_ns: one Vm::Call of `push 0; ret` under stm minus
//                       the same under none (a unit's begin and commit, nothing held)
//   BM_StmAccess        access_ns: one `gload x` in a long unit under stm minus
//                       the same under none (the barrier; the first access's
//                       CAS is amortised over kAccesses)
//   BM_StmConflictFree  unit_ns of a unit that reads and writes one global of its
//                       own (a CAS, an undo copy, the release): the commit with
//                       one object held, minus none
// and the rounds of a spin-wait's backoff (stm_model.cc's Backoff), in wall time:
//   BM_PauseInstruction one PAUSE plus the re-check load
//   BM_SchedYield       one sched_yield with (usually) nothing else to run
//   BM_Nanosleep50us    overshoot_ns: how much longer than 50 µs a nanosleep(50 µs) lasts
#include <sched.h>
#include <time.h>

#include <atomic>
#include <chrono>
#include <string>

#include <benchmark/benchmark.h>

#include "interp/assembler.h"
#include "interp/exec_model.h"
#include "interp/heap.h"
#include "interp/vm.h"

namespace gillab::interp {
namespace {

int64_t ThreadCpuNs() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

// A model, one attached thread inside it, and a VM over a concurrent heap.
struct Runner {
  Runner(const char* policy, const char* text)
      : model(MakeExecModel(policy)), me(model->Attach(gil::Role::kCpu, "bench")) {
    model->Enter(*me);
    vm = std::make_unique<Vm>(Assemble(text, "stm_bench.gasm"), *model, *me,
                              VmOptions{.heap = std::make_shared<Heap>(HeapOptions{.concurrent = true})});
  }
  ~Runner() {
    vm.reset();
    model->Leave(*me);
  }
  std::unique_ptr<ExecModel> model;
  std::unique_ptr<ExecThread> me;
  std::unique_ptr<Vm> vm;
};

// Runs `calls` calls of fn(arg) under stm and under none, alternating per
// benchmark iteration; sets `counter` to the difference per `per` (ns).
void StmMinusNone(benchmark::State& state, const char* text, const char* fn, int64_t arg, int64_t calls, double per,
                  const char* counter) {
  Runner stm("stm", text);
  Runner none("none", text);
  int64_t stm_ns = 0;
  int64_t none_ns = 0;
  for (auto _ : state) {
    int64_t t0 = ThreadCpuNs();
    for (int64_t i = 0; i < calls; ++i) benchmark::DoNotOptimize(stm.vm->Call(fn, {Value::Int(arg)}));
    int64_t t1 = ThreadCpuNs();
    for (int64_t i = 0; i < calls; ++i) benchmark::DoNotOptimize(none.vm->Call(fn, {Value::Int(arg)}));
    int64_t t2 = ThreadCpuNs();
    stm_ns += t1 - t0;
    none_ns += t2 - t1;
  }
  const double n = static_cast<double>(state.iterations()) * per;
  state.counters["stm_ns"] = static_cast<double>(stm_ns) / n;
  state.counters["none_ns"] = static_cast<double>(none_ns) / n;
  state.counters[counter] = static_cast<double>(stm_ns - none_ns) / n;
}

constexpr int64_t kUnits = 10'000;
void BM_StmUnit(benchmark::State& state) {
  StmMinusNone(state, "func f n\n  push 0\n  ret\nend\n", "f", 0, kUnits, kUnits, "unit_ns");
}

constexpr int64_t kAccesses = 100'000;
void BM_StmAccess(benchmark::State& state) {
  const char* text =
      "global x\nfunc f n\n  jmp test\nbody:\n  gload x\n  pop\n  inc n -1\ntest:\n  load n\n  push 0\n"
      "  jgt body\n  push 0\n  ret\nend\n";
  StmMinusNone(state, text, "f", kAccesses, 10, 10.0 * kAccesses, "access_ns");
}

void BM_StmConflictFree(benchmark::State& state) {
  const char* text = "global x\nfunc f n\n  gload x\n  push 1\n  add\n  gstore x\n  push 0\n  ret\nend\n";
  StmMinusNone(state, text, "f", 0, kUnits, kUnits, "unit_ns");
}

void BM_PauseInstruction(benchmark::State& state) {
  std::atomic<int> word{0};
  for (auto _ : state) {
    benchmark::DoNotOptimize(word.load(std::memory_order_acquire));
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }
}

void BM_SchedYield(benchmark::State& state) {
  for (auto _ : state) sched_yield();
}

void BM_Nanosleep50us(benchmark::State& state) {
  int64_t slept_ns = 0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    timespec ts{0, 50'000};
    nanosleep(&ts, nullptr);
    slept_ns += std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count();
  }
  state.counters["overshoot_ns"] = static_cast<double>(slept_ns) / static_cast<double>(state.iterations()) - 50'000.0;
}

BENCHMARK(BM_StmUnit);
BENCHMARK(BM_StmAccess);
BENCHMARK(BM_StmConflictFree);
BENCHMARK(BM_PauseInstruction);
BENCHMARK(BM_SchedYield);
BENCHMARK(BM_Nanosleep50us)->Iterations(2000);

}  // namespace
}  // namespace gillab::interp
