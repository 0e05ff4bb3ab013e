// The shared heap (heap.h, design §8): globals, tables, ownership, and the
// atomicity promises — exact counts under every exclusive lock policy, lost
// updates but no undefined behaviour under `none` (these tests run under
// ASan and TSan: labels asan, tsan).
#include "interp/heap.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include <fmt/core.h>

#include "gil/gil.h"
#include "interp/assembler.h"
#include "interp/disassembler.h"
#include "interp/exec_model.h"
#include "interp/program.h"
#include "interp/race.h"
#include "interp/vm.h"

namespace gillab::interp {
namespace {

class HeapTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = MakeExecModel("newgil");
    me_ = model_->Attach(gil::Role::kOther, "test");
    model_->Enter(*me_);
    heap_ = std::make_shared<Heap>();
  }
  void TearDown() override { model_->Leave(*me_); }

  // Runs main(args) of `text` on this thread against heap_.
  Value Run(const std::string& text, std::vector<Value> args = {}) {
    Vm vm(Assemble(text, "heap.gasm"), *model_, *me_, VmOptions{.heap = heap_});
    return vm.Call("main", args);
  }
  std::string Error(const std::string& text) {
    try {
      Run(text);
    } catch (const VmError& e) {
      return e.what();
    }
    return "no error";
  }

  std::unique_ptr<ExecModel> model_;
  std::unique_ptr<ExecThread> me_;
  std::shared_ptr<Heap> heap_;
};

TEST_F(HeapTest, GlobalsStartAtZeroAndAreSharedByEveryVmOfTheHeap) {
  const std::string program =
      "global counter\n"
      "func main\n  gload counter\n  push 1\n  add\n  dup\n  gstore counter\n  ret\nend\n";
  EXPECT_EQ(Run(program).as_int(), 1);
  EXPECT_EQ(Run(program).as_int(), 2);  // another Vm, the same heap
  // A global may be declared after its use; another program sees it by name.
  EXPECT_EQ(Run("func main\n  gload counter\n  ret\nend\nglobal counter\n").as_int(), 2);
  EXPECT_EQ(heap_->Dump().at("counter"), "2");
  heap_ = std::make_shared<Heap>();
  EXPECT_EQ(Run(program).as_int(), 1);  // a new heap starts again from 0
}

TEST_F(HeapTest, GlobalsHoldBytesAndTables) {
  EXPECT_EQ(Run("global g\nfunc main\n  push \"abc\"\n  gstore g\n  gload g\n  gload g\n  concat\n  ret\nend\n")
                .as_bytes(),
            "abcabc");
  EXPECT_EQ(Run("global g\nfunc main\n  tnew\n  gstore g\n  gload g\n  push 1\n  push 2\n  tset\n"
                "  gload g\n  push 1\n  tget\n  ret\nend\n")
                .as_int(),
            2);
  EXPECT_EQ(heap_->Dump().at("g"), "table(1)");
  EXPECT_EQ(heap_->live_tables(), 1);
  Run("global g\nfunc main\n  push 0\n  gstore g\n  push 0\n  ret\nend\n");
  EXPECT_EQ(heap_->live_tables(), 0);  // replacing the global freed the table
}

TEST_F(HeapTest, TableGetSetDeleteLenWithIntAndBytesKeys) {
  const std::string program = R"(
func main
  var t
  tnew
  store t
  load t
  push 0
  push 10
  tset
  load t
  push 1
  push 11
  tset
  load t
  push -5
  push 12
  tset
  load t
  push "0"
  push "zero"
  tset
  load t
  push 1
  push 21
  tset          ; replaces
  load t
  len           ; 4 keys: 0 1 -5 "0"
  push 1000
  mul
  load t
  push 1
  tget          ; 21
  add
  load t
  push 0
  tdel          ; the array part's head: its tail moves to the hash part
  load t
  push 99
  tdel          ; absent: nothing
  load t
  len           ; 3
  push 100
  mul
  add
  load t
  push 0
  thas          ; 0
  push 10
  mul
  add
  load t
  push "0"
  thas          ; 1: "0" is not 0
  add
  load t
  push 1
  tget
  add           ; 21 again, now from the hash part
  ret
end
)";
  EXPECT_EQ(Run(program).as_int(), 4000 + 21 + 300 + 0 + 1 + 21);
}

