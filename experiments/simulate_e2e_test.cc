// simulate_e2e_test.cc — `gillab simulate` through the real binary: the same
// seed prints the same bytes, bad input is one line on stderr and exit 2.
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

}  // namespace
}  // namespace gillab::experiments
