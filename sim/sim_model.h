// sim_model.h — an execution model (interp/exec_model.h) run inside the
// simulator: it wraps the real model (the real lock policy through
// GilModel) and only adds virtual time (design §13).
//
// What it adds to the model it wraps:
// - VM instructions: the VM calls OnTick every quantum_instructions
//   instructions (the seam's tick, served at the next check point); each
//   tick charges quantum * CostTable::vm_instruction_ns and lets virtual time
//   catch up (Simulator::Settle: the thread may be preempted or let another
//   core's thread run first). A wrapped model with its own ticks (`mutex`)
//   still gets them, every TickInterval() of its instructions.
// - Blocking natives (sleep_us): BeginBlocking, then the duration in virtual
//   time off the core (Simulator::Sleep), then EndBlocking; the resume wait
//   is measured on the virtual clock.
// - Lock operations that do not wait charge CostTable::lock_op_ns.
// - A model whose units may abort (stm) also charges its own work:
//   CostTable::stm_unit_ns per unit that ends (commit or abort) and
//   stm_access_ns per heap access it is told of. Its waits (the inevitable
//   token, its spin-waits' backoff) go through the platform seam, so they
//   run in virtual time by themselves.
// - A blocking native is an outside effect: the wrapped model hears of it
//   (OnExternalEffectAt: an stm unit becomes inevitable, as its own Block
//   would make it) before the virtual wait.
// Everything else (the eval breaker, check points, priorities, units) is the
// wrapped model's, unchanged: the same code decides who runs.
//
// Limits: a call's instructions after its last tick are not charged (at
// most one quantum per Vm::Call); spin_holding_us burns virtual time through
// its clock reads but cannot be preempted until it returns.
//
//   Simulator sim(...);
//   SimModel model(MakeExecModel("newgil"), sim, {.quantum_instructions = 128});
//   // in a virtual thread: model.Attach(...), model.Enter(...), Vm(program, model, ...)
#pragma once

#include <memory>

#include "interp/exec_model.h"
#include "sim/simulator.h"

namespace gillab::sim {

struct SimModelOptions {
  // Instructions between two charges (and chances to switch). Smaller is
  // more precise and slower; 128 instructions are ~170 ns of virtual time.
  int64_t quantum_instructions = 128;
};

class SimModel final : public interp::ExecModel {
 public:
  SimModel(std::unique_ptr<interp::ExecModel> inner, Simulator& sim, SimModelOptions options = {});

  std::string_view name() const override { return inner_->name(); }
  const interp::ExecTraits& traits() const override { return inner_->traits(); }
  gil::Gil* lock() override { return inner_->lock(); }

  std::unique_ptr<interp::ExecThread> Attach(gil::Role role, std::string name, int priority = 0) override;
  void Enter(interp::ExecThread& t) override;
  void Leave(interp::ExecThread& t) override;
  bool Inside(const interp::ExecThread& t) const override;
  void BeginBlocking(interp::ExecThread& t) override;
  void EndBlocking(interp::ExecThread& t) override;

  const std::atomic<bool>& EvalBreaker(const interp::ExecThread& t) const override;
  int64_t TickInterval() const override { return options_.quantum_instructions; }

  void BeginUnit(interp::ExecThread& t) override;
  interp::UnitVerdict EndUnit(interp::ExecThread& t, interp::UnitEnd how) override;
  void OnCheckPoint(interp::ExecThread& t) override;
  void OnTick(interp::ExecThread& t) override;
  interp::BlockResult Block(interp::ExecThread& t, const interp::BlockingWait& wait) override;
  void OnExternalEffect(interp::ExecThread& t, std::string_view native) override;
  void OnExternalEffectAt(interp::ExecThread& t, std::string_view native, const interp::SourceSite& site) override;
  void OnHeapAccess(interp::ExecThread& t, const interp::HeapAccess& access) override;
  void SetPriority(interp::ExecThread& t, int priority) override;

  std::map<std::string, double> Figures(const interp::ExecThread& t) const override;
  std::map<std::string, double> RunFigures() const override { return inner_->RunFigures(); }
  nlohmann::json ReportJson() const override { return inner_->ReportJson(); }
  // The wrapped model (e.g. for StmModel's report).
  interp::ExecModel& inner() { return *inner_; }

  // Simulated VM instructions charged so far (all threads).
  uint64_t instructions() const { return instructions_; }

 private:
  class Thread;
  static interp::ExecThread& Inner(interp::ExecThread& t);
  static const interp::ExecThread& Inner(const interp::ExecThread& t);

  std::unique_ptr<interp::ExecModel> inner_;
  Simulator& sim_;
  SimModelOptions options_;
  int64_t inner_tick_interval_;
  int64_t quantum_cost_ns_;
  bool charges_stm_;  // the wrapped model's units may abort: its own work costs (see above)
  uint64_t instructions_ = 0;  // only the baton holder writes it
};

}  // namespace gillab::sim
