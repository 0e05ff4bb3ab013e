// gillab_test_util.h — for end-to-end tests that run the real `gillab` binary
// (GILLAB_BINARY, a compile definition of the test target): run it to
// completion, bounded, and reap it.
//
//   GillabResult r = RunGillab({"run", "x.toml", "-o", dir});
//   EXPECT_EQ(r.exit_code, 0) << r.err;
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "experiments/child_process.h"
#include "gil/clock.h"

namespace gillab::experiments {

struct GillabResult {
  int exit_code = -1;  // -1: did not finish in time (killed)
  std::string out, err;
};

inline GillabResult RunGillab(const std::vector<std::string>& args, double timeout_s) {
  std::vector<std::string> argv = {GILLAB_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  ChildProcess child({.argv = argv, .cpus = {}});
  const bool done =
      WaitFor({&child}, gil::KernelNowNs() + static_cast<int64_t>(timeout_s * 1e9), [&] { return child.exited(); });
  Pump({&child}, 0);
  EXPECT_TRUE(done) << "gillab did not finish in " << timeout_s << " s: " << child.ErrTail();
  child.KillAndReap();
  return {done ? child.exit_code() : -1, child.out(), child.err()};
}

}  // namespace gillab::experiments