TEST_F(HeapTest, KeysSnapshotIsSortedIntsThenBytes) {
  const std::string program = R"(
func main
  var t k i out
  tnew
  store t
  load t
  push "b"
  push 1
  tset
  load t
  push 7
  push 1
  tset
  load t
  push "a"
  push 1
  tset
  load t
  push -3
  push 1
  tset
  load t
  tkeys
  store k
  push ""
  store out
  jmp test
loop:
  load out
  load k
  load i
  tget
  call show
  concat
  push ","
  concat
  store out
  inc i 1
test:
  load i
  load k
  len
  jlt loop
  load out
  ret
end

func show x
  load x
  push 0
  eq
  jnz zero
  load x
  push "a"
  eq
  jnz bytes
  load x
  push "b"
  eq
  jnz bytes
  load x
  itoa
  ret
bytes:
  load x
  ret
zero:
  push "0"
  ret
end
)";
  EXPECT_EQ(Run(program).as_bytes(), "-3,7,a,b,");
}

TEST_F(HeapTest, NestedTablesAndIdentity) {
  const std::string program = R"(
func main
  var outer inner
  tnew
  store outer
  tnew
  store inner
  load outer
  push "in"
  load inner
  tset
  load inner
  push 5
  push 42
  tset
  load outer
  push "in"
  tget
  push 5
  tget          ; 42 through the outer table
  load outer
  push "in"
  tget
  load inner
  eq            ; the same table: 1
  add
  tnew
  tnew
  eq            ; two empty tables differ: 0
  add
  load inner
  push 0
  eq            ; a table never equals an int
  add
  ret
end
)";
  EXPECT_EQ(Run(program).as_int(), 43);
  EXPECT_EQ(heap_->live_tables(), 0);
}

TEST_F(HeapTest, BadKeyTypesAndMissingKeysAreVmErrors) {
  EXPECT_NE(Error("func main\n  tnew\n  push 3\n  tget\n  ret\nend\n").find("no key 3 in the table"), std::string::npos);
  EXPECT_NE(Error("func main\n  tnew\n  tnew\n  push 1\n  tset\n  push 0\n  ret\nend\n").find("a table cannot be a key"),
            std::string::npos);
  EXPECT_NE(Error("func main\n  tnew\n  tnew\n  thas\n  ret\nend\n").find("a table cannot be a key"), std::string::npos);
  EXPECT_NE(Error("func main\n  push \"x\"\n  push 1\n  tget\n  ret\nend\n").find("expects a table, got bytes"),
            std::string::npos);
  EXPECT_NE(Error("func main\n  tnew\n  push 1\n  add\n  ret\nend\n").find("expects two ints, got table and int"),
            std::string::npos);
  EXPECT_NE(Error("func main\n  tnew\n  tnew\n  lt\n  ret\nend\n").find("cannot order table and table"), std::string::npos);
  EXPECT_NE(Error("func main\n  tnew\n  push \"a\"\n  concat\n  ret\nend\n").find("expects two bytes"), std::string::npos);
  EXPECT_NE(Error("func main\n  tnew\n  ret\nend\n").find("returned a table"), std::string::npos);
  EXPECT_NE(Error("func main\n  tnew\n  jz x\nx:\n  push 0\n  ret\nend\n").find("got table"), std::string::npos);
  EXPECT_EQ(heap_->live_tables(), 0);  // every failure released what its stack held
}

TEST_F(HeapTest, AssemblerDeclaresGlobalsAndTheDisassemblerNamesThem) {
  auto p = Assemble("global a b\nfunc main\n  gload b\n  gstore a\n  push 0\n  ret\nend\n", "g.gasm");
  EXPECT_EQ(p->globals, (std::vector<std::string>{"a", "b"}));
  const std::string text = Disassemble(*p);
  EXPECT_NE(text.find("gload    1 (b)"), std::string::npos) << text;
  EXPECT_NE(text.find("gstore   0 (a)"), std::string::npos) << text;
  auto fails_at = [](const std::string& src) {
    try {
      Assemble(src, "g.gasm");
    } catch (const AsmError& e) {
      return fmt::format("{}:{} {}", e.line, e.col, e.what());
    }
    return std::string("assembled");
  };
  EXPECT_NE(fails_at("global a a\n").find("already declared"), std::string::npos);
  EXPECT_NE(fails_at("func main\n  gload nope\n  ret\nend\n").find("unknown global 'nope'"), std::string::npos);
  EXPECT_NE(fails_at("global\n").find("expected a global name"), std::string::npos);
  EXPECT_NE(fails_at("global 5\n").find("expected a global name"), std::string::npos);
  EXPECT_NE(fails_at("func main\n  gload\n  ret\nend\nglobal x\n").find("expected a global name after 'gload'"),
            std::string::npos);
  // A fused jump before a global use leaves the operand pointing at the right global.
  auto fused = Assemble(
      "global a b\nfunc main n\nl:\n  load n\n  push 0\n  jgt l\n  gload b\n  ret\nend\n", "g.gasm");
  EXPECT_NE(Disassemble(*fused).find("gload    1 (b)"), std::string::npos) << Disassemble(*fused);
}

