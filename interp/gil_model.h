// gil_model.h — the lock policies (gil/) behind the execution-model seam.
//
// GilModel adapts one gil::Gil to ExecModel (exec_model.h): Enter/Leave are
// Acquire/Release, the eval breaker is the lock's drop request (I3), a check
// point that finds it set Yields, ticks Yield every check_interval
// instructions for policies with the uses_ticks trait (`mutex`), a blocking
// native releases the lock around its wait and times the re-acquisition, and
// set_priority sets the thread's lock priority. Units never abort and heap
// accesses are not reported: a lock makes every unit atomic by exclusion
// (exclusive policies) or not at all (`none`).
//
// The model either owns its lock (MakeExecModel) or wraps one owned by the
// caller, who then keeps it alive longer than the model. Threads attach
// through the model (Attach) or adopt a gil::ThreadState the caller attached
// to the same lock (GilThread's constructor), for code that also drives the
// lock directly (tests, the lock benchmarks).
#pragma once

#include <memory>

#include "gil/gil.h"
#include "interp/exec_model.h"

namespace gillab::interp {

// A thread of a GilModel: its gil::ThreadState, owned or borrowed.
class GilThread final : public ExecThread {
 public:
  // Borrows `state`, which must outlive this object.
  explicit GilThread(gil::ThreadState& state) : state_(&state) {}
  explicit GilThread(std::unique_ptr<gil::ThreadState> state) : owned_(std::move(state)), state_(owned_.get()) {}

  gil::ThreadState& state() const { return *state_; }
  const gil::ThreadState* lock_state() const override { return state_; }

 private:
  std::unique_ptr<gil::ThreadState> owned_;
  gil::ThreadState* state_;
};

class GilModel final : public ExecModel {
 public:
  // Wraps `gil`, which must outlive the model.
  explicit GilModel(gil::Gil& gil);
  explicit GilModel(std::unique_ptr<gil::Gil> gil);

  std::string_view name() const override { return gil_.name(); }
  const ExecTraits& traits() const override { return traits_; }
  gil::Gil* lock() override { return &gil_; }
  gil::Gil& gil() { return gil_; }

  std::unique_ptr<ExecThread> Attach(gil::Role role, std::string name, int priority = 0) override;
  void Enter(ExecThread& t) override { gil_.Acquire(StateOf(t)); }
  void Leave(ExecThread& t) override { gil_.Release(StateOf(t)); }
  bool Inside(const ExecThread& t) const override { return gil_.HeldBy(StateOf(t)); }
  void BeginBlocking(ExecThread& t) override { gil_.Release(StateOf(t)); }
  void EndBlocking(ExecThread& t) override { gil_.Acquire(StateOf(t)); }

  const std::atomic<bool>& EvalBreaker(const ExecThread&) const override { return gil_.eval_breaker(); }
  int64_t TickInterval() const override { return gil_.check_interval(); }

  void BeginUnit(ExecThread&) override {}
  UnitVerdict EndUnit(ExecThread&, UnitEnd) override { return UnitVerdict::kDone; }
  void OnCheckPoint(ExecThread& t) override { gil_.Yield(StateOf(t)); }
  void OnTick(ExecThread& t) override { gil_.Yield(StateOf(t)); }
  void OnExternalEffect(ExecThread&, std::string_view) override {}
  void OnHeapAccess(ExecThread&, const HeapAccess&) override {}
  void SetPriority(ExecThread& t, int priority) override { gil_.SetLockPriority(StateOf(t), priority); }

 private:
  static gil::ThreadState& StateOf(const ExecThread& t) { return static_cast<const GilThread&>(t).state(); }

  std::unique_ptr<gil::Gil> owned_;
  gil::Gil& gil_;
  ExecTraits traits_;
};

}  // namespace gillab::interp
