// parallel_model_test.cc — parallel contexts (design §12): writes to the main
// heap refused with program, line and object; arenas freed whole and reused
// without exposing a previous request; the main thread's changes between
// batches seen by the next; failing, looping and over-allocating handlers end
// only their own call. Runs under ASan and TSan.
#include "interp/parallel_model.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "gil/clock.h"
#include "interp/assembler.h"
#include "interp/context_arena.h"
#include "interp/heap.h"
#include "interp/vm.h"

namespace gillab::interp {
namespace {

// What the main thread runs (under a lock policy): it sets the main heap up.
const char* const kMainProgram = R"(global g shared
func set v
  load v
  gstore g
  push 0
  ret
end
func make_shared
  var t
  tnew
  store t
  load t
  push 0
  push "main-zero"
  tset
  load t
  gstore shared
  push 0
  ret
end
)";

// What the contexts run.
const char* const kContextProgram = R"(global g shared
func read_g
  gload g
  ret
end
func write_g
  push 5
  gstore g
  push 0
  ret
end
func write_shared
  gload shared
  push 1
  push 7
  tset
  push 0
  ret
end
func store_context_table_into_shared
  gload shared
  push 2
  tnew
  tset
  push 0
  ret
end
func build n
  var t
  var i
  tnew
  store t
  jmp test
body:
  load t
  load i
  push "item-"
  load i
  itoa
  concat
  tset
  inc i 1
test:
  load i
  load n
  jlt body
  load t
  push "self"
  load t
  tset
  load t
  push "main"
  gload shared
  tset
  load t
  load n
  push 1
  sub
  tget
  gload shared
  push 0
  tget
  concat
  ret
end
func fresh
  var t
  tnew
  store t
  load t
  tkeys
  len
  ret
end
func grow
  var s
  push "x"
  store s
loop:
  load s
  load s
  concat
  store s
  jmp loop
end
func spin
loop:
  jmp loop
end
)";

class ParallelContextTest : public ::testing::Test {
 protected:
  void SetUp() override {
    main_model_ = MakeExecModel("newgil");
    main_ = main_model_->Attach(gil::Role::kIo, "main");
    heap_ = std::make_shared<Heap>();
    main_model_->Enter(*main_);
    main_vm_ = std::make_unique<Vm>(Assemble(kMainProgram, "main.gasm"), *main_model_, *main_, VmOptions{.heap = heap_});
    main_vm_->Call("make_shared", {});
    main_vm_->Call("set", {Value::Int(1)});
    context_program_ = Assemble(kContextProgram, "ctx.gasm");
  }
  void TearDown() override {
    main_vm_.reset();
    main_model_->Leave(*main_);
  }

  // One worker: its context thread and Vm, used by one OS thread at a time.
  struct Worker {
    Worker(ParallelContextModel& m, std::shared_ptr<const Program> p, std::shared_ptr<Heap> heap)
        : model(m), me(m.Attach(gil::Role::kIo, "worker")), vm(std::move(p), m, *me, VmOptions{.heap = std::move(heap)}) {
      model.Enter(*me);
    }
    // One request: the call, the reply copied out, the arena freed whole.
    std::string Call(std::string_view f, std::vector<Value> args = {}) {
      std::string out;
      try {
        Value v = vm.Call(f, args);
        out = v.ToString();
      } catch (const VmError& e) {
        out = std::string("error: ") + e.what();
      }
      model.EndContext(*me);
      return out;
    }
    ParallelContextModel& model;
    std::unique_ptr<ExecThread> me;
    Vm vm;
  };

  std::unique_ptr<ExecModel> main_model_;
  std::unique_ptr<ExecThread> main_;
  std::shared_ptr<Heap> heap_;
  std::unique_ptr<Vm> main_vm_;
  std::shared_ptr<const Program> context_program_;
};

TEST_F(ParallelContextTest, WritesToMainHeapObjectsAreRefusedNamingProgramLineAndObject) {
  ParallelContextModel model;
  Worker w(model, context_program_, heap_);
  const std::string global = w.Call("write_g");
  EXPECT_NE(global.find("error: ctx.gasm:8:"), std::string::npos) << global;
  EXPECT_NE(global.find("'gstore'"), std::string::npos) << global;
  EXPECT_NE(global.find("may not change a main-heap object"), std::string::npos) << global;
  EXPECT_NE(global.find("global 'g'"), std::string::npos) << global;
  const std::string table = w.Call("write_shared");
  EXPECT_NE(table.find("ctx.gasm:16:"), std::string::npos) << table;
  EXPECT_NE(table.find("'tset'"), std::string::npos) << table;
  EXPECT_NE(table.find("a main-heap table"), std::string::npos) << table;
  // A context value stored into a main-heap object: refused the same way.
  const std::string escape = w.Call("store_context_table_into_shared");
  EXPECT_NE(escape.find("may not change a main-heap object: a main-heap table"), std::string::npos) << escape;
  // The main heap is unchanged, and the worker goes on.
  EXPECT_EQ(heap_->Dump().at("g"), "1");
  EXPECT_EQ(heap_->Dump().at("shared"), "table(1)");
  EXPECT_EQ(w.Call("read_g"), "1");
}

