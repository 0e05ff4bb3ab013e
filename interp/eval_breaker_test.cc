// The VM's side of the lock: check points honour a waiter's drop request,
// a VM without the eval breaker never yields, spin_holding_us keeps the lock,
// sleep_us releases it, and `mutex` yields every check_interval instructions.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <latch>
#include <thread>

#include "gil/gil.h"
#include "interp/assembler.h"
#include "interp/gil_model.h"
#include "interp/vm.h"

namespace gillab::interp {
namespace {

using std::chrono::milliseconds;

// Runs `function(args)` of `program` on its own thread, holding `gil`, and
// records when the call returned (before the lock is released).
class VmThread {
 public:
  VmThread(gil::Gil& gil, std::shared_ptr<const Program> program, std::string function, std::vector<Value> args,
           VmOptions options = {})
      : thread_([&gil, this, program, function, args, options] {
          me_ = gil.Attach(gil::Role::kCpu, "vm");
          GilModel model(gil);  // the lock policy behind the seam
          GilThread thread(*me_);
          Vm vm(program, model, thread, options);
          vm_.store(&vm);
          gil.Acquire(*me_);
          started_.count_down();
          try {
            vm.Call(function, args);
          } catch (const std::exception& e) {
            ADD_FAILURE() << e.what();
          }
          returned_ns_.store(gil::NowNs());
          gil.Release(*me_);
          while (!stopped_.load()) std::this_thread::sleep_for(milliseconds(1));  // keep vm alive for Stop()
          vm_.store(nullptr);
        }) {
    started_.wait();  // the VM thread holds the lock
  }
  ~VmThread() { Join(); }
  void Stop() {
    if (Vm* vm = vm_.load()) vm->RequestStop();
    stopped_.store(true);
  }
  void Join() {
    Stop();
    if (thread_.joinable()) thread_.join();
  }
  int64_t returned_ns() const { return returned_ns_.load(); }  // 0 while running
  const gil::ThreadState& state() const { return *me_; }

 private:
  std::latch started_{1};
  std::atomic<Vm*> vm_{nullptr};
  std::atomic<bool> stopped_{false};
  std::atomic<int64_t> returned_ns_{0};
  std::unique_ptr<gil::ThreadState> me_;
  std::thread thread_;
};

class EvalBreaker : public ::testing::TestWithParam<std::string> {};

TEST_P(EvalBreaker, VmThreadHonoursAWaitersDropRequestAtItsNextCheckPoint) {
  auto gil = gil::MakeGil(GetParam(), {.switch_interval_us = 1000});
  VmThread spinner(*gil, LoadProgram("cpu_spin"), "main", {Value::Int(0)});
  auto me = gil->Attach(gil::Role::kIo, "waiter");
  gil->Acquire(*me);  // only possible if the spinning VM yields
  EXPECT_EQ(spinner.returned_ns(), 0) << "the VM finished instead of yielding";
  gil->Release(*me);
  spinner.Join();
  EXPECT_GE(spinner.state().stats().forced_drops, 1u);
  EXPECT_GE(me->stats().yield_requests + me->stats().acquisitions, 1u);
}

INSTANTIATE_TEST_SUITE_P(Policies, EvalBreaker, ::testing::Values("ticket", "priority", "newgil"));

TEST(EvalBreakerOff, VmWithoutTheEvalBreakerNeverYields) {
  auto gil = gil::MakeGil("ticket", {.switch_interval_us = 1000});
  VmThread spinner(*gil, LoadProgram("cpu_spin"), "main", {Value::Int(0)}, VmOptions{.eval_breaker = false});
  std::atomic<int64_t> acquired_ns{0};
  std::thread waiter([&] {
    auto me = gil->Attach(gil::Role::kIo, "waiter");
    gil->Acquire(*me);
    acquired_ns.store(gil::NowNs());
    gil->Release(*me);
  });
  std::this_thread::sleep_for(milliseconds(50));  // 50 switch intervals
  EXPECT_EQ(acquired_ns.load(), 0) << "the lock changed hands without a check point";
  spinner.Join();
  waiter.join();
  EXPECT_EQ(spinner.state().stats().forced_drops, 0u);
  EXPECT_GE(acquired_ns.load(), spinner.returned_ns());
}

TEST(Natives, SpinHoldingKeepsTheLock) {
  auto gil = gil::MakeGil("ticket", {.switch_interval_us = 1000});
  auto program = Assemble("func main us\n  load us\n  native spin_holding_us\n  ret\nend\n", "spin.gasm");
  const int64_t start_ns = gil::NowNs();
  VmThread holder(*gil, program, "main", {Value::Int(100000)});
  auto me = gil->Attach(gil::Role::kIo, "waiter");
  gil->Acquire(*me);
  const int64_t acquired_ns = gil::NowNs();
  gil->Release(*me);
  holder.Join();
  EXPECT_NE(holder.returned_ns(), 0);
  EXPECT_GE(acquired_ns, holder.returned_ns());
  EXPECT_GE(acquired_ns - start_ns, 100'000'000);
  EXPECT_EQ(holder.state().stats().forced_drops, 0u);
}

TEST(Natives, SleepReleasesTheLockForItsDuration) {
  auto gil = gil::MakeGil("ticket", {.switch_interval_us = 1000});
  auto program = Assemble("func main us\n  load us\n  native sleep_us\n  ret\nend\n", "sleep.gasm");
  VmThread sleeper(*gil, program, "main", {Value::Int(300000)});
  auto me = gil->Attach(gil::Role::kIo, "other");
  gil->Acquire(*me);
  EXPECT_EQ(sleeper.returned_ns(), 0) << "got the lock only after the sleeper finished";
  gil->Release(*me);
  sleeper.Join();
  EXPECT_EQ(sleeper.state().stats().voluntary_releases, 2u);  // inside sleep_us, and at the end
}

TEST(MutexTicks, MutexPolicyYieldsEveryCheckIntervalInstructions) {
  auto gil = gil::MakeGil("mutex", {.check_interval = 100});
  auto me = gil->Attach(gil::Role::kCpu, "alone");
  auto program = LoadProgram("countdown");
  gil->Acquire(*me);
  GilModel model(*gil);
  GilThread thread(*me);
  // countdown(n) runs 2n + 4 instructions: jmp, n x (jgt_li, inc), jgt_li, load, ret.
  Vm vm(program, model, thread);
  vm.Call("main", {Value::Int(10000)});
  EXPECT_NEAR(static_cast<double>(me->stats().forced_drops), 20004 / 100.0, 2.0);
  Vm no_breaker(program, model, thread, VmOptions{.eval_breaker = false});
  const uint64_t before = me->stats().forced_drops;
  no_breaker.Call("main", {Value::Int(10000)});
  EXPECT_EQ(me->stats().forced_drops, before);
  gil->Release(*me);
}

}  // namespace
}  // namespace gillab::interp
