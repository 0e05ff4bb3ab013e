// stall_test.cc — a native that holds the lock for seconds (spin_holding_us)
// is reported as a stall naming its thread, and the run still ends on time:
// RequestStop cuts the spin short. A normal contend run reports no stall.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>

#include "gil/gil.h"
#include "interp/assembler.h"
#include "interp/contend.h"
#include "interp/vm.h"

namespace gillab::interp {
namespace {

constexpr int64_t kMs = 1'000'000;

std::string SpinHoldingProgram() { return std::string(GILLAB_INTERP_TESTDATA) + "/spin_holding.gasm"; }

TEST(SpinHolding, EndsEarlyWhenTheVmIsAskedToStop) {
  auto model = MakeExecModel("ticket");
  auto program = Assemble("func main us\n  load us\n  native spin_holding_us\n  ret\nend\n", "spin.gasm");
  auto me = model->Attach(gil::Role::kCpu, "cpu-0");
  Vm vm(program, *model, *me);
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    vm.RequestStop();
  });
  const int64_t start_ns = gil::NowNs();
  model->Enter(*me);
  vm.Call("main", {Value::Int(20'000'000)});  // 20 s unless stopped
  model->Leave(*me);
  const int64_t elapsed_ns = gil::NowNs() - start_ns;
  stopper.join();
  EXPECT_GE(elapsed_ns, 90 * kMs);
  EXPECT_LT(elapsed_ns, 5000 * kMs) << "the spin ignored RequestStop";
}

TEST(ContendStall, ASpinningNativeIsReportedNamingItsThreadAndTheRunEndsOnTime) {
  ContendOptions o;
  o.policy = "newgil";
  o.switch_interval_us = 1000;
  o.cpu_program = SpinHoldingProgram();  // 20 s per spin
  o.iterations = 1'000'000;              // only the duration can end this run
  o.io_sleep_us = 1000;
  // The monitor reports the hold ~0.2 s after the io thread starts waiting; a
  // loaded sanitizer build may start the threads a second late, and the run
  // must not end before the report.
  o.duration_ms = 2500;
  o.stall_threshold_ms = 200;
  ::testing::internal::CaptureStderr();
  const int64_t start_ns = gil::NowNs();
  const ContendResult r = RunContend(o);
  const int64_t elapsed_ns = gil::NowNs() - start_ns;
  const std::string err = ::testing::internal::GetCapturedStderr();
  // 2.5 s plus generous slack, far below the 20 s the spin would take.
  EXPECT_LT(elapsed_ns, 10'000 * kMs) << "the run outlived its duration";
  EXPECT_EQ(r.stalls, 1u) << err;
  EXPECT_NE(err.find("gillab: stall: thread cpu-0 (role cpu) has held the lock for "), std::string::npos) << err;
  EXPECT_NE(err.find("without a check point"), std::string::npos) << err;
  EXPECT_LT(r.io_steps, o.iterations);
  EXPECT_EQ(ToJson(r)["stalls"], 1);
}

TEST(ContendStall, ANormalRunReportsNoStall) {
  for (const char* policy : {"newgil", "ticket", "priority", "mutex"}) {
    ContendOptions o;
    o.policy = policy;
    o.switch_interval_us = 1000;
    o.iterations = 1'000'000;
    o.duration_ms = 1500;  // each run outlasts the threshold by half
    o.io_sleep_us = 2000;
    // Far above any hold of a cpu_spin thread that reaches its check points,
    // and above how long a loaded machine keeps a runnable thread off the CPU
    // (0.3 s was seen under ASan with a load average of 12); a thread that
    // never reached a check point would hold for the whole run.
    o.stall_threshold_ms = 1000;
    ::testing::internal::CaptureStderr();
    const ContendResult r = RunContend(o);
    const std::string err = ::testing::internal::GetCapturedStderr();
    EXPECT_EQ(r.stalls, 0u) << policy << ": " << err;
    EXPECT_EQ(err.find("stall:"), std::string::npos) << policy << ": " << err;
    EXPECT_GT(r.io_steps, 0) << policy;
  }
}

}  // namespace
}  // namespace gillab::interp
