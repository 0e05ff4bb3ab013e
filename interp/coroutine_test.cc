// Coroutines (design §10): Vm::Start / Vm::Resume suspend at every blocking
// native and resume right after it with frames, locals and strings intact;
// many coroutines interleave on one Vm; a coroutine destroyed while suspended
// releases what it holds; an error ends only its own coroutine; and the same
// program blocks its OS thread under Vm::Call (the monkey-patch, both ways).
#include <gtest/gtest.h>

#include <deque>
#include <string>
#include <vector>

#include "gil/clock.h"
#include "interp/assembler.h"
#include "interp/exec_model.h"
#include "interp/vm.h"

namespace gillab::interp {
namespace {

using Status = Coroutine::Status;

// handle(request, n): waits n µs in sleep_us, then n+1 µs in backend_us from
// inside a callee, keeping a string local and a string on the operand stack
// across both suspensions; returns request .. "|" .. itoa(n).
constexpr const char* kHandler = R"(
func wait_backend us
  var tag
  const "b"
  store tag
  load us
  native backend_us
  pop
  load tag
  ret
end

func handle request n
  var keep
  load request
  const "|"
  concat
  store keep
  load keep
  load n
  native sleep_us
  pop
  load n
  push 1
  add
  call wait_backend
  pop
  load n
  itoa
  concat
  ret
end

func fails_after_wait n
  load n
  native sleep_us
  pop
  push 1
  push 0
  div
  ret
end

func deep depth
  load depth
  push 0
  jgt more
  push 0
  native sleep_us
  ret
more:
  load depth
  push 1
  sub
  call deep
  push 1
  add
  ret
end
)";

class CoroutineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = MakeExecModel("newgil");
    me_ = model_->Attach(gil::Role::kIo, "hub");
    model_->Enter(*me_);
    program_ = Assemble(kHandler, "handler.gasm");
  }
  void TearDown() override { model_->Leave(*me_); }

  std::unique_ptr<ExecModel> model_;
  std::unique_ptr<ExecThread> me_;
  std::shared_ptr<const Program> program_;
};

TEST_F(CoroutineTest, SuspendsAtEveryBlockingNativeAndResumesAfterIt) {
  Vm vm(program_, *model_, *me_);
  auto co = vm.Start("handle", {Value::Bytes("req"), Value::Int(40)});
  EXPECT_EQ(co->status(), Status::kReady);
  Value result;
  ASSERT_EQ(vm.Resume(*co, &result), Status::kSuspended);
  EXPECT_EQ(co->wait().native, "sleep_us");
  EXPECT_EQ(co->wait().kind, BlockingWait::Kind::kSleep);
  EXPECT_EQ(co->wait().duration_us, 40);
  ASSERT_EQ(vm.Resume(*co, &result), Status::kSuspended);
  EXPECT_EQ(co->wait().native, "backend_us");
  EXPECT_EQ(co->wait().kind, BlockingWait::Kind::kBackend);
  EXPECT_EQ(co->wait().duration_us, 41);
  ASSERT_EQ(vm.Resume(*co, &result), Status::kDone);
  EXPECT_EQ(result.as_bytes(), "req|40");
  EXPECT_EQ(co->status(), Status::kDone);
  EXPECT_THROW(vm.Resume(*co, &result), VmError);
  // A parked coroutine never waited: the hub does, so no re-acquisition was recorded.
  EXPECT_EQ(vm.reacquire_wait_ns().count(), 0u);
}

TEST_F(CoroutineTest, SameProgramBlocksItsThreadUnderCall) {
  Vm vm(program_, *model_, *me_);
  const int64_t start_ns = gil::NowNs();
  EXPECT_EQ(vm.Call("handle", {Value::Bytes("req"), Value::Int(2000)}).as_bytes(), "req|2000");
  EXPECT_GE(gil::NowNs() - start_ns, 4001 * 1000);  // both waits happened on this thread
  EXPECT_EQ(vm.reacquire_wait_ns().count(), 2u);    // and each gave up and retook the lock
  EXPECT_TRUE(model_->Inside(*me_));
}

TEST_F(CoroutineTest, CallsAndCoroutinesInterleaveOnOneVm) {
  Vm vm(program_, *model_, *me_);
  auto co = vm.Start("handle", {Value::Bytes("co"), Value::Int(0)});
  Value result;
  ASSERT_EQ(vm.Resume(*co, &result), Status::kSuspended);
  EXPECT_EQ(vm.Call("handle", {Value::Bytes("call"), Value::Int(0)}).as_bytes(), "call|0");
  ASSERT_EQ(vm.Resume(*co, &result), Status::kSuspended);
  ASSERT_EQ(vm.Resume(*co, &result), Status::kDone);
  EXPECT_EQ(result.as_bytes(), "co|0");
}

