// http_run_e2e_test.cc — `gillab run` driving an outside HTTP server (CPython's
// http.server, servers/python/http_baseline.py) end to end with every client:
// gillab load, wrk, siege and ab (testdata/http_outside.toml, ~1 s of load each).
// Same columns whichever client ran, NA where a client cannot say, non-2xx
// replies counted, the outside server stopped and reaped after each run.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "experiments/child_process.h"
#include "experiments/gillab_test_util.h"
#include "experiments/results.h"

namespace gillab::experiments {
namespace {

namespace fs = std::filesystem;

using Result = GillabResult;

// Runs gillab to completion (bounded by timeout_s) and reaps it.
Result Gillab(const std::vector<std::string>& args, double timeout_s = 120) { return RunGillab(args, timeout_s); }

// Processes carrying `mark` in their environment: the outside servers this
// test's runs started (other tests may run baselines at the same time).
int MarkedProcesses(const std::string& mark) {
  int count = 0;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string pid = entry.path().filename().string();
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(entry.path() / "environ");
    std::string environ((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (environ.find(mark) != std::string::npos) ++count;
  }
  return count;
}

class HttpRunE2e : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("gillab-http-e2e-" + std::to_string(getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }
  fs::path root_;
};

TEST_F(HttpRunE2e, EveryClientDrivesTheOutsideServerIntoTheSameColumns) {
  const std::string dir = (root_ / "outside").string();
  // The same server as the file's, started through env so that it carries a mark of this test.
  const std::string mark = "GILLAB_HTTP_E2E_MARK=" + std::to_string(getpid());
  Result run = Gillab({"run", GILLAB_HTTP_OUTSIDE_TOML, "-o", dir, "-s",
                       "server_command=env " + mark +
                           " /usr/bin/python3 {source}/servers/python/http_baseline.py --port {port} --cpu-threads 0"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  auto rows = ReadRunsCsv(dir + "/runs.csv");
  ASSERT_EQ(rows.size(), 4u);
  for (const auto& r : rows) {
    const std::string& client = r.at("client");
    EXPECT_EQ(r.at("status"), "ok") << client;
    EXPECT_GT(std::stod(r.at("req_per_s")), 0) << client;
    EXPECT_GT(std::stod(r.at("requests_done")), 0) << client;
    EXPECT_EQ(r.at("errors"), "0") << client;
    EXPECT_EQ(r.at("non_2xx"), "0") << client;
    EXPECT_GT(std::stod(r.at("latency_max_us")), 0) << client;
    // siege reports no percentiles: NA, not 0.
    EXPECT_EQ(r.at("latency_p50_us").empty(), client == "siege") << client;
    EXPECT_TRUE(r.at("io_acquisitions").empty()) << "an outside server has no lock statistics";
    EXPECT_TRUE(fs::exists(dir + "/raw/p00" + r.at("point") + "_r0_load.json")) << client;
    if (client != "gillab") {
      EXPECT_TRUE(fs::exists(dir + "/raw/p00" + r.at("point") + "_r0_client.txt")) << client;
    }
  }
  EXPECT_EQ(MarkedProcesses(mark), 0) << "an outside server outlived its run";
}

TEST_F(HttpRunE2e, Non2xxRepliesAreCountedByEachClient) {
  const std::string dir = (root_ / "missing").string();
  Result run = Gillab({"run", GILLAB_HTTP_OUTSIDE_TOML, "-o", dir, "-s", "http_target=/missing", "-s",
                       "client=[\"gillab\", \"wrk\", \"ab\"]", "-s", "requests=20"});
  ASSERT_EQ(run.exit_code, 0) << run.err;  // counted, not failed
  auto rows = ReadRunsCsv(dir + "/runs.csv");
  ASSERT_EQ(rows.size(), 3u);
  for (const auto& r : rows) {
    EXPECT_EQ(r.at("status"), "errors") << r.at("client");
    EXPECT_GT(std::stod(r.at("non_2xx")), 0) << r.at("client");
  }
}

// A load generator that crashes (Debian's siege 4.0.7 segfaults now and then)
// has its run made again, and the crash is said, not hidden: here a stand-in
// `siege` first on PATH kills itself with SIGSEGV on its first call and runs
// the real siege on the next.
TEST_F(HttpRunE2e, ARunWhoseClientCrashedIsMadeAgain) {
  const fs::path bin = root_ / "bin";
  fs::create_directories(bin);
  const std::string real_siege = "/usr/bin/siege";
  ASSERT_TRUE(fs::exists(real_siege)) << "scripts/setup installs siege";
  {
    std::ofstream script(bin / "siege");
    script << "#!/bin/sh\n"
           << "if [ ! -e '" << (root_ / "crashed").string() << "' ]; then\n"
           << "  touch '" << (root_ / "crashed").string() << "'\n"
           << "  kill -SEGV $$\n"
           << "fi\n"
           << "exec " << real_siege << " \"$@\"\n";
  }
  fs::permissions(bin / "siege", fs::perms::owner_all);
  const char* old_path = std::getenv("PATH");
  const std::string saved = old_path ? old_path : "/usr/bin:/bin";
  setenv("PATH", (bin.string() + ":" + saved).c_str(), 1);
  const std::string dir = (root_ / "crash").string();
  Result run = Gillab({"run", GILLAB_HTTP_OUTSIDE_TOML, "-o", dir, "-s", "client=siege"});
  setenv("PATH", saved.c_str(), 1);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_TRUE(fs::exists(root_ / "crashed")) << "the stand-in never ran";
  EXPECT_NE(run.err.find("making the run again"), std::string::npos) << run.err;
  auto rows = ReadRunsCsv(dir + "/runs.csv");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].at("status"), "ok");
  std::ifstream log(dir + "/failures.log");
  std::stringstream text;
  text << log.rdbuf();
  EXPECT_NE(text.str().find("client crash"), std::string::npos) << text.str();
}

}  // namespace
}  // namespace gillab::experiments
