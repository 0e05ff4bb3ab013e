// simulate_serve_e2e_test.cc — `gillab simulate-serve` through the real
// binary, called as the runner calls it: the flags of ServeArgs and LoadArgs
// for a point (both from the settings table) plus --cores, --seed, --json.
// The same seed gives the same bytes (stdout and the load file); bad usage
// is one line on stderr and exit 2.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/core.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "experiments/clients.h"
#include "experiments/gillab_test_util.h"
#include "experiments/runner.h"
#include "servers/settings.h"

namespace gillab::experiments {
namespace {

namespace fs = std::filesystem;

// The runner's command line for `point`, as simulate mode builds it: the
// serve flags and the load flags after "simulate-serve".
std::vector<std::string> RunnerArgs(const Point& point, const std::string& json_path, const std::string& seed) {
  std::vector<std::string> args = {"simulate-serve"};
  const std::vector<std::string> serve = ServeArgs(point, "gillab", "tcp://127.0.0.1:0", "");
  const std::vector<std::string> load = LoadArgs(point, "gillab", "tcp://127.0.0.1:0", json_path, 2);
  args.insert(args.end(), serve.begin() + 2, serve.end());  // without {bin, "serve"}
  args.insert(args.end(), load.begin() + 2, load.end());    // without {bin, "load"}
  args.insert(args.end(), {"--cores", "2", "--seed", seed});
  return args;
}

Point ConvoyPoint() {
  Point p;
  p.settings = servers::DefaultSettings();
  p.settings["server"] = "blocking";
  p.settings["engine"] = "toy";
  p.settings["policy"] = "newgil";
  p.settings["cpu_threads"] = "1";
  p.settings["switch_interval_us"] = "1000";
  p.settings["requests"] = "10";
  p.settings["think_us"] = "300";
  p.settings["os_priority"] = "cpu=nice:10";  // passed by the runner, ignored in virtual time
  return p;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(SimulateServeE2e, RunnerArgvSameSeedSameBytes) {
  const fs::path dir = fs::temp_directory_path() / fmt::format("simserve-e2e-{}", ::getpid());
  fs::create_directories(dir);
  const std::string a_json = (dir / "a.json").string(), b_json = (dir / "b.json").string();
  const GillabResult a = RunGillab(RunnerArgs(ConvoyPoint(), a_json, "7"), 120);
  const GillabResult b = RunGillab(RunnerArgs(ConvoyPoint(), b_json, "7"), 120);
  ASSERT_EQ(a.exit_code, 0) << a.err;
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_EQ(a.out, b.out);
  EXPECT_EQ(ReadFile(a_json), ReadFile(b_json));
  const nlohmann::json serve = nlohmann::json::parse(a.out);
  EXPECT_EQ(serve.at("mode"), "simulate");
  EXPECT_EQ(serve.at("server"), "blocking");
  EXPECT_EQ(serve.at("requests"), 12);  // 10 measured + 2 warm-up
  const nlohmann::json load = nlohmann::json::parse(ReadFile(a_json));
  EXPECT_EQ(load.at("requests"), 10);
  EXPECT_EQ(load.at("errors"), 0);
  EXPECT_GT(load.at("latency_us").at("p50").get<double>(), 0);
  fs::remove_all(dir);
}

TEST(SimulateServeE2e, BadInputIsOneLineAndExitTwo) {
  const std::vector<std::string> base = {"simulate-serve", "--requests", "3"};
  for (const auto& more : std::vector<std::vector<std::string>>{
           {"--engine", "native"}, {"--server", "epoll"}, {"--cores", "0"}, {"--policy", "mutex"},
           {"--policy", "nosuch"}, {"--think-us", "5", "--rate", "10"}, {"--send-ns", "-1"},
           {"--protocol", "http"}}) {
    std::vector<std::string> args = base;
    args.insert(args.end(), more.begin(), more.end());
    const GillabResult r = RunGillab(args, 60);
    EXPECT_EQ(r.exit_code, 2) << more[0] << " " << more[1] << ": " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
  const GillabResult kinds = RunGillab({"simulate-serve", "--server", "epoll"}, 60);
  EXPECT_NE(kinds.err.find("blocking, threaded"), std::string::npos) << kinds.err;
}

}  // namespace
}  // namespace gillab::experiments