TEST_F(CoroutineTest, ManyCoroutinesRoundRobinThroughAReadyQueue) {
  Vm vm(program_, *model_, *me_);
  constexpr int kCount = 2000;
  std::vector<std::unique_ptr<Coroutine>> cos;
  std::deque<int> ready;
  for (int i = 0; i < kCount; ++i) {
    cos.push_back(vm.Start("handle", {Value::Bytes("c" + std::to_string(i)), Value::Int(i)}));
    ready.push_back(i);
  }
  std::vector<std::string> results(kCount);
  int steps = 0;
  while (!ready.empty() && steps < 10 * kCount) {
    const int i = ready.front();
    ready.pop_front();
    ++steps;
    Value result;
    if (vm.Resume(*cos[i], &result) == Status::kSuspended) {
      ready.push_back(i);
    } else {
      results[i] = result.as_bytes();
    }
  }
  EXPECT_EQ(steps, 3 * kCount);  // two suspensions and the end, each
  for (int i = 0; i < kCount; ++i) EXPECT_EQ(results[i], "c" + std::to_string(i) + "|" + std::to_string(i));
}

TEST_F(CoroutineTest, SuspendedSmallHandlerHoldsUnderOneKilobyte) {
  Vm vm(program_, *model_, *me_);
  auto co = vm.Start("handle", {Value::Bytes("req"), Value::Int(1)});
  Value result;
  ASSERT_EQ(vm.Resume(*co, &result), Status::kSuspended);
  ASSERT_EQ(vm.Resume(*co, &result), Status::kSuspended);  // inside the callee: two frames
  EXPECT_LE(co->bytes(), 1024u);
}

TEST_F(CoroutineTest, StackAndFramesGrowForDeepCalls) {
  Vm vm(program_, *model_, *me_);
  auto co = vm.Start("deep", {Value::Int(300)});
  const size_t small = co->bytes();
  Value result;
  ASSERT_EQ(vm.Resume(*co, &result), Status::kSuspended);  // 301 frames deep
  EXPECT_GT(co->bytes(), small);
  ASSERT_EQ(vm.Resume(*co, &result), Status::kDone);
  EXPECT_EQ(result.as_int(), 300);
  // The limits are those of Call.
  Vm tight(program_, *model_, *me_, VmOptions{.max_call_depth = 50});
  auto too_deep = tight.Start("deep", {Value::Int(100)});
  try {
    tight.Resume(*too_deep, &result);
    FAIL() << "expected a VmError";
  } catch (const VmError& e) {
    EXPECT_NE(std::string(e.what()).find("max_call_depth (50)"), std::string::npos) << e.what();
  }
  EXPECT_EQ(too_deep->status(), Status::kFailed);
}

TEST_F(CoroutineTest, DestroyedWhileSuspendedReleasesItsValues) {
  // Under ASan the strings the stack holds would leak if not released.
  Vm vm(program_, *model_, *me_);
  for (int i = 0; i < 100; ++i) {
    auto co = vm.Start("handle", {Value::Bytes(std::string(100, 'x')), Value::Int(5)});
    Value result;
    ASSERT_EQ(vm.Resume(*co, &result), Status::kSuspended);
    if (i % 2 == 0) {
      ASSERT_EQ(vm.Resume(*co, &result), Status::kSuspended);
    }
    // co goes out of scope suspended: the stop of a server with parked requests
  }
  auto never_run = vm.Start("handle", {Value::Bytes("never"), Value::Int(5)});
  never_run.reset();
  EXPECT_EQ(vm.Call("handle", {Value::Bytes("after"), Value::Int(0)}).as_bytes(), "after|0");
}

TEST_F(CoroutineTest, AnErrorEndsOnlyItsCoroutine) {
  Vm vm(program_, *model_, *me_);
  auto bad = vm.Start("fails_after_wait", {Value::Int(3)});
  auto good = vm.Start("handle", {Value::Bytes("ok"), Value::Int(3)});
  Value result;
  ASSERT_EQ(vm.Resume(*bad, &result), Status::kSuspended);
  ASSERT_EQ(vm.Resume(*good, &result), Status::kSuspended);
  try {
    vm.Resume(*bad, &result);
    FAIL() << "expected a VmError";
  } catch (const VmError& e) {
    EXPECT_NE(std::string(e.what()).find("division by zero"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("fails_after_wait"), std::string::npos) << e.what();
  }
  EXPECT_EQ(bad->status(), Status::kFailed);
  EXPECT_THROW(vm.Resume(*bad, &result), VmError);
  ASSERT_EQ(vm.Resume(*good, &result), Status::kSuspended);
  ASSERT_EQ(vm.Resume(*good, &result), Status::kDone);
  EXPECT_EQ(result.as_bytes(), "ok|3");
  EXPECT_TRUE(model_->Inside(*me_));
}

TEST_F(CoroutineTest, BadStartsAndForeignResumesAreErrors) {
  Vm vm(program_, *model_, *me_);
  Vm other(program_, *model_, *me_);
  EXPECT_THROW(vm.Start("nope", {}), VmError);
  EXPECT_THROW(vm.Start("handle", {Value::Int(1)}), VmError);
  auto co = vm.Start("handle", {Value::Bytes("x"), Value::Int(1)});
  Value result;
  EXPECT_THROW(other.Resume(*co, &result), VmError);
  EXPECT_EQ(co->status(), Status::kReady);
  // A negative wait is the program's error, as under Call.
  auto negative = vm.Start("handle", {Value::Bytes("x"), Value::Int(-1)});
  EXPECT_THROW(vm.Resume(*negative, &result), VmError);
  EXPECT_EQ(negative->status(), Status::kFailed);
}

}  // namespace
}  // namespace gillab::interp
