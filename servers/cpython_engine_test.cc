// cpython_engine_test.cc — the cpython engine: embedded CPython 3.11 under its real GIL.
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "servers/cpython_engine.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "gil/error.h"

namespace gillab::servers {
namespace {

using namespace std::chrono_literals;

EngineOptions Options(std::string handler = "echo") {
  EngineOptions o;
  o.engine = "cpython";
  o.policy = "newgil";
  o.handler = std::move(handler);
  return o;
}

// A handler file in the test's temporary directory.
std::string WriteHandler(const std::string& name, const std::string& source) {
  std::string path = ::testing::TempDir() + name;
  std::ofstream(path) << source;
  return path;
}

const nlohmann::json* FindThread(const nlohmann::json& stats, const std::string& name) {
  for (const auto& t : stats.at("threads")) {
    if (t.at("name") == name) return &t;
  }
  return nullptr;
}

TEST(CpythonEngine, EchoesTheRequest) {
  EngineOptions o = Options();
  o.work_units = 100;
  CpythonEngine engine(o);
  auto io = engine.AttachIo("io");
  EXPECT_EQ(io->Handle("hello"), "hello");
  EXPECT_EQ(io->Handle(""), "");
  std::string binary("\0\x01\xff zero", 8);
  EXPECT_EQ(io->Handle(binary), binary);
  std::string big(1 << 20, 'x');
  EXPECT_EQ(io->Handle(big), big);
}

TEST(CpythonEngine, CountsPrimesUpTo10000) {
  CpythonEngine engine(Options("primes"));
  auto io = engine.AttachIo("io");
  EXPECT_EQ(io->Handle("10000"), "1229");
  EXPECT_EQ(io->Handle("10"), "4");
}

TEST(CpythonEngine, SurvivesAHandlerThatRaises) {
  const std::string path = WriteHandler("raising_handler.py", R"(
def handle(request, work_units):
    if request == b"boom":
        raise ValueError("no booms here")
    if request == b"exit":
        raise SystemExit(3)
    if request == b"int":
        return 42
    if request == b"none":
        return None
    return request
)");
  CpythonEngine engine(Options(path));
  auto io = engine.AttachIo("io");
  try {
    io->Handle("boom");
    ADD_FAILURE() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("ValueError: no booms here"), std::string::npos) << e.what();
  }
  EXPECT_EQ(io->Handle("ok"), "ok");
  // SystemExit must not end the process (PyErr_Print would).
  EXPECT_THROW(io->Handle("exit"), std::runtime_error);
  EXPECT_EQ(io->Handle("still here"), "still here");
  EXPECT_EQ(io->Handle("int"), "42");
  EXPECT_THROW(io->Handle("none"), std::runtime_error);
  EXPECT_EQ(io->Handle("last"), "last");
}

TEST(CpythonEngine, RejectsOtherPolicies) {
  EngineOptions o = Options();
  o.policy = "priority";
  try {
    CpythonEngine engine(o);
    ADD_FAILURE() << "accepted --policy priority";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("one GIL"), std::string::npos) << e.what();
  }
}

TEST(CpythonEngine, RejectsBadHandlers) {
  EXPECT_THROW(CpythonEngine(Options("/nonexistent/handler.py")), UsageError);
  EXPECT_THROW(CpythonEngine(Options("echo.gasm")), UsageError);
  EXPECT_THROW(CpythonEngine(Options(WriteHandler("syntax.py", "def handle(:\n"))), UsageError);
  EXPECT_THROW(CpythonEngine(Options(WriteHandler("nohandle.py", "x = 1\n"))), UsageError);
  EXPECT_THROW(CpythonEngine(Options(WriteHandler("raises_at_import.py", "raise RuntimeError('x')\n"))),
               UsageError);
}

TEST(CpythonEngine, CpuThreadsStartStopAndReportIterations) {
  EngineOptions o = Options();
  o.cpu_threads = 2;
  CpythonEngine engine(o);
  engine.StartCpuThreads();
  std::this_thread::sleep_for(50ms);
  engine.StopCpuThreads();
  engine.StopCpuThreads();  // idempotent
  const nlohmann::json stats = engine.Stats();
  EXPECT_GT(stats.at("cpu_iterations_per_s").get<double>(), 0.0) << stats.dump();
  int cpu = 0;
  for (const auto& t : stats.at("threads")) {
    if (t.at("role") != "cpu") continue;
    ++cpu;
    EXPECT_GT(t.at("iterations").get<uint64_t>(), 0u) << t.dump();
  }
  EXPECT_EQ(cpu, 2);
  // And again: the engine can run a second batch.
  engine.StartCpuThreads();
  std::this_thread::sleep_for(10ms);
  engine.StopCpuThreads();
}

// The counter of the Python thread started below, read without running any
// bytecode (running bytecode would let the eval breaker switch threads).
long PythonCounter() {
  PyObject* main_dict = PyModule_GetDict(PyImport_AddModule("__main__"));
  PyObject* counter = PyDict_GetItemString(main_dict, "gillab_counter");
  return counter ? PyLong_AsLong(PyList_GetItem(counter, 0)) : -1;
}

