// parallel_model.cc — see parallel_model.h.
#include "interp/parallel_model.h"

#include <mutex>
#include <stdexcept>

#include <fmt/core.h>

#include "gil/clock.h"

#include "interp/heap.h"
#include "interp/vm.h"

namespace gillab::interp {

class ParallelContextModel::Worker final : public ExecThread {
 public:
  explicit Worker(int64_t max_bytes) : arena(max_bytes) {}
  ContextArena arena;
  std::atomic<bool> stop{false};  // the eval breaker: set by RequestStop
  std::mutex mu;              // unit_started_ns and stop's setting against the unit's end
  int64_t unit_started_ns = 0;  // 0: no unit runs
  int64_t stopped_after_ns = 0;
  bool inside = false;
};

ParallelContextModel::Worker& ParallelContextModel::Of(ExecThread& t) { return static_cast<Worker&>(t); }
const ParallelContextModel::Worker& ParallelContextModel::Of(const ExecThread& t) {
  return static_cast<const Worker&>(t);
}

std::unique_ptr<ExecThread> ParallelContextModel::Attach(gil::Role, std::string, int) {
  return std::make_unique<Worker>(options_.context_max_bytes);
}

void ParallelContextModel::Enter(ExecThread& t) { Of(t).inside = true; }
void ParallelContextModel::Leave(ExecThread& t) { Of(t).inside = false; }
bool ParallelContextModel::Inside(const ExecThread& t) const { return Of(t).inside; }
void ParallelContextModel::BeginBlocking(ExecThread& t) { Of(t).inside = false; }
void ParallelContextModel::EndBlocking(ExecThread& t) { Of(t).inside = true; }

const std::atomic<bool>& ParallelContextModel::EvalBreaker(const ExecThread& t) const { return Of(t).stop; }

void ParallelContextModel::BeginUnit(ExecThread& t) {
  Worker& w = Of(t);
  {
    std::lock_guard lock(w.mu);
    w.unit_started_ns = gil::NowNs();
    w.stop.store(false, std::memory_order_relaxed);
  }
  ContextArena::SetCurrent(&w.arena);
}

UnitVerdict ParallelContextModel::EndUnit(ExecThread& t, UnitEnd) {
  Worker& w = Of(t);
  ContextArena::SetCurrent(nullptr);
  std::lock_guard lock(w.mu);
  w.unit_started_ns = 0;
  w.stop.store(false, std::memory_order_relaxed);
  return UnitVerdict::kDone;
}

void ParallelContextModel::OnCheckPoint(ExecThread& t) {
  Worker& w = Of(t);
  if (!w.stop.load(std::memory_order_relaxed)) return;
  int64_t after_ns;
  {
    std::lock_guard lock(w.mu);
    after_ns = w.stopped_after_ns;
  }
  throw VmError(fmt::format("parallel context stopped by the stall report after {} ms", after_ns / 1'000'000));
}

void ParallelContextModel::OnHeapAccess(ExecThread& t, const HeapAccess& access) {
  if (access.kind != HeapAccess::Kind::kWrite || access.cell == nullptr) return;  // reads are free; a non-table fails in the VM
  Worker& w = Of(t);
  if (!w.arena.Contains(access.cell)) {
    throw AccessRefused("a parallel context may not change a main-heap object");
  }
  w.arena.Charge(kEntryChargeBytes);
}

void ParallelContextModel::EndContext(ExecThread& t) {
  Worker& w = Of(t);
  {
    std::lock_guard lock(w.mu);
    if (w.unit_started_ns != 0) throw std::logic_error("EndContext while the context runs");
  }
  w.arena.Reset();
}

int64_t ParallelContextModel::StopIfRunningLonger(ExecThread& t, int64_t threshold_ns) {
  Worker& w = Of(t);
  std::lock_guard lock(w.mu);
  if (w.unit_started_ns == 0 || w.stop.load(std::memory_order_relaxed)) return 0;
  const int64_t ran_ns = gil::NowNs() - w.unit_started_ns;
  if (ran_ns <= threshold_ns) return 0;
  w.stopped_after_ns = ran_ns;
  w.stop.store(true, std::memory_order_relaxed);
  return ran_ns;
}

const ContextArena& ParallelContextModel::ArenaOf(const ExecThread& t) { return Of(t).arena; }

}  // namespace gillab::interp
