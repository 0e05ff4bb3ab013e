// stm_model_test.cc — the `stm` model (stm_model.h): serialisability under
// contention (counter exact, bank conserved), inevitable units (never abort,
// never two at once), aborted units leave no trace, a unit that keeps
// aborting finishes, the conflict report names both sides, hostile programs
// end with a clear error. Runs under ASan and TSan (labels).
#include "interp/stm_model.h"

#include <latch>
#include <thread>

#include <gtest/gtest.h>

#include "interp/assembler.h"
#include "interp/heap.h"
#include "interp/race.h"
#include "interp/vm.h"

namespace gillab::interp {
namespace {

// Runs `units_per_thread` Calls of fn(args(i, k)) on each of k threads of one
// stm model and heap, all started together.
struct StmRun {
  std::unique_ptr<ExecModel> model;
  std::shared_ptr<Heap> heap;
  StmModel& stm() { return static_cast<StmModel&>(*model); }
};

StmRun MakeRun(ExecModelOptions options = {}) {
  StmRun r;
  r.model = MakeExecModel("stm", options);
  r.heap = std::make_shared<Heap>(HeapOptions{.concurrent = true});
  return r;
}

template <typename ArgsFn>
void RunThreads(StmRun& run, const std::shared_ptr<const Program>& program, int threads, int units_per_thread,
                const std::string& fn, ArgsFn args) {
  std::latch start(threads);
  std::vector<std::thread> pool;
  std::vector<std::string> errors(static_cast<size_t>(threads));
  for (int k = 0; k < threads; ++k) {
    pool.emplace_back([&, k] {
      auto me = run.model->Attach(gil::Role::kCpu, "w" + std::to_string(k));
      Vm vm(program, *run.model, *me, {.heap = run.heap});
      run.model->Enter(*me);
      start.arrive_and_wait();
      try {
        for (int i = 0; i < units_per_thread; ++i) vm.Call(fn, args(i, k));
      } catch (const std::exception& e) {
        errors[static_cast<size_t>(k)] = e.what();
      }
      run.model->Leave(*me);
    });
  }
  for (auto& t : pool) t.join();
  for (const auto& e : errors) EXPECT_EQ(e, "");
}

int64_t Global(StmRun& run, const std::string& name) { return std::stoll(run.heap->Dump().at(name)); }

int64_t CallOnce(StmRun& run, const std::shared_ptr<const Program>& program, const std::string& fn,
                 const std::vector<Value>& args) {
  auto me = run.model->Attach(gil::Role::kIo, "main");
  Vm vm(program, *run.model, *me, {.heap = run.heap});
  run.model->Enter(*me);
  const Value v = vm.Call(fn, args);
  run.model->Leave(*me);
  return v.as_int();
}

TEST(StmModel, IsInTheRegistryWithItsTraits) {
  const auto& names = ExecModelNames();
  EXPECT_NE(std::find(names.begin(), names.end(), "stm"), names.end());
  auto model = MakeExecModel("stm");
  EXPECT_FALSE(model->traits().exclusive);
  EXPECT_TRUE(model->traits().sees_heap_accesses);
  EXPECT_TRUE(model->traits().units_may_abort);
  EXPECT_EQ(model->lock(), nullptr);
  EXPECT_THROW(MakeExecModel("stm", {.gil = {}, .stm_transaction_length = 0}), std::exception);
}

// counter.gasm's worker(1, id) is one increment: one unit per Call.
TEST(StmModel, CounterIsExactWithTwoToEightThreads) {
  auto program = LoadProgram("counter");
  for (int threads : {2, 4, 8}) {
    StmRun run = MakeRun();
    const int per_thread = 100000 / threads + 1;
    RunThreads(run, program, threads, per_thread, "worker",
               [](int, int k) { return std::vector<Value>{Value::Int(1), Value::Int(k)}; });
    EXPECT_EQ(Global(run, "counter"), int64_t{per_thread} * threads) << threads << " threads";
    const StmReport r = run.stm().Report();
    EXPECT_EQ(r.commits, int64_t{per_thread} * threads);
  }
}

// bank.gasm's worker(1, seed) is one transfer between two of 100 accounts.
TEST(StmModel, BankConservesItsSumWithTwoToEightThreads) {
  auto program = LoadProgram("bank");
  for (int threads : {2, 8}) {
    StmRun run = MakeRun();
    CallOnce(run, program, "setup", {Value::Int(threads), Value::Int(1)});
    const int per_thread = 100000 / threads + 1;
    RunThreads(run, program, threads, per_thread, "worker",
               [threads](int i, int k) { return std::vector<Value>{Value::Int(1), Value::Int(i * threads + k)}; });
    EXPECT_EQ(CallOnce(run, program, "check", {}), 100000) << threads << " threads";
  }
}

// Whole race workers are long units: they conflict, abort, wait, re-run, and
// the outcome is still exact (the `gillab race counter --policy stm` path).
TEST(StmModel, RaceCounterAndBankAreExact) {
  const RaceResult c = RunRace({.program = "counter", .policy = "stm", .threads = 4, .n = 20000});
  EXPECT_EQ(c.outcome, 80000) << FormatRaceLine(c);
  const RaceResult b = RunRace({.program = "bank", .policy = "stm", .threads = 4, .n = 5000});
  EXPECT_EQ(b.outcome, 100000) << FormatRaceLine(b);
}

constexpr const char* kEffects = R"(
global hot
global log
func bump_then_clock
  gload hot
  push 1
  add
  gstore hot
  call now_ns
  pop
  push 0
  ret
end
func clock_then_bump
  call now_ns
  pop
  gload hot
  push 1
  add
  gstore hot
  push 0
  ret
end
func txtime_then_bump
  call transaction_time
  pop
  gload hot
  push 1
  add
  gstore hot
  push 0
  ret
end
func write_then_fail k
  push 42
  gstore log
  push 1
  load k
  div
  ret
end
func spin n
  jmp test
body:
  inc n -1
test:
  load n
  push 0
  jgt body
  push 0
  ret
end
func hold_forever
  push 1
  gstore hot
loop:
  jmp loop
end
)";

TEST(StmModel, InevitableUnitsNeverAbortAndNeverOverlap) {
  auto program = Assemble(kEffects, "effects.gasm");
  StmRun run = MakeRun();
  RunThreads(run, program, 4, 5000, "bump_then_clock", [](int i, int) {
    (void)i;
    return std::vector<Value>{};
  });
  EXPECT_EQ(Global(run, "hot"), 20000);
  const StmInevitableRecord rec = run.stm().Inevitable();
  EXPECT_EQ(rec.aborted_while_inevitable, 0);
  EXPECT_EQ(rec.max_concurrent, 1);
  ASSERT_EQ(rec.intervals_ns.size(), 20000u);
  auto intervals = rec.intervals_ns;
  std::sort(intervals.begin(), intervals.end());
  for (size_t i = 1; i < intervals.size(); ++i) {
    ASSERT_GE(intervals[i].first, intervals[i - 1].second) << "inevitable units " << i - 1 << " and " << i << " overlap";
  }
  EXPECT_EQ(run.stm().Report().inevitable_units, 20000);
}

TEST(StmModel, TransactionTimeDoesNotMakeTheUnitInevitable) {
  auto program = Assemble(kEffects, "effects.gasm");
  // Starvation could make a unit inevitable on its own: not within 500 aborts.
  StmRun run = MakeRun({.gil = {}, .stm_transaction_length = 100000, .stm_aborts_before_inevitable = 500});
  RunThreads(run, program, 2, 2000, "txtime_then_bump", [](int, int) { return std::vector<Value>{}; });
  EXPECT_EQ(Global(run, "hot"), 4000);
  EXPECT_EQ(run.stm().Report().inevitable_units, 0);
  EXPECT_TRUE(run.stm().Inevitable().intervals_ns.empty());
}

// The conflict report names the inevitable clock call by program and line.
TEST(StmModel, ConflictReportNamesTheInevitableClockCall) {
  auto program = Assemble(kEffects, "effects.gasm");
  StmRun run = MakeRun();
  RunThreads(run, program, 4, 3000, "clock_then_bump", [](int, int) { return std::vector<Value>{}; });
  const StmReport r = run.stm().Report();
  EXPECT_EQ(r.commits, 12000);
  EXPECT_EQ(Global(run, "hot"), 12000);
  bool named = false;
  for (const StmConflict& c : r.conflicts) {
    EXPECT_GT(c.count, 0);
    EXPECT_EQ(c.kind, "inevitable") << c.site << " vs " << c.other_site;
    if (c.site == "effects.gasm:clock_then_bump:15" && c.other_site == "effects.gasm:clock_then_bump:15") named = true;
  }
  // Four threads on 2 cores: some unit needs the token while another holds it.
  if (!r.conflicts.empty()) {
    EXPECT_TRUE(named) << "no inevitable conflict at effects.gasm:clock_then_bump:15";
  }
}

// A unit that fails (a VmError) keeps what it wrote, as under a GIL; an
// aborted unit leaves nothing: the doomed long units below re-run from the
// start and the sums stay exact.
TEST(StmModel, AbortedUnitsLeaveNoTrace) {
  auto program = Assemble(R"(
global a
global b
global t
func setup
  tnew
  gstore t
  push 0
  ret
end
; moves one from a to b, then spins (a long unit that others run into),
; and records the move in the table t under key id
func move id n
  gload a
  push 1
  sub
  gstore a
  gload t
  load id
  push 1
  tset
  load n
  store id
  jmp test
body:
  inc id -1
test:
  load id
  push 0
  jgt body
  gload b
  push 1
  add
  gstore b
  push 0
  ret
end
func check
  gload a
  gload b
  add
  ret
end
func size
  gload t
  len
  ret
end
)",
                          "move.gasm");
  StmRun run = MakeRun();
  CallOnce(run, program, "setup", {});
  RunThreads(run, program, 4, 300, "move",
             [](int i, int k) { return std::vector<Value>{Value::Int(i * 4 + k), Value::Int(i % 7 * 100)}; });
  EXPECT_EQ(CallOnce(run, program, "check", {}), 0);
  EXPECT_EQ(Global(run, "b"), 1200);
  EXPECT_EQ(CallOnce(run, program, "size", {}), 1200);
  const StmReport r = run.stm().Report();
  EXPECT_EQ(r.commits, 1200 + 3);
  EXPECT_GT(r.aborts, 0) << "four threads writing `a` first never conflicted";
}

