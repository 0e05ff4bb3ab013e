// sim_model.cc — see sim_model.h.
#include "sim/sim_model.h"

#include <cmath>

#include <fmt/core.h>

#include "gil/clock.h"
#include "gil/error.h"

namespace gillab::sim {

// The wrapped model's thread plus this thread's count towards the wrapped
// model's own ticks.
class SimModel::Thread final : public interp::ExecThread {
 public:
  explicit Thread(std::unique_ptr<interp::ExecThread> inner) : inner(std::move(inner)) {}
  const gil::ThreadState* lock_state() const override { return inner->lock_state(); }

  std::unique_ptr<interp::ExecThread> inner;
  int64_t inner_ticks_due = 0;  // instructions until the wrapped model's next tick
};

SimModel::SimModel(std::unique_ptr<interp::ExecModel> inner, Simulator& sim, SimModelOptions options)
    : inner_(std::move(inner)),
      sim_(sim),
      options_(options),
      inner_tick_interval_(inner_->TickInterval()),
      quantum_cost_ns_(std::llround(static_cast<double>(options.quantum_instructions) *
                                    sim.options().costs.vm_instruction_ns)),
      charges_stm_(inner_->traits().units_may_abort) {
  if (options_.quantum_instructions < 1) {
    throw UsageError(fmt::format("quantum must be >= 1 instruction, got {}", options_.quantum_instructions));
  }
}

interp::ExecThread& SimModel::Inner(interp::ExecThread& t) { return *static_cast<Thread&>(t).inner; }
const interp::ExecThread& SimModel::Inner(const interp::ExecThread& t) {
  return *static_cast<const Thread&>(t).inner;
}

std::unique_ptr<interp::ExecThread> SimModel::Attach(gil::Role role, std::string name, int priority) {
  auto t = std::make_unique<Thread>(inner_->Attach(role, std::move(name), priority));
  t->inner_ticks_due = inner_tick_interval_;
  return t;
}

void SimModel::Enter(interp::ExecThread& t) {
  sim_.Charge(sim_.options().costs.lock_op_ns);
  inner_->Enter(Inner(t));
}
void SimModel::Leave(interp::ExecThread& t) {
  sim_.Charge(sim_.options().costs.lock_op_ns);
  inner_->Leave(Inner(t));
}
bool SimModel::Inside(const interp::ExecThread& t) const { return inner_->Inside(Inner(t)); }
void SimModel::BeginBlocking(interp::ExecThread& t) {
  sim_.Charge(sim_.options().costs.lock_op_ns);
  inner_->BeginBlocking(Inner(t));
}
void SimModel::EndBlocking(interp::ExecThread& t) {
  sim_.Charge(sim_.options().costs.lock_op_ns);
  inner_->EndBlocking(Inner(t));
}

const std::atomic<bool>& SimModel::EvalBreaker(const interp::ExecThread& t) const {
  return inner_->EvalBreaker(Inner(t));
}

void SimModel::BeginUnit(interp::ExecThread& t) { inner_->BeginUnit(Inner(t)); }
interp::UnitVerdict SimModel::EndUnit(interp::ExecThread& t, interp::UnitEnd how) {
  if (charges_stm_) sim_.Charge(sim_.options().costs.stm_unit_ns);
  return inner_->EndUnit(Inner(t), how);
}

void SimModel::OnCheckPoint(interp::ExecThread& t) {
  sim_.Charge(sim_.options().costs.lock_op_ns);
  inner_->OnCheckPoint(Inner(t));
}

void SimModel::OnTick(interp::ExecThread& t) {
  instructions_ += static_cast<uint64_t>(options_.quantum_instructions);
  sim_.Charge(quantum_cost_ns_);
  sim_.Settle();
  if (inner_tick_interval_ > 0) {
    auto& st = static_cast<Thread&>(t);
    st.inner_ticks_due -= options_.quantum_instructions;
    if (st.inner_ticks_due <= 0) {
      st.inner_ticks_due += inner_tick_interval_;
      inner_->OnTick(Inner(t));
    }
  }
}

interp::BlockResult SimModel::Block(interp::ExecThread& t, const interp::BlockingWait& wait) {
  inner_->OnExternalEffectAt(Inner(t), wait.native, wait.site);
  BeginBlocking(t);
  sim_.Sleep(wait.duration_us * 1000);
  const int64_t asked_ns = gil::NowNs();
  EndBlocking(t);
  return {.resume_wait_ns = gil::NowNs() - asked_ns};
}

void SimModel::OnExternalEffect(interp::ExecThread& t, std::string_view native) {
  inner_->OnExternalEffect(Inner(t), native);
}
void SimModel::OnExternalEffectAt(interp::ExecThread& t, std::string_view native, const interp::SourceSite& site) {
  inner_->OnExternalEffectAt(Inner(t), native, site);
}
void SimModel::OnHeapAccess(interp::ExecThread& t, const interp::HeapAccess& access) {
  if (charges_stm_) sim_.Charge(sim_.options().costs.stm_access_ns);
  inner_->OnHeapAccess(Inner(t), access);
}
std::map<std::string, double> SimModel::Figures(const interp::ExecThread& t) const {
  return inner_->Figures(Inner(t));
}
void SimModel::SetPriority(interp::ExecThread& t, int priority) { inner_->SetPriority(Inner(t), priority); }

}  // namespace gillab::sim
