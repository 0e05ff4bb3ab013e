#include "interp/race.h"

#include <cmath>
#include <exception>
#include <filesystem>
#include <latch>
#include <memory>
#include <thread>
#include <vector>

#include <fmt/core.h>

#include "gil/error.h"
#include "gil/gil.h"
#include "interp/exec_model.h"
#include "interp/heap.h"
#include "interp/program.h"
#include "interp/vm.h"

namespace gillab::interp {
namespace {

void RequireFunction(const Program& p, const char* name, int nparams) {
  const Function* f = p.Find(name);
  if (f == nullptr || f->nparams != nparams) {
    throw UsageError(fmt::format("{}: `gillab race` needs a function '{}' of {} parameter(s) (see --help)",
                                 p.source_name, name, nparams));
  }
}

// Runs `function` on the calling thread holding the lock.
Value CallInside(ExecModel& model, ExecThread& me, Vm& vm, const char* function, std::vector<Value> args) {
  model.Enter(me);
  try {
    Value v = vm.Call(function, args);
    model.Leave(me);
    return v;
  } catch (...) {
    model.Leave(me);
    throw;
  }
}

}  // namespace

RaceResult RunRace(const RaceOptions& o) {
  if (o.threads < 1) throw UsageError(fmt::format("--threads must be >= 1, got {}", o.threads));
  if (o.n < 0) throw UsageError(fmt::format("--n must be >= 0, got {}", o.n));
  auto program = LoadProgram(o.program);
  RequireFunction(*program, "worker", 2);
  RequireFunction(*program, "check", 0);
  auto model = MakeExecModel(o.policy, {.gil = {.switch_interval_us = o.switch_interval_us, .check_interval = o.check_interval}});
  RaceResult r;
  r.options = o;
  r.program_name = std::filesystem::path(program->source_name).stem().string();
  r.concurrent_heap = o.concurrent_heap.value_or(!model->traits().exclusive);
  auto heap = std::make_shared<Heap>(HeapOptions{.concurrent = r.concurrent_heap});
  const VmOptions vm_options{.heap = heap};

  auto main_state = model->Attach(gil::Role::kOther, "race");
  Vm main_vm(program, *model, *main_state, vm_options);
  const Function* setup = program->Find("setup");
  if (setup != nullptr && setup->nparams == 2) {
    CallInside(*model, *main_state, main_vm, "setup", {Value::Int(o.threads), Value::Int(o.n)});
  }

  const auto k = static_cast<size_t>(o.threads);
  std::vector<std::exception_ptr> errors(k);
  std::latch ready(static_cast<std::ptrdiff_t>(k) + 1);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < k; ++i) {
    threads.emplace_back([&, i] {
      bool arrived = false;
      try {
        auto me = model->Attach(gil::Role::kCpu, fmt::format("worker-{}", i));
        Vm vm(program, *model, *me, vm_options);
        arrived = true;
        ready.arrive_and_wait();  // every worker starts at once
        CallInside(*model, *me, vm, "worker", {Value::Int(o.n), Value::Int(static_cast<int64_t>(i))});
      } catch (...) {
        errors[i] = std::current_exception();
        if (!arrived) ready.count_down();
      }
    });
  }
  ready.arrive_and_wait();
  const int64_t t0 = gil::NowNs();
  for (std::thread& t : threads) t.join();
  r.seconds = static_cast<double>(gil::NowNs() - t0) / 1e9;
  for (const std::exception_ptr& e : errors) {
    if (e) std::rethrow_exception(e);
  }
  const Value outcome = CallInside(*model, *main_state, main_vm, "check", {});
  if (!outcome.is_int()) throw VmError(fmt::format("{}: check() must return an int", program->source_name));
  r.outcome = outcome.as_int();
  const Function* expect = program->Find("expect");
  if (expect != nullptr && expect->nparams == 2) {
    const Value e = CallInside(*model, *main_state, main_vm, "expect", {Value::Int(o.threads), Value::Int(o.n)});
    if (e.is_int()) r.expected = e.as_int();
  }
  return r;
}

std::string FormatRaceLine(const RaceResult& r) {
  std::string line = fmt::format("{}: {} {}", r.options.policy, r.program_name, r.outcome);
  if (!r.expected) return line;
  line += fmt::format(" of {}", *r.expected);
  const int64_t e = *r.expected;
  if (r.outcome == e) return line;
  const double pct = e == 0 ? 100.0 : 100.0 * std::fabs(static_cast<double>(r.outcome - e)) / std::fabs(static_cast<double>(e));
  return line + fmt::format(" ({} {:.1f}%)", r.outcome < e ? "lost" : "off by", pct);
}

}  // namespace gillab::interp
