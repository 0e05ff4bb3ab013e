// vm.h — the toy bytecode VM: a stack machine over int64, immutable byte
// strings and tables whose threads run under one execution model
// (exec_model.h: a lock policy through GilModel, later STM or coroutines) and
// share one heap of globals and tables (heap.h, design §8), with CPython
// 3.11's check points.
//
// A Program is assembled once from .gasm text (assembler.h) and shared,
// read-only, by any number of Vm objects, one per thread. A Vm runs with its
// thread inside the model: Call() expects the caller to be inside (a GIL:
// holding the lock) and returns inside. Each Call is one atomic unit
// (BeginUnit/EndUnit). The eval breaker is read at check points only
// (backward jumps, calls, returns); when it is set the VM calls the model's
// OnCheckPoint (a GIL yields there). Natives that block (sleep_us) go through
// the model's Block (a GIL releases around the wait); spin_holding_us does not.
//
//   auto program = LoadProgram("echo");             // shipped name or a .gasm path
//   auto model = MakeExecModel("newgil");
//   auto me = model->Attach(gil::Role::kIo, "io");
//   Vm vm(program, *model, *me);
//   model->Enter(*me);
//   Value reply = vm.Call("handle", {Value::Bytes(request), Value::Int(work_units)});
//   model->Leave(*me);
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "gil/histogram.h"
#include "interp/exec_model.h"

namespace gillab::interp {

// An int64 or an immutable byte string (cheap to copy: the bytes are shared).
// Tables (heap.h) live only inside the VM and its heap: a call that returns
// one is a VmError.
class Value {
 public:
  Value() : v_(int64_t{0}) {}
  static Value Int(int64_t i) { return Value(i); }
  static Value Bytes(std::string b) { return Value(std::make_shared<const std::string>(std::move(b))); }
  // Shares the bytes instead of copying them (requests in, replies out of the VM).
  static Value SharedBytes(std::shared_ptr<const std::string> b) {
    return Value(b ? std::move(b) : std::make_shared<const std::string>());
  }

  bool is_int() const { return std::holds_alternative<int64_t>(v_); }
  bool is_bytes() const { return !is_int(); }
  int64_t as_int() const { return std::get<int64_t>(v_); }               // throws if bytes
  const std::string& as_bytes() const { return *std::get<1>(v_); }        // throws if int
  const std::shared_ptr<const std::string>& shared_bytes() const { return std::get<1>(v_); }  // throws if int
  // Ints in decimal, bytes as they are: what `gillab vm` prints.
  std::string ToString() const { return is_int() ? std::to_string(as_int()) : as_bytes(); }
  bool operator==(const Value& o) const {
    return is_int() == o.is_int() && (is_int() ? as_int() == o.as_int() : as_bytes() == o.as_bytes());
  }

 private:
  explicit Value(int64_t i) : v_(i) {}
  explicit Value(std::shared_ptr<const std::string> b) : v_(std::move(b)) {}
  std::variant<int64_t, std::shared_ptr<const std::string>> v_;
};

struct Program;  // assembled code; see assembler.h
class Heap;      // the shared heap: globals and tables (heap.h)

// A runtime error in a program (type error, stack overflow, division by zero,
// unknown function): the message names the function and instruction.
struct VmError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Vm;

// A resumable call (design §10): one function call whose frames and value
// stack live in this object instead of on the Vm, so that it can suspend and
// be resumed later while the same Vm runs other calls and coroutines. It is
// stackless: nothing of it lives on a C stack. A coroutine suspends only
// inside a blocking native (sleep_us, backend_us) at an instruction boundary
// — the native's wait is handed to whoever resumes it — and resumes right
// after that native. Its stack starts small (the entry function's needs) and
// grows on calls up to VmOptions::max_stack, so a suspended small handler
// costs a few hundred bytes (bytes()).
//
// Made by Vm::Start, run by Vm::Resume on the Vm that made it, inside the
// model, one Resume at a time. Destroy it inside the model on the Vm's thread
// (it releases the values its stack holds); it must not outlive its Vm.
class Coroutine {
 public:
  enum class Status : uint8_t {
    kReady,      // made, never run
    kSuspended,  // parked at a blocking native: wait() says what it waits for
    kDone,       // returned: result()
    kFailed,     // threw a VmError out of Resume; nothing to resume
  };
  ~Coroutine();
  Coroutine(const Coroutine&) = delete;
  Coroutine& operator=(const Coroutine&) = delete;