TEST(CpythonEngine, IoThreadReleasesTheGilOnlyInsideBlockingSections) {
  CpythonEngine engine(Options());
  auto io = engine.AttachIo("io");  // holds the GIL from here on
  ASSERT_EQ(PyRun_SimpleString(R"(
import threading
gillab_counter = [0]
gillab_stop = [False]
def _gillab_count():
    while not gillab_stop[0]:
        gillab_counter[0] += 1
gillab_thread = threading.Thread(target=_gillab_count)
gillab_thread.start()
)"),
            0);
  // Holding the GIL and running no bytecode: the other thread cannot move.
  const long held_before = PythonCounter();
  std::this_thread::sleep_for(50ms);
  const long held_after = PythonCounter();
  EXPECT_EQ(held_after, held_before) << "a Python thread ran while the io thread held the GIL";
  {
    BlockingSection b(*io);
    std::this_thread::sleep_for(50ms);
  }
  const long released_after = PythonCounter();
  EXPECT_GT(released_after, held_after) << "no Python thread ran while the io thread was blocked";
  ASSERT_EQ(PyRun_SimpleString("gillab_stop[0] = True\ngillab_thread.join()\n"), 0);
  EXPECT_EQ(io->blocking_sections(), 1u);
}

TEST(CpythonEngine, StopCpuThreadsFromTheHoldingIoThread) {
  EngineOptions o = Options();
  o.cpu_threads = 1;
  CpythonEngine engine(o);
  engine.StartCpuThreads();
  auto io = engine.AttachIo("io");
  {
    BlockingSection b(*io);
    std::this_thread::sleep_for(20ms);
  }
  engine.StopCpuThreads();  // would deadlock if it joined while holding the GIL
  EXPECT_EQ(io->Handle("still"), "still");
}

TEST(CpythonEngine, DestroyedWithCpuThreadsRunningAndIoThreadsGone) {
  EngineOptions o = Options();
  o.cpu_threads = 2;
  auto engine = std::make_unique<CpythonEngine>(o);
  engine->StartCpuThreads();
  std::thread([&] {
    auto io = engine->AttachIo("conn");
    BlockingSection b(*io);
    std::this_thread::sleep_for(10ms);
  }).join();
  engine.reset();  // stops and joins the CPU threads, drops the Python objects
  SUCCEED();
}

TEST(CpythonEngine, StatsReportUnmeasurableFiguresAsNull) {
  EngineOptions o = Options();
  o.cpu_threads = 1;
  o.os_priority = {{gil::Role::kCpu, gil::ParseOsPriority("nice:3")}};
  CpythonEngine engine(o);
  engine.StartCpuThreads();
  {
    auto io = engine.AttachIo("io");
    for (int i = 0; i < 3; ++i) {
      BlockingSection b(*io);
    }
  }
  engine.StopCpuThreads();
  const nlohmann::json stats = engine.Stats();
  EXPECT_EQ(stats.at("engine"), "cpython");
  EXPECT_EQ(stats.at("policy"), "newgil");
  EXPECT_TRUE(stats.at("lock").at("switches").is_null());
  const nlohmann::json* io = FindThread(stats, "io");
  const nlohmann::json* cpu = FindThread(stats, "cpu-0");
  ASSERT_NE(io, nullptr);
  ASSERT_NE(cpu, nullptr);
  // The io thread's waits are measured: the first acquisition and one per section.
  EXPECT_EQ(io->at("acquisitions"), 4) << io->dump();
  EXPECT_FALSE(io->at("wait_ns").is_null());
  EXPECT_TRUE(io->at("hold_ns").is_null()) << io->dump();
  EXPECT_TRUE(io->at("forced_drops").is_null()) << io->dump();
  EXPECT_TRUE(io->at("lock_priority").is_null()) << io->dump();
  EXPECT_TRUE(cpu->at("acquisitions").is_null()) << cpu->dump();
  EXPECT_TRUE(cpu->at("wait_ns").is_null()) << cpu->dump();
  ASSERT_TRUE(cpu->contains("os_priority")) << cpu->dump();
  EXPECT_EQ(cpu->at("os_priority").at("applied"), true) << cpu->dump();
}

// The convoy in miniature: the io thread blocks 1 ms, then handles a request.
// Alone, it gets the GIL back at once; beside one CPU thread it waits for the
// CPU thread to be asked to drop, i.e. about one switch interval (5 ms).
// The block is 1 ms, not the experiments' 100 µs pause: under ctest -j2 the
// other core runs another test, and a CPU thread not scheduled within 100 µs
// never takes the GIL, so the convoy would depend on the neighbour's load.
// Bounds are generous: a loaded machine only makes the loaded case slower.
TEST(CpythonEngine, CpuThreadDelaysGilReacquireByAboutASwitchInterval) {
  auto p50_ns = [](int cpu_threads, int rounds) {
    EngineOptions o = Options();
    o.cpu_threads = cpu_threads;
    o.gil.switch_interval_us = 5000;
    CpythonEngine engine(o);
    engine.StartCpuThreads();
    {
      auto io = engine.AttachIo("io");
      for (int i = 0; i < rounds; ++i) {
        {
          BlockingSection b(*io);
          std::this_thread::sleep_for(1ms);
        }
        io->Handle("ping");
      }
    }
    engine.StopCpuThreads();
    const nlohmann::json stats = engine.Stats();
    const nlohmann::json* io = FindThread(stats, "io");
    std::printf("cpython, %d cpu thread(s): io GIL re-acquire wait p50 %.1f us, p99 %.1f us, max %.1f us\n",
                cpu_threads, io->at("wait_p50_ns").get<double>() / 1e3, io->at("wait_p99_ns").get<double>() / 1e3,
                io->at("wait_max_ns").get<double>() / 1e3);
    return io->at("wait_p50_ns").get<int64_t>();
  };
  const int64_t alone_ns = p50_ns(0, 200);
  const int64_t loaded_ns = p50_ns(1, 40);
  EXPECT_LT(alone_ns, 1'000'000);
  EXPECT_GT(loaded_ns, 2'000'000);
  EXPECT_LT(loaded_ns, 50'000'000);
}

}  // namespace
}  // namespace gillab::servers