TEST_F(HeapTest, ACycleIsFreedWithTheHeapAndAChainReleasesWithoutRecursion) {
  // t["self"] = t: a cycle the counts never free; the Heap frees it (LSan checks).
  Run("global g\nfunc main\n  var t\n  tnew\n  store t\n  load t\n  push \"self\"\n  load t\n  tset\n"
      "  push 0\n  ret\nend\n");
  EXPECT_EQ(heap_->live_tables(), 1);
  // A chain of 200000 nested tables held by a global, then dropped at once.
  Run(R"(
global chain
func main n
  var t
  jmp test
loop:
  tnew
  store t
  load t
  push 0
  gload chain
  tset
  load t
  gstore chain
  inc n -1
test:
  load n
  push 0
  jgt loop
  push 0
  gstore chain
  push 0
  ret
end
)",
      {Value::Int(200000)});
  EXPECT_EQ(heap_->live_tables(), 1);
}

TEST_F(HeapTest, StringsStoredInTheHeapOutliveTheVmThatMadeThem) {
  Run("global g\nfunc main\n  push 12345\n  itoa\n  push \"-x\"\n  concat\n  gstore g\n  push 0\n  ret\nend\n");
  EXPECT_EQ(heap_->Dump().at("g"), "12345-x");
  EXPECT_EQ(Run("global g\nfunc main\n  gload g\n  ret\nend\n").as_bytes(), "12345-x");
}

// --- K threads: gillab race ---------------------------------------------

RaceResult Race(const std::string& program, const std::string& policy, int threads, int64_t n) {
  // A short switch interval makes the lock change hands many times per run.
  return RunRace({.program = program, .policy = policy, .threads = threads, .n = n, .switch_interval_us = 200,
                  .check_interval = 100});
}

TEST(Race, CounterIsExactUnderEveryExclusivePolicy) {
  for (const char* policy : {"mutex", "ticket", "priority", "newgil"}) {
    for (int k = 2; k <= 4; ++k) {
      SCOPED_TRACE(fmt::format("{} K={}", policy, k));
      const RaceResult r = Race("counter", policy, k, 20000);
      ASSERT_TRUE(r.expected.has_value());
      EXPECT_EQ(*r.expected, k * 20000);
      EXPECT_EQ(r.outcome, *r.expected) << FormatRaceLine(r);
      EXPECT_FALSE(r.concurrent_heap);
    }
  }
}

TEST(Race, BankConservesItsSumUnderEveryExclusivePolicy) {
  for (const char* policy : {"mutex", "ticket", "priority", "newgil"}) {
    for (int k = 2; k <= 4; ++k) {
      SCOPED_TRACE(fmt::format("{} K={}", policy, k));
      const RaceResult r = Race("bank", policy, k, 5000);
      EXPECT_EQ(r.outcome, 100000) << FormatRaceLine(r);
    }
  }
}

TEST(Race, NoneRunsRacingProgramsWithoutUndefinedBehaviour) {
  // Lost updates are possible (not certain on a quiet machine): the outcome is
  // at most the exact count and every single operation stayed atomic.
  const RaceResult counter = Race("counter", "none", 4, 20000);
  EXPECT_TRUE(counter.concurrent_heap);
  EXPECT_GT(counter.outcome, 0);
  EXPECT_LE(counter.outcome, 80000);
  const RaceResult bank = Race("bank", "none", 4, 5000);
  EXPECT_TRUE(bank.concurrent_heap);
  const RaceResult heap = Race(GILLAB_INTERP_TESTDATA "/race_heap.gasm", "none", 4, 800);
  EXPECT_GE(heap.outcome, 0);
}

TEST(Race, LineReportsTheOutcomeAgainstTheExpectation) {
  RaceResult r;
  r.options.policy = "none";
  r.program_name = "counter";
  r.outcome = 1312004;
  r.expected = 2000000;
  EXPECT_EQ(FormatRaceLine(r), "none: counter 1312004 of 2000000 (lost 34.4%)");
  r.outcome = 2000000;
  r.options.policy = "newgil";
  EXPECT_EQ(FormatRaceLine(r), "newgil: counter 2000000 of 2000000");
  r.program_name = "bank";
  r.outcome = 101200;
  r.expected = 100000;
  EXPECT_EQ(FormatRaceLine(r), "newgil: bank 101200 of 100000 (off by 1.2%)");
}

TEST(Race, ProgramsWithoutTheConventionAreUsageErrors) {
  EXPECT_THROW(RunRace({.program = "countdown"}), UsageError);
  EXPECT_THROW(RunRace({.program = "counter", .threads = 0}), UsageError);
  EXPECT_THROW(RunRace({.program = "counter", .policy = "nope"}), UsageError);
}

}  // namespace
}  // namespace gillab::interp