  Status status() const { return status_; }
  // While kSuspended: the wait its blocking native asked for (the native name
  // points into the native table and stays valid).
  const BlockingWait& wait() const { return wait_; }
  // Heap bytes this coroutine holds now (the object, its stack and frames; not
  // the strings its slots point to).
  size_t bytes() const;

 private:
  friend class Vm;
  struct State;
  explicit Coroutine(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
  Status status_ = Status::kReady;
  BlockingWait wait_;
};

struct VmOptions {
  // Compile-time-like switch for the benchmark: when false the check points do
  // not read the eval breaker (the VM then never yields on request).
  bool eval_breaker = true;
  size_t max_stack = 1 << 16;      // values
  size_t max_call_depth = 1 << 10; // frames
  // 0: unlimited. Otherwise Call() throws VmError once it has run about this
  // many instructions (counted in blocks of up to 1024): a budget for running
  // untrusted or fuzzed programs, e.g. in tests.
  uint64_t max_instructions = 0;
  // How many times one Call re-runs an aborted atomic unit (exec_model.h)
  // before it gives up with a VmError. Never reached under the lock models.
  int max_unit_retries = 1000;
  // The shared heap (globals, tables) this Vm reads and writes; every Vm of
  // one engine or run shares one. nullptr: the Vm makes a private one,
  // concurrent unless the model is exclusive (ExecTraits::exclusive).
  std::shared_ptr<Heap> heap = nullptr;
};

class Vm {
 public:
  // `model` and `me` (attached to `model` by this thread) must outlive the Vm.
  Vm(std::shared_ptr<const Program> program, ExecModel& model, ExecThread& me, VmOptions options = {});
  ~Vm();
  Vm(const Vm&) = delete;
  Vm& operator=(const Vm&) = delete;

  // Runs `function` with `args` as one atomic unit; the calling thread must
  // be inside the model and is inside again on return. Throws VmError.
  Value Call(std::string_view function, const std::vector<Value>& args);
  // Coroutines (design §10). Start prepares `function` with `args` as a
  // coroutine without running it (VmError: no such function, wrong arity,
  // or a model whose units may abort: a unit cannot span suspensions there).
  // Resume runs it, on this Vm's thread inside the model, until it suspends
  // at a blocking native (returns kSuspended; perform co.wait(), then Resume
  // again) or returns (kDone; the value is returned in `result`). A VmError
  // thrown from Resume ends only that coroutine (kFailed). Each coroutine
  // is one atomic unit from its first Resume to its end. Resume is not
  // re-entrant, nor callable during Call.
  std::unique_ptr<Coroutine> Start(std::string_view function, const std::vector<Value>& args);
  Coroutine::Status Resume(Coroutine& co, Value* result);
  // "PROGRAM:LINE (function)": the blocking native a suspended coroutine
  // parked in, else its entry function (for the hub's "blocked by" line).
  std::string Where(const Coroutine& co) const;
  // Thread-safe: from now on the native should_stop returns 1 (cpu_spin's loop
  // test), and a running spin_holding_us returns at once.
  void RequestStop() { stop_.store(true, std::memory_order_relaxed); }
  bool stop_requested() const { return stop_.load(std::memory_order_relaxed); }

  ExecModel& model() { return model_; }
  ExecThread& thread() { return me_; }
  Heap& heap();
  // One sample per blocking native (sleep_us): ns from the end of the wait
  // until the thread was inside the model again (a GIL: holding the lock) —
  // the convoy-effect figure. Read it from the Vm's own thread, or after that
  // thread is done with the Vm.
  const gil::Histogram& reacquire_wait_ns() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  ExecModel& model_;
  ExecThread& me_;
  std::atomic<bool> stop_{false};
};

// Loads a program: a path to a .gasm file, or the name of a shipped program
// (cpu_spin, echo, primes). Throws UsageError naming FILE:LINE:COL on errors.
std::shared_ptr<const Program> LoadProgram(const std::string& path_or_name);
// Where the shipped programs live (set at build time, overridable with GILLAB_PROGRAMS).
std::string ProgramsDir();

}  // namespace gillab::interp