TEST(StmModel, AUnitThatKeepsAbortingFinishes) {
  // A hog keeps `hot` taken by long units; the victim writes `hot` at the end
  // of its own long unit, so it runs into the hog and aborts; after
  // stm_aborts_before_inevitable aborts it re-runs inevitable, dooms the hog
  // and finishes.
  auto program = Assemble(R"(
global hot
func hog n
  gload hot
  push 1
  add
  gstore hot
  jmp test
body:
  inc n -1
test:
  load n
  push 0
  jgt body
  push 0
  ret
end
func victim n
  jmp test
body:
  inc n -1
test:
  load n
  push 0
  jgt body
  gload hot
  push 1000000
  add
  gstore hot
  push 0
  ret
end
)",
                          "hog.gasm");
  StmRun run = MakeRun({.gil = {}, .stm_transaction_length = 100000, .stm_aborts_before_inevitable = 3});
  std::atomic<bool> done{false};
  std::atomic<int64_t> hog_units{0};
  std::latch hog_started(1);
  std::thread hog([&] {
    auto me = run.model->Attach(gil::Role::kCpu, "hog");
    Vm vm(program, *run.model, *me, {.heap = run.heap});
    run.model->Enter(*me);
    for (int i = 0; i < 1000000 && !done.load(); ++i) {
      vm.Call("hog", {Value::Int(50000)});
      hog_units.fetch_add(1);
      if (i == 0) hog_started.count_down();
    }
    run.model->Leave(*me);
  });
  hog_started.wait();
  {
    auto me = run.model->Attach(gil::Role::kIo, "victim");
    Vm vm(program, *run.model, *me, {.max_unit_retries = 50, .heap = run.heap});
    run.model->Enter(*me);
    for (int i = 0; i < 20; ++i) EXPECT_NO_THROW(vm.Call("victim", {Value::Int(50000)}));
    run.model->Leave(*me);
  }
  done = true;
  hog.join();
  EXPECT_EQ(Global(run, "hot") / 1000000, 20);
  EXPECT_EQ(Global(run, "hot") % 1000000, hog_units.load());
  EXPECT_EQ(run.stm().Inevitable().aborted_while_inevitable, 0);
}

