// The seam between the VM and an execution model (exec_model.h): a fake
// model that counts every hook shows what the VM calls, when, and how often
// for a program; the registry builds a GilModel for every lock policy whose
// traits are the policy registry's.
#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "gil/error.h"
#include "gil/gil.h"
#include "interp/assembler.h"
#include "interp/exec_model.h"
#include "interp/gil_model.h"
#include "interp/vm.h"

namespace gillab::interp {
namespace {

class FakeThread final : public ExecThread {};

// Counts every hook. The breaker and the tick interval are set by the test;
// Block does not wait. abort_* make the model abort units (as STM would).
class CountingModel final : public ExecModel {
 public:
  std::string_view name() const override { return "counting"; }
  const ExecTraits& traits() const override { return traits_; }
  std::unique_ptr<ExecThread> Attach(gil::Role, std::string, int) override { return std::make_unique<FakeThread>(); }
  void Enter(ExecThread&) override { inside = true; }
  void Leave(ExecThread&) override { inside = false; }
  bool Inside(const ExecThread&) const override { return inside; }
  void BeginBlocking(ExecThread&) override { inside = false; }
  void EndBlocking(ExecThread&) override { inside = true; }
  const std::atomic<bool>& EvalBreaker(const ExecThread&) const override {
    ++breaker_reads;
    return breaker;
  }
  int64_t TickInterval() const override { return tick_interval; }
  void BeginUnit(ExecThread&) override {
    EXPECT_TRUE(inside);
    ++begins;
  }
  UnitVerdict EndUnit(ExecThread&, UnitEnd how) override {
    EXPECT_TRUE(inside);
    ends.push_back(how);
    if (how == UnitEnd::kCommitted && refuse_commits > 0) {
      --refuse_commits;
      return UnitVerdict::kRetry;
    }
    return UnitVerdict::kDone;
  }
  void OnCheckPoint(ExecThread&) override { ++check_points; }
  void OnTick(ExecThread&) override { ++ticks; }
  BlockResult Block(ExecThread& t, const BlockingWait& wait) override {
    BeginBlocking(t);
    blocks.push_back(std::string(wait.native) + ":" + std::to_string(wait.duration_us));
    EndBlocking(t);
    return {.resume_wait_ns = 42};
  }
  void OnExternalEffect(ExecThread&, std::string_view native) override {
    effects.emplace_back(native);
    if (abort_at_effects > 0) {
      --abort_at_effects;
      throw UnitAborted("conflict");
    }
  }
  void OnHeapAccess(ExecThread&, const HeapAccess&) override { ++heap_accesses; }
  void SetPriority(ExecThread&, int p) override { priorities.push_back(p); }

  std::atomic<bool> breaker{false};
  int64_t tick_interval = 0;
  bool inside = false;
  mutable int breaker_reads = 0;
  int begins = 0;
  std::vector<UnitEnd> ends;
  int check_points = 0;
  int ticks = 0;
  std::vector<std::string> blocks;
  std::vector<std::string> effects;
  int heap_accesses = 0;
  std::vector<int> priorities;
  int refuse_commits = 0;
  int abort_at_effects = 0;

