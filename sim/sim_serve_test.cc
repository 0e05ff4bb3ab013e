// sim_serve_test.cc — a server run in virtual time: byte-identical output
// for one seed, the convoy's shape (generous bounds: these check that the
// simulator models Beazley's convoy, not its exact size), the threaded
// kind, and the refusals.
//
// The tests charge 10 ns per VM instruction instead of ~1.3: the CPU threads
// then simulate ~8x fewer instructions for the same virtual time (host time
// is proportional to them), and nothing here depends on how much work a
// quantum is, only on the switch interval and the transport.
#include "sim/sim_serve.h"

#include <gtest/gtest.h>

#include <string>

#include "gil/error.h"

namespace gillab::sim {
namespace {

constexpr int64_t kSwitchIntervalUs = 1000;

SimServeOptions Small(const std::string& policy, int cpu_threads, uint64_t seed = 1) {
  SimServeOptions o;
  o.server = "blocking";
  o.engine.engine = "toy";
  o.engine.policy = policy;
  o.engine.cpu_threads = cpu_threads;
  o.engine.gil.switch_interval_us = kSwitchIntervalUs;
  o.load.requests = 12;
  o.load.warmup = 2;
  o.load.think_us = 300;
  o.load.message_bytes = 64;
  o.load.seed = seed;
  o.sim.os.cores = 2;
  o.sim.seed = seed;
  o.sim.costs.vm_instruction_ns = 10;
  o.sim.max_virtual_ns = 10'000'000'000;
  return o;
}

double P50Us(const SimServeResult& r) { return r.load.latency_ns.Percentile(50) / 1e3; }

TEST(SimServe, SameSeedGivesByteIdenticalOutputs) {
  const SimServeOptions o = Small("newgil", 2, 42);
  const SimServeResult a = RunSimServe(o);
  const SimServeResult b = RunSimServe(o);
  EXPECT_EQ(a.load.ToJson().dump(), b.load.ToJson().dump());
  EXPECT_EQ(a.serve.dump(), b.serve.dump());
  EXPECT_EQ(a.serve.value("mode", ""), "simulate");
  EXPECT_EQ(a.serve.value("cores", 0), 2);
}

TEST(SimServe, OutputsHaveTheRealFormats) {
  const SimServeResult r = RunSimServe(Small("newgil", 1));
  const nlohmann::json load = r.load.ToJson();
  EXPECT_EQ(load.at("requests"), 12);
  EXPECT_EQ(load.at("errors"), 0);
  EXPECT_GT(load.at("req_per_s").get<double>(), 0);
  EXPECT_GT(load.at("latency_us").at("p50").get<double>(), 0);
  EXPECT_EQ(load.at("mode"), "closed");
  // serve's exit JSON: the engine's Stats() plus the server's fields.
  const nlohmann::json& serve = r.serve;
  EXPECT_EQ(serve.at("engine"), "toy");
  EXPECT_EQ(serve.at("policy"), "newgil");
  EXPECT_EQ(serve.at("server"), "blocking");
  EXPECT_EQ(serve.at("requests"), 14);  // warm-up included, as a real server counts them
  ASSERT_TRUE(serve.at("threads").is_array());
  int io = 0, cpu = 0;
  for (const auto& t : serve.at("threads")) {
    if (t.at("role") == "io") ++io;
    if (t.at("role") == "cpu") ++cpu;
  }
  EXPECT_EQ(io, 1);
  EXPECT_EQ(cpu, 1);
  EXPECT_GT(r.instructions, 0u);
}

TEST(SimServe, NoCpuThreadMeansNoConvoy) {
  for (const char* policy : {"newgil", "ticket", "priority"}) {
    const SimServeResult r = RunSimServe(Small(policy, 0));
    EXPECT_EQ(r.load.requests, 12) << policy;
    EXPECT_LT(P50Us(r), 0.2 * kSwitchIntervalUs) << policy;
  }
}

TEST(SimServe, NewgilConvoyIsOfTheOrderOfTheSwitchInterval) {
  // Beazley: after each recv the I/O thread waits for the spinning CPU thread
  // to drop the lock, which newgil asks for only after a switch interval.
  const SimServeResult r = RunSimServe(Small("newgil", 1));
  EXPECT_EQ(r.load.requests, 12);
  EXPECT_GT(P50Us(r), 0.5 * kSwitchIntervalUs);
  EXPECT_LT(P50Us(r), 4.0 * kSwitchIntervalUs);
}

TEST(SimServe, PriorityWithIoAboveCpuHasNoConvoy) {
  SimServeOptions o = Small("priority", 1);
  o.engine.lock_priority = {{gil::Role::kIo, 1}, {gil::Role::kCpu, 0}};
  const SimServeResult r = RunSimServe(o);
  EXPECT_EQ(r.load.requests, 12);
  EXPECT_LT(P50Us(r), 0.2 * kSwitchIntervalUs);
}

TEST(SimServe, ThreadedServesEveryConnection) {
  SimServeOptions o = Small("newgil", 1);
  o.server = "threaded";
  o.load.connections = 3;
  const SimServeResult r = RunSimServe(o);
  EXPECT_EQ(r.load.requests, 12);
  EXPECT_EQ(r.load.errors, 0);
  EXPECT_EQ(r.serve.at("requests"), 14);
  int io = 0;
  for (const auto& t : r.serve.at("threads")) io += t.at("role") == "io" ? 1 : 0;
  EXPECT_EQ(io, 4);  // the acceptor and one per connection
}

TEST(SimServe, OpenLoopMeasuresFromTheIntendedTime) {
  SimServeOptions o = Small("newgil", 0);
  o.load.think_us = 0;
  o.load.rate = 2000;  // one request every 500 us
  const SimServeResult r = RunSimServe(o);
  EXPECT_EQ(r.load.requests, 12);
  EXPECT_EQ(r.load.ToJson().at("mode"), "open");
  // 12 requests at 2000/s take ~5.5 ms of virtual time.
  EXPECT_GT(r.load.seconds, 0.005);
  EXPECT_LT(r.load.seconds, 0.008);
}

TEST(SimServe, RefusesWhatItDoesNotModel) {
  SimServeOptions o = Small("newgil", 0);
  o.engine.engine = "native";
  EXPECT_THROW(RunSimServe(o), UsageError);
  o = Small("newgil", 0);
  o.server = "epoll";
  try {
    RunSimServe(o);
    ADD_FAILURE() << "epoll accepted";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("blocking, threaded"), std::string::npos) << e.what();
  }
  o = Small("mutex", 0);
  EXPECT_THROW(RunSimServe(o), UsageError);
}

}  // namespace
}  // namespace gillab::sim