TEST(StmModel, AFailedUnitCommitsWhatItWroteAndEndsWithTheVmError) {
  auto program = Assemble(kEffects, "effects.gasm");
  StmRun run = MakeRun();
  auto me = run.model->Attach(gil::Role::kIo, "main");
  Vm vm(program, *run.model, *me, {.heap = run.heap});
  run.model->Enter(*me);
  EXPECT_THROW(vm.Call("write_then_fail", {Value::Int(0)}), VmError);
  EXPECT_EQ(vm.Call("write_then_fail", {Value::Int(1)}).as_int(), 1);
  run.model->Leave(*me);
  EXPECT_EQ(Global(run, "log"), 42);
}

// A hostile unit that holds a global and never ends: with an instruction
// budget it ends with a clear VmError, and everything it held is let go.
TEST(StmModel, AUnitThatNeverEndsFailsOnItsBudgetAndLetsGo) {
  auto program = Assemble(kEffects, "effects.gasm");
  StmRun run = MakeRun();
  auto me = run.model->Attach(gil::Role::kIo, "main");
  {
    Vm vm(program, *run.model, *me, {.max_instructions = 1000000, .heap = run.heap});
    run.model->Enter(*me);
    EXPECT_THROW(vm.Call("hold_forever", {}), VmError);
    run.model->Leave(*me);
  }
  StmRun* r = &run;
  std::thread other([r, program] { EXPECT_EQ(CallOnce(*r, program, "clock_then_bump", {}), 0); });
  other.join();
  EXPECT_EQ(Global(run, "hot"), 2);
}