 private:
  ExecTraits traits_{.exclusive = false};
};

class Seam : public ::testing::Test {
 protected:
  void SetUp() override {
    me_ = model_.Attach(gil::Role::kOther, "test", 0);
    model_.Enter(*me_);
  }
  Value Run(const std::string& source, const std::string& function, std::vector<Value> args, VmOptions options = {}) {
    Vm vm(Assemble(source, "t.gasm"), model_, *me_, options);
    return vm.Call(function, args);
  }
  CountingModel model_;
  std::unique_ptr<ExecThread> me_;
};

// countdown(n): n taken backward jumps, the loop's only check points.
TEST_F(Seam, EveryBackwardJumpIsACheckPointThatReachesTheModelOnlyWhenTheBreakerIsSet) {
  Vm vm(LoadProgram("countdown"), model_, *me_);
  EXPECT_EQ(vm.Call("main", {Value::Int(1000)}).as_int(), 0);
  EXPECT_EQ(model_.check_points, 0);  // breaker clear: the fast path only
  model_.breaker.store(true);
  EXPECT_EQ(vm.Call("main", {Value::Int(1000)}).as_int(), 0);
  EXPECT_EQ(model_.check_points, 1000);
  EXPECT_EQ(model_.breaker_reads, 2);  // once per Call, not per check point
  Vm no_breaker(LoadProgram("countdown"), model_, *me_, VmOptions{.eval_breaker = false});
  no_breaker.Call("main", {Value::Int(1000)});
  EXPECT_EQ(model_.check_points, 1000);
}

TEST_F(Seam, CallsAndReturnsAreCheckPoints) {
  model_.breaker.store(true);
  const std::string source =
      "func main\n  call f\n  call f\n  add\n  ret\nend\n"
      "func f\n  push 1\n  ret\nend\n";
  EXPECT_EQ(Run(source, "main", {}).as_int(), 2);
  EXPECT_EQ(model_.check_points, 4);  // two calls, two returns into main; main's own return is not one
}

// countdown(n) runs 2n + 4 instructions (see eval_breaker_test.cc's MutexTicks).
TEST_F(Seam, TicksComeEveryTickIntervalInstructions) {
  Vm vm(LoadProgram("countdown"), model_, *me_);
  vm.Call("main", {Value::Int(1000)});
  EXPECT_EQ(model_.ticks, 0);  // interval 0: no ticks
  model_.tick_interval = 10;
  vm.Call("main", {Value::Int(1000)});
  EXPECT_NEAR(model_.ticks, 2004 / 10.0, 2.0);
  Vm no_breaker(LoadProgram("countdown"), model_, *me_, VmOptions{.eval_breaker = false});
  const int before = model_.ticks;
  no_breaker.Call("main", {Value::Int(1000)});
  EXPECT_EQ(model_.ticks, before);
}

TEST_F(Seam, BlockingNativesGoThroughTheModelAndRecordItsResumeWait) {
  const std::string source =
      "func main\n  push 5\n  native sleep_us\n  pop\n  push 7\n  native sleep_us\n  ret\nend\n";
  Vm vm(Assemble(source, "t.gasm"), model_, *me_);
  vm.Call("main", {});
  EXPECT_EQ(model_.blocks, (std::vector<std::string>{"sleep_us:5", "sleep_us:7"}));
  EXPECT_TRUE(model_.inside);
  EXPECT_EQ(vm.reacquire_wait_ns().count(), 2u);
  EXPECT_EQ(vm.reacquire_wait_ns().max(), 42);
  // spin_holding_us keeps running VM code: no blocking section.
  Run("func main\n  push 1\n  native spin_holding_us\n  ret\nend\n", "main", {});
  EXPECT_EQ(model_.blocks.size(), 2u);
}

TEST_F(Seam, EachCallIsOneUnitThatEndsCommittedOrFailed) {
  Run("func main\n  push 1\n  ret\nend\n", "main", {});
  EXPECT_EQ(model_.begins, 1);
  EXPECT_EQ(model_.ends, (std::vector<UnitEnd>{UnitEnd::kCommitted}));
  EXPECT_THROW(Run("func main\n  push 1\n  push 0\n  div\n  ret\nend\n", "main", {}), VmError);
  EXPECT_EQ(model_.begins, 2);
  EXPECT_EQ(model_.ends, (std::vector<UnitEnd>{UnitEnd::kCommitted, UnitEnd::kFailed}));
  // A call refused before it starts (unknown function) is no unit at all.
  EXPECT_THROW(Run("func main\n  push 1\n  ret\nend\n", "nope", {}), VmError);
  EXPECT_EQ(model_.begins, 2);
}

TEST_F(Seam, NativesWithOutsideEffectsAndPrioritiesReachTheModel) {
  Run("func main\n  native now_ns\n  pop\n  push 3\n  native set_priority\n  ret\nend\n", "main", {});
  EXPECT_EQ(model_.effects, (std::vector<std::string>{"now_ns"}));
  EXPECT_EQ(model_.priorities, (std::vector<int>{3}));
  EXPECT_EQ(model_.heap_accesses, 0);  // traits: heap accesses not wanted
}

// An aborted unit is run again from the start with the same arguments; the
// strings the aborted attempt held are released (ASan's leak check).
TEST_F(Seam, AnAbortedUnitIsRunAgainAndItsStringsReleased) {
  const std::string source =
      "func main s\n  load s\n  push \"-x\"\n  concat\n  native now_ns\n  pop\n  ret\nend\n";
  model_.abort_at_effects = 2;
  EXPECT_EQ(Run(source, "main", {Value::Bytes("a")}).as_bytes(), "a-x");
  EXPECT_EQ(model_.begins, 3);
  EXPECT_EQ(model_.ends, (std::vector<UnitEnd>{UnitEnd::kAborted, UnitEnd::kAborted, UnitEnd::kCommitted}));
  EXPECT_EQ(model_.effects.size(), 3u);
}

TEST_F(Seam, ARefusedCommitRunsTheUnitAgain) {
  model_.refuse_commits = 1;
  EXPECT_EQ(Run("func main s\n  load s\n  push \"!\"\n  concat\n  ret\nend\n", "main", {Value::Bytes("b")}).as_bytes(),
            "b!");
  EXPECT_EQ(model_.begins, 2);
  EXPECT_EQ(model_.ends, (std::vector<UnitEnd>{UnitEnd::kCommitted, UnitEnd::kCommitted}));
}

TEST_F(Seam, AUnitThatNeverCommitsEndsInAVmErrorAfterTheRetryLimit) {
  model_.abort_at_effects = 1000;
  try {
    Run("func main\n  native now_ns\n  ret\nend\n", "main", {}, VmOptions{.max_unit_retries = 3});
    FAIL() << "no error";
  } catch (const VmError& e) {
    EXPECT_NE(std::string(e.what()).find("aborted 4 times"), std::string::npos) << e.what();
  }
  EXPECT_EQ(model_.begins, 4);
  // The Vm is reusable afterwards.
  model_.abort_at_effects = 0;
  EXPECT_GT(Run("func main\n  native now_ns\n  ret\nend\n", "main", {}).as_int(), 0);
}

// The registry: every lock policy is a GilModel whose traits, ticks and eval
// breaker come from the policy registry and the lock itself.
TEST(ExecModels, EveryLockPolicyIsAGilModelWithItsRegistryTraits) {
  // The lock policies first, in their registry's order, then the other models (stm).
  std::vector<std::string> expected = gil::PolicyNames();
  expected.push_back("stm");
  EXPECT_EQ(ExecModelNames(), expected);
  for (const std::string& name : gil::PolicyNames()) {
    SCOPED_TRACE(name);
    auto model = MakeExecModel(name, {.gil = {.check_interval = 77}});
    EXPECT_EQ(model->name(), name);
    gil::Gil* lock = model->lock();
    ASSERT_NE(lock, nullptr);
    const gil::PolicyTraits& traits = gil::PolicyTraitsOf(name);
    EXPECT_EQ(&lock->traits(), &traits);
    EXPECT_EQ(model->traits().exclusive, traits.exclusive);
    EXPECT_FALSE(model->traits().sees_heap_accesses);
    EXPECT_FALSE(model->traits().units_may_abort);
    EXPECT_EQ(model->TickInterval(), traits.uses_ticks ? 77 : 0);
    auto me = model->Attach(gil::Role::kCpu, "t", 0);
    EXPECT_EQ(&model->EvalBreaker(*me), &lock->eval_breaker());
    ASSERT_NE(me->lock_state(), nullptr);
    model->Enter(*me);
    EXPECT_TRUE(model->Inside(*me));
    model->BeginBlocking(*me);
    EXPECT_FALSE(model->Inside(*me));
    model->EndBlocking(*me);
    model->SetPriority(*me, 5);
    EXPECT_EQ(me->lock_state()->lock_priority(), 5);
    model->Leave(*me);
    EXPECT_FALSE(model->Inside(*me));
    EXPECT_EQ(me->lock_state()->stats().voluntary_releases, 2u);  // BeginBlocking and Leave
  }
}

TEST(ExecModels, UnknownNamesAndBadOptionsAreUsageErrors) {
  try {
    MakeExecModel("fair");
    FAIL() << "no exception";
  } catch (const UsageError& e) {
    EXPECT_STREQ(e.what(), "unknown policy 'fair' (choose from mutex, ticket, priority, newgil, none, stm)");
  }
  EXPECT_THROW(MakeExecModel("newgil", {.gil = {.switch_interval_us = 0}}), UsageError);
}

// The adapter's blocking wait (ExecModel::Block's default) releases the lock
// for the wait: another thread takes it meanwhile.
TEST(GilModelTest, SleepLetsAnotherThreadTakeTheLock) {
  auto model = MakeExecModel("ticket", {.gil = {.switch_interval_us = 1000}});
  auto me = model->Attach(gil::Role::kIo, "sleeper", 0);
  model->Enter(*me);
  std::atomic<bool> other_ran{false};
  std::thread other([&] {
    auto t = model->Attach(gil::Role::kCpu, "other", 0);
    model->Enter(*t);  // possible only while the sleeper is blocked
    other_ran.store(true);
    model->Leave(*t);
  });
  // Sleeps in slices until the other thread has held the lock (bounded: 10 s).
  Vm vm(Assemble("func main\n  push 1000\n  native sleep_us\n  ret\nend\n", "t.gasm"), *model, *me);
  for (int i = 0; i < 10000 && !other_ran.load(); ++i) vm.Call("main", {});
  EXPECT_TRUE(other_ran.load());
  EXPECT_TRUE(model->Inside(*me));
  model->Leave(*me);
  other.join();
}

}  // namespace
}  // namespace gillab::interp
