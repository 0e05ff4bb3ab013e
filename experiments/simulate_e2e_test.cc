// simulate_e2e_test.cc — `gillab simulate` and `gillab stm-workers` through
// the real binary: the same seed prints the same bytes, bad input is one line
// on stderr and exit 2.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "experiments/gillab_test_util.h"

namespace gillab::experiments {
namespace {

const std::vector<std::string> kSmall = {"simulate", "--policy", "newgil", "--cpu-threads", "3", "--cores", "2",
                                         "--iterations", "10", "--io-sleep-us", "200", "--switch-interval-us",
                                         "1000", "--json"};

std::vector<std::string> With(std::vector<std::string> args, const std::vector<std::string>& more) {
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

TEST(SimulateE2e, SameSeedSameBytes) {
  const GillabResult a = RunGillab(With(kSmall, {"--seed", "7"}), 120);
  const GillabResult b = RunGillab(With(kSmall, {"--seed", "7"}), 120);
  ASSERT_EQ(a.exit_code, 0) << a.err;
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_EQ(a.out, b.out);
  EXPECT_NE(a.out.find("\"mode\":\"simulate\""), std::string::npos) << a.out;
  EXPECT_NE(a.out.find("\"cores\":2"), std::string::npos) << a.out;
}

TEST(SimulateE2e, BadInputIsOneLineAndExitTwo) {
  for (const auto& bad : std::vector<std::vector<std::string>>{
           {"simulate", "--cores", "0"}, {"simulate", "--policy", "mutex"}, {"simulate", "--iterations", "0"},
           {"simulate", "--policy", "nosuch"}, {"simulate", "--vm-instruction-ns", "-1"}}) {
    const GillabResult r = RunGillab(bad, 60);
    EXPECT_EQ(r.exit_code, 2) << bad[1] << " " << bad[2];
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
}

// STM in virtual time: `simulate --policy stm` and `stm-workers` (sim/sim_stm.h).
TEST(SimulateE2e, StmRunsAndStmWorkersGiveTheSameBytesForOneSeed) {
  const GillabResult contend = RunGillab({"simulate", "--policy", "stm", "--cpu-threads", "1", "--cores", "2",
                                          "--iterations", "5", "--io-sleep-us", "100", "--quantum-instructions",
                                          "4096", "--json"},
                                         120);
  ASSERT_EQ(contend.exit_code, 0) << contend.err;
  EXPECT_NE(contend.out.find("\"model_report\""), std::string::npos) << contend.out;
  const std::vector<std::string> workers = {"stm-workers", "--kind",  "race", "--program", "bank", "--n", "20",
                                            "--cores",     "2,4",     "--transactions", "32", "--seed", "3", "--json"};
  const GillabResult a = RunGillab(workers, 120);
  const GillabResult b = RunGillab(workers, 120);
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  EXPECT_NE(a.out.find("\"check\":100000"), std::string::npos) << a.out;
}

TEST(SimulateE2e, StmWorkersBadInputIsOneLineAndExitTwo) {
  for (const auto& bad : std::vector<std::vector<std::string>>{{"stm-workers", "--kind", "both"},
                                                               {"stm-workers", "--workers", "0"},
                                                               {"stm-workers", "--kind", "race", "--program", "countdown"},
                                                               {"stm-workers", "--framework-clock", "sundial"},
                                                               {"simulate", "--policy", "stm", "--trace", "/tmp/t.json"}}) {
    const GillabResult r = RunGillab(bad, 60);
    EXPECT_EQ(r.exit_code, 2) << bad[1] << " " << bad[2];
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_EQ(r.out, "") << bad[1] << " " << bad[2];
  }
}

}  // namespace
}  // namespace gillab::experiments