TEST(StmModel, ALongInevitableUnitCommitsAtCheckPointsAndOthersGoOn) {
  // A sleeping (inevitable) long unit writes `hot` once, then spins through
  // many check points; a second thread's units must be able to finish before
  // it ends, since its pieces commit every stm_transaction_length instructions.
  auto program = Assemble(R"(
global hot
global other
func long n
  call now_ns
  pop
  gload hot
  push 1
  add
  gstore hot
  jmp test
body:
  inc n -1
test:
  load n
  push 0
  jgt body
  gload other
  ret
end
func short
  gload hot
  push 1
  add
  gstore hot
  gload other
  push 1
  add
  gstore other
  push 0
  ret
end
)",
                          "pieces.gasm");
  StmRun run = MakeRun({.gil = {}, .stm_transaction_length = 1000});
  std::atomic<int> shorts_done{0};
  std::latch long_started(1);
  std::thread shorts([&] {
    long_started.wait();
    auto me = run.model->Attach(gil::Role::kCpu, "short");
    Vm vm(program, *run.model, *me, {.heap = run.heap});
    run.model->Enter(*me);
    for (int i = 0; i < 100; ++i) {
      vm.Call("short", {});
      shorts_done.fetch_add(1);
    }
    run.model->Leave(*me);
  });
  int64_t seen = 0;
  {
    auto me = run.model->Attach(gil::Role::kIo, "long");
    Vm vm(program, *run.model, *me, {.heap = run.heap});
    run.model->Enter(*me);
    long_started.count_down();
    // Long enough that the 100 short units finish while it runs (bounded).
    for (int round = 0; round < 2000 && shorts_done.load() < 100; ++round) {
      seen = vm.Call("long", {Value::Int(100000)}).as_int();
    }
    run.model->Leave(*me);
  }
  shorts.join();
  EXPECT_EQ(shorts_done.load(), 100);
  EXPECT_EQ(Global(run, "other"), 100);
  EXPECT_GE(seen, 0);
  EXPECT_EQ(run.stm().Inevitable().aborted_while_inevitable, 0);
}

TEST(StmModel, FiguresPerThread) {
  auto program = LoadProgram("counter");
  StmRun run = MakeRun();
  auto me = run.model->Attach(gil::Role::kIo, "main");
  Vm vm(program, *run.model, *me, {.heap = run.heap});
  run.model->Enter(*me);
  for (int i = 0; i < 10; ++i) vm.Call("worker", {Value::Int(1), Value::Int(0)});
  run.model->Leave(*me);
  const auto f = run.model->Figures(*me);
  EXPECT_EQ(f.at("stm_commits"), 10);
  EXPECT_EQ(f.at("stm_aborts"), 0);
  EXPECT_GE(f.at("stm_committed_ns"), 0);
}

}  // namespace
}  // namespace gillab::interp