TEST_F(ParallelContextTest, ContextTablesAndStringsLiveInTheArenaAndAreFreedWhole) {
  ParallelContextModel model;
  Worker w(model, context_program_, heap_);
  const int64_t main_tables = heap_->live_tables();
  EXPECT_EQ(w.Call("build", {Value::Int(50)}), "item-49main-zero");
  const ContextArena& arena = ParallelContextModel::ArenaOf(*w.me);
  EXPECT_EQ(arena.used_bytes(), 0);  // freed whole
  EXPECT_EQ(arena.table_count(), 0u);
  EXPECT_GT(arena.high_water_bytes(), 50 * static_cast<int64_t>(ParallelContextModel::kEntryChargeBytes));
  EXPECT_EQ(heap_->live_tables(), main_tables);  // nothing of the context reached the main heap's list
  // The cycle and the reference to the main table were released: the main
  // table is still readable, and freed with the heap (ASan: no leak, no UAF).
  for (int i = 0; i < 200; ++i) ASSERT_EQ(w.Call("build", {Value::Int(20)}), "item-19main-zero");
  EXPECT_EQ(arena.chunk_count(), 1u);  // reused, not grown
}

TEST_F(ParallelContextTest, ArenaReuseNeverExposesAPreviousRequestsData) {
  ContextArena arena;
  char* first = static_cast<char*>(arena.Allocate(256, 8));
  std::memset(first, 'S', 256);  // a previous request's secret
  arena.Reset();
  char* second = static_cast<char*>(arena.Allocate(256, 8));
  ASSERT_EQ(first, second);  // the same memory, reused
  for (int i = 0; i < 256; ++i) ASSERT_EQ(second[i], 0) << i;
  // Through the VM: a fresh table in a reused arena has no keys.
  ParallelContextModel model;
  Worker w(model, context_program_, heap_);
  EXPECT_EQ(w.Call("build", {Value::Int(30)}), "item-29main-zero");
  EXPECT_EQ(w.Call("fresh"), "0");
}

TEST_F(ParallelContextTest, MainThreadChangesBetweenBatchesAreSeenByTheNextBatch) {
  ParallelContextModel model;
  constexpr int kWorkers = 2;
  std::vector<std::unique_ptr<Worker>> workers;
  for (int i = 0; i < kWorkers; ++i) workers.push_back(std::make_unique<Worker>(model, context_program_, heap_));
  for (int batch = 1; batch <= 20; ++batch) {
    main_vm_->Call("set", {Value::Int(batch * 10)});  // between batches: no context runs
    std::vector<std::string> replies(kWorkers);
    std::vector<std::thread> threads;
    for (int i = 0; i < kWorkers; ++i) {
      threads.emplace_back([&, i] {
        for (int k = 0; k < 20; ++k) {
          replies[i] = workers[i]->Call("read_g");
          if (replies[i] != std::to_string(batch * 10)) return;
          if (workers[i]->Call("build", {Value::Int(5)}) != "item-4main-zero") return;
        }
      });
    }
    for (auto& t : threads) t.join();  // the batch's end
    for (int i = 0; i < kWorkers; ++i) ASSERT_EQ(replies[i], std::to_string(batch * 10)) << "batch " << batch;
  }
}

TEST_F(ParallelContextTest, AllocatingPastTheLimitFailsOnlyThatCall) {
  ParallelContextModel model({.context_max_bytes = 64 * 1024});
  Worker w(model, context_program_, heap_);
  const std::string grow = w.Call("grow");
  EXPECT_NE(grow.find("'concat'"), std::string::npos) << grow;
  EXPECT_NE(grow.find("more than --context-max-bytes (65536 bytes)"), std::string::npos) << grow;
  const std::string tables = w.Call("build", {Value::Int(5000)});
  EXPECT_NE(tables.find("more than --context-max-bytes"), std::string::npos) << tables;
  EXPECT_EQ(w.Call("build", {Value::Int(10)}), "item-9main-zero");  // the next call is unharmed
  EXPECT_LE(ParallelContextModel::ArenaOf(*w.me).high_water_bytes(), 64 * 1024 + 64 * 1024);
}

TEST_F(ParallelContextTest, ALoopingHandlerIsStoppedByTheStallReportAndTheWorkerGoesOn) {
  ParallelContextModel model;
  Worker w(model, context_program_, heap_);
  std::string reply;
  std::thread worker([&] { reply = w.Call("spin"); });
  // The stall report: bounded polling (at most ~10 s), until the unit is seen running long.
  int64_t stopped_ns = 0;
  for (int i = 0; i < 10000 && stopped_ns == 0; ++i) {
    stopped_ns = model.StopIfRunningLonger(*w.me, 1'000'000);
    if (stopped_ns == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  worker.join();
  ASSERT_GT(stopped_ns, 1'000'000);
  EXPECT_NE(reply.find("stopped by the stall report"), std::string::npos) << reply;
  EXPECT_EQ(model.StopIfRunningLonger(*w.me, 0), 0);  // nothing runs: nothing to stop
  EXPECT_EQ(w.Call("read_g"), "1");                   // and the next call is not stopped
}

TEST_F(ParallelContextTest, ManyRequestsOnTwoWorkersLeaveNothingBehind) {
  ParallelContextModel model({.context_max_bytes = 1 << 20});
  std::vector<std::unique_ptr<Worker>> workers;
  for (int i = 0; i < 2; ++i) workers.push_back(std::make_unique<Worker>(model, context_program_, heap_));
  std::vector<int> bad(2, 0);
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i) {
    threads.emplace_back([&, i] {
      for (int k = 0; k < 2000; ++k) {
        if (workers[i]->Call("build", {Value::Int(1 + k % 17)}) != "item-" + std::to_string(k % 17) + "main-zero") ++bad[i];
        if (k % 100 == 0 && workers[i]->Call("write_shared").find("main-heap table") == std::string::npos) ++bad[i];
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(bad[0] + bad[1], 0);
  for (auto& w : workers) EXPECT_EQ(ParallelContextModel::ArenaOf(*w->me).chunk_count(), 1u);
  EXPECT_EQ(heap_->Dump().at("shared"), "table(1)");
}

}  // namespace
}  // namespace gillab::interp
