// sim_stm_test.cc — the stm model in virtual time (sim_stm.h, and
// `simulate --policy stm`): it finishes, it stays serialisable (the bank's
// sum, the counter's count), the same seed gives the same bytes, more cores
// give more transactions per second when units do not conflict, a hot
// counter's aborts grow with the workers, and inevitable units (now_ns)
// wait for the token through the platform seam. Small workloads: seconds.
#include "sim/sim_stm.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "gil/error.h"
#include "sim/sim_contend.h"

namespace gillab::sim {
namespace {

StmWorkersOptions Race(const std::string& program, int64_t n, int workers, int cores, int transactions) {
  StmWorkersOptions o;
  o.workload.kind = "race";
  o.workload.program = program;
  o.workload.n = n;
  o.workers = workers;
  o.sim.os.cores = cores;
  o.transactions = transactions;
  o.model.quantum_instructions = 512;
  o.sim.max_virtual_ns = 10'000'000'000;
  return o;
}

// A race program whose units share nothing: worker(n, id) counts n down.
std::string ConflictFreeProgram() {
  const std::filesystem::path path = std::filesystem::path(testing::TempDir()) / "sim_stm_countdown.gasm";
  std::ofstream(path) << "func setup k n\n  push 0\n  ret\nend\n"
                         "func worker n id\n  jmp test\nbody:\n  inc n -1\ntest:\n  load n\n  push 0\n  jgt body\n"
                         "  push 0\n  ret\nend\n"
                         "func check\n  push 0\n  ret\nend\n";
  return path.string();
}

TEST(SimStm, BankConservesItsSumWithTwoToEightWorkers) {
  for (int workers : {2, 4, 8}) {
    const StmWorkersResult r = RunStmWorkers(Race("bank", 20, workers, 4, 64));
    ASSERT_TRUE(r.checked);
    EXPECT_EQ(r.check, 100000) << workers << " workers";
    EXPECT_EQ(r.commits, 64) << workers << " workers";
    EXPECT_GT(r.seconds, 0);
  }
}

TEST(SimStm, HotCounterIsExactAndItsAbortsGrowWithWorkers) {
  int64_t aborts[3] = {};
  int i = 0;
  for (int workers : {1, 2, 4}) {
    const StmWorkersResult r = RunStmWorkers(Race("counter", 2000, workers, 4, 40));
    ASSERT_TRUE(r.checked);
    EXPECT_EQ(r.check, 40 * 2000) << workers << " workers";
    aborts[i++] = r.aborts;
  }
  EXPECT_EQ(aborts[0], 0);
  EXPECT_GT(aborts[1], 0);
  EXPECT_GT(aborts[2], aborts[1]);
}

TEST(SimStm, SameSeedGivesByteIdenticalJson) {
  StmWorkersOptions o = Race("counter", 500, 3, 2, 30);
  o.sim.seed = 7;
  const std::string a = ToJson(RunStmWorkers(o)).dump();
  const std::string b = ToJson(RunStmWorkers(o)).dump();
  EXPECT_EQ(a, b);
  EXPECT_NE(a.find("\"mode\":\"simulate\""), std::string::npos);
  EXPECT_EQ(a.find("host"), std::string::npos);  // no host figure in the JSON
}

TEST(SimStm, MoreCoresGiveMoreTransactionsPerSecondWhenUnitsDoNotConflict) {
  const std::string program = ConflictFreeProgram();
  const StmWorkersResult one = RunStmWorkers(Race(program, 20000, 1, 1, 16));
  const StmWorkersResult four = RunStmWorkers(Race(program, 20000, 4, 4, 16));
  const StmWorkersResult four_on_two = RunStmWorkers(Race(program, 20000, 4, 2, 16));
  EXPECT_EQ(four.aborts, 0);
  EXPECT_GT(four.per_second, 3.0 * one.per_second);
  EXPECT_LT(four.per_second, 4.5 * one.per_second);
  // Four workers on two cores: about two cores' worth.
  EXPECT_GT(four_on_two.per_second, 1.5 * one.per_second);
  EXPECT_LT(four_on_two.per_second, 2.5 * one.per_second);
}

TEST(SimStm, NowNsMakesEveryUnitInevitableAndSerialisesThem) {
  StmWorkersOptions o;
  o.workload.payload = "300";
  o.workers = 2;
  o.sim.os.cores = 2;
  o.transactions = 8;
  o.workload.framework_clock = "now_ns";
  const StmWorkersResult inevitable = RunStmWorkers(o);
  EXPECT_EQ(inevitable.inevitable_units, 8);
  EXPECT_EQ(inevitable.aborts, 0);
  o.workload.framework_clock = "transaction_time";
  const StmWorkersResult parallel = RunStmWorkers(o);
  EXPECT_EQ(parallel.inevitable_units, 0);
  EXPECT_GT(parallel.per_second, 1.5 * inevitable.per_second);
}

TEST(SimStm, RealThreadsRunTheSameWorkload) {
  StmWorkersOptions o = Race("bank", 20, 2, 2, 64);
  o.real = true;
  const StmWorkersResult r = RunStmWorkers(o);
  EXPECT_EQ(r.check, 100000);
  EXPECT_EQ(r.commits, 64);
  EXPECT_NE(ToJson(r).dump().find("\"mode\":\"real\""), std::string::npos);
}

TEST(SimStm, BadOptionsAreUsageErrors) {
  StmWorkersOptions o;
  o.workers = 0;
  EXPECT_THROW(RunStmWorkers(o), UsageError);
  o = {};
  o.workload.kind = "both";
  EXPECT_THROW(RunStmWorkers(o), UsageError);
  o = {};
  o.workload.kind = "race";
  o.workload.program = "countdown";  // no setup/worker/check
  EXPECT_THROW(RunStmWorkers(o), UsageError);
}

TEST(SimContendStm, RunsContendUnderStmInVirtualTime) {
  SimContendOptions o;
  o.contend.policy = "stm";
  o.contend.cpu_threads = 2;
  o.contend.iterations = 10;
  o.contend.io_sleep_us = 100;
  o.contend.stall_threshold_ms = 0;
  o.sim.os.cores = 2;
  o.model.quantum_instructions = 4096;
  const SimContendResult r = RunSimContend(o);
  EXPECT_EQ(r.contend.io_steps, 10);
  ASSERT_FALSE(r.model_report.is_null());
  // Every io step sleeps: an outside effect, so each is an inevitable unit.
  EXPECT_GE(r.model_report.value("inevitable_units", int64_t{0}), 10);
  // No lock: the io thread never waits for one (contend's stm figure).
  EXPECT_LT(r.contend.io_wait_ns.Percentile(50), 1'000);
  const std::string a = ToJson(r).dump();
  EXPECT_EQ(a, ToJson(RunSimContend(o)).dump());
}

}  // namespace
}  // namespace gillab::sim
