// stm_model.cc — the `stm` model; the algorithm's notes are in stm_model.h.
#include "interp/stm_model.h"

#include <time.h>

#include <algorithm>
#include <bit>
#include <filesystem>
#include <thread>
#include <unordered_map>

#include <fmt/format.h>

#include "gil/clock.h"
#include "gil/error.h"
#include "gil/platform.h"
#include "interp/heap.h"

namespace gillab::interp {
namespace {

constexpr uint64_t kWriter = uint64_t{1} << 63;
constexpr uint64_t kSlotMask = 63;
uint64_t Bit(int slot) { return uint64_t{1} << slot; }

enum ConflictKind : int { kWriteWrite = 0, kWriteRead = 1, kInevitable = 2 };
constexpr const char* kKindNames[] = {"write-write", "write-read", "inevitable"};

StmWord& WordOf(const void* object, HeapAccess::Target target) {
  void* o = const_cast<void*>(object);
  return target == HeapAccess::Target::kCell ? static_cast<Cell*>(o)->stm : static_cast<Table*>(o)->stm;
}

// Waits politely: spin a little, then yield, then sleep (2-core machines: a
// preempted owner must get a core to finish on). A simulated thread (design
// §13) asks its platform for the same step instead: on the host it would
// spin or sleep without moving virtual time, and the thread it waits for
// could never run (one virtual thread runs at a time).
constexpr int kSpinRounds = 32;
constexpr int kYieldRounds = 64;
constexpr int64_t kBackoffSleepNs = 50'000;

void Backoff(int round) {
  if (gil::Platform* p = gil::ThreadPlatform()) [[unlikely]] {
    using Kind = gil::Platform::PauseKind;
    if (round < kSpinRounds) {
      p->Pause(Kind::kSpin, 0);
    } else if (round < kYieldRounds) {
      p->Pause(Kind::kYield, 0);
    } else {
      p->Pause(Kind::kSleep, kBackoffSleepNs);
    }
    return;
  }
  if (round < kSpinRounds) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  } else if (round < kYieldRounds) {
    std::this_thread::yield();
  } else {
    timespec ts{0, kBackoffSleepNs};
    nanosleep(&ts, nullptr);
  }
}

}  // namespace

struct StmModel::SlotState {
  alignas(64) std::atomic<bool> used{false};
  std::atomic<bool> breaker{false};   // the slot's eval breaker: set to make a doomed unit notice
  std::atomic<bool> doomed{false};    // the inevitable unit needs what this unit holds
  std::atomic<int> doom_site{-1};     // where the inevitable unit wanted it
};

class StmThread final : public ExecThread {
 public:
  StmThread(StmModel& model, int slot, std::string name) : model_(model), slot(slot), name(std::move(name)) {}
  ~StmThread() override { model_.Detach(slot); }

  struct Held {
    HeapAccess::Target target;
    bool write;
  };
  struct CellUndo {
    Cell* cell;
    HeapValue saved;
  };
  struct TableUndo {
    Table* table;
    TableContents saved;
  };

  StmModel& model_;
  const int slot;
  const std::string name;
  std::atomic<bool> entered{false};
  std::atomic<bool> blocking{false};

  // The running unit (this thread only).
  bool in_unit = false;
  bool inevitable = false;
  bool start_inevitable = false;  // the next attempt takes the token first
  int start_inevitable_site = -1;
  int consecutive_aborts = 0;
  int last_site = -1;
  int64_t attempt_start_ns = 0;
  int64_t attempt_paused_ns = 0;
  std::unordered_map<const void*, Held> held;
  std::vector<CellUndo> cell_undo;
  std::vector<TableUndo> table_undo;
  bool pending = false;  // why the running attempt aborts
  StmModel::ConflictKey pending_key{};
  const void* wait_object = nullptr;  // what it lost (a table is retained until the wait ends)
  HeapAccess::Target wait_target = HeapAccess::Target::kCell;
  bool wait_write = false;
  std::map<std::tuple<const void*, const void*, int>, int> site_cache;

  // Figures (read by others: relaxed atomics).
  std::atomic<int64_t> commits{0}, aborts{0}, committed_ns{0}, aborted_ns{0}, paused_ns{0}, inevitable_units{0};

  void Paused(int64_t ns) {
    attempt_paused_ns += ns;
    paused_ns.fetch_add(ns, std::memory_order_relaxed);
    model_.paused_ns_.fetch_add(ns, std::memory_order_relaxed);
  }
};

StmModel::StmModel(const ExecModelOptions& options)
    : transaction_length_(options.stm_transaction_length),
      aborts_before_inevitable_(options.stm_aborts_before_inevitable),
      slots_(new SlotState[kMaxThreads]) {
  if (transaction_length_ < 1) {
    throw UsageError(fmt::format("stm_transaction_length must be >= 1, got {}", transaction_length_));
  }
  if (aborts_before_inevitable_ < 1) {
    throw UsageError(fmt::format("stm_aborts_before_inevitable must be >= 1, got {}", aborts_before_inevitable_));
  }
}

StmModel::~StmModel() = default;

StmThread& StmModel::Of(ExecThread& t) const { return static_cast<StmThread&>(t); }
const StmThread& StmModel::Of(const ExecThread& t) const { return static_cast<const StmThread&>(t); }

std::unique_ptr<ExecThread> StmModel::Attach(gil::Role, std::string name, int) {
  std::lock_guard lock(mu_);
  for (int s = 0; s < kMaxThreads; ++s) {
    if (!slots_[s].used.load(std::memory_order_relaxed)) {
      slots_[s].used.store(true, std::memory_order_relaxed);
      slots_[s].doomed.store(false, std::memory_order_relaxed);
      slots_[s].breaker.store(false, std::memory_order_relaxed);
      return std::make_unique<StmThread>(*this, s, std::move(name));
    }
  }
  throw std::runtime_error(fmt::format("stm: at most {} threads may be attached at once ('{}' is one too many)",
                                       kMaxThreads, name));
}

void StmModel::Detach(int slot) {
  std::lock_guard lock(mu_);
  slots_[slot].used.store(false, std::memory_order_relaxed);
}

void StmModel::Enter(ExecThread& t) { Of(t).entered.store(true, std::memory_order_relaxed); }
void StmModel::Leave(ExecThread& t) { Of(t).entered.store(false, std::memory_order_relaxed); }
bool StmModel::Inside(const ExecThread& t) const {
  const StmThread& s = Of(t);
  return s.entered.load(std::memory_order_relaxed) && !s.blocking.load(std::memory_order_relaxed);
}
void StmModel::BeginBlocking(ExecThread& t) { Of(t).blocking.store(true, std::memory_order_relaxed); }
void StmModel::EndBlocking(ExecThread& t) { Of(t).blocking.store(false, std::memory_order_relaxed); }

const std::atomic<bool>& StmModel::EvalBreaker(const ExecThread& t) const { return slots_[Of(t).slot].breaker; }

int StmModel::InternSite(StmThread& t, const SourceSite& site) {
  const auto key = std::make_tuple(static_cast<const void*>(site.program.data()),
                                   static_cast<const void*>(site.function.data()), site.line);
  auto it = t.site_cache.find(key);
  if (it != t.site_cache.end()) return it->second;
  std::lock_guard lock(mu_);
  auto [global, inserted] = site_ids_.emplace(key, static_cast<int>(site_text_.size()));
  if (inserted) {
    const std::string program = std::filesystem::path(std::string(site.program)).filename().string();
    site_text_.push_back(fmt::format("{}:{}:{}", program, site.function, site.line));
  }
  t.site_cache.emplace(key, global->second);
  return global->second;
}

std::string StmModel::SiteText(int site) const {
  return site >= 0 && static_cast<size_t>(site) < site_text_.size() ? site_text_[static_cast<size_t>(site)] : "?";
}

void StmModel::RecordConflict(const ConflictKey& key, int64_t lost_ns) {
  std::lock_guard lock(mu_);
  ConflictFigures& f = conflicts_[key];
  ++f.count;
  f.lost_ns += lost_ns;
}

// --- units -------------------------------------------------------------------

void StmModel::BeginUnit(ExecThread& et) {
  StmThread& t = Of(et);
  SlotState& s = slots_[t.slot];
  s.doomed.store(false, std::memory_order_relaxed);
  s.breaker.store(false, std::memory_order_relaxed);
  t.attempt_paused_ns = 0;
  t.pending = false;
  if (t.wait_object != nullptr) WaitForLostObject(t);
  t.attempt_start_ns = gil::NowNs();
  t.attempt_paused_ns = 0;
  t.in_unit = true;
  if (t.start_inevitable) {
    t.start_inevitable = false;
    TakeToken(t, t.start_inevitable_site);
  }
}

UnitVerdict StmModel::EndUnit(ExecThread& et, UnitEnd how) {
  StmThread& t = Of(et);
  const bool commit = how != UnitEnd::kAborted;
  if (!commit && t.inevitable) {
    std::lock_guard lock(mu_);
    ++inevitable_.aborted_while_inevitable;  // must never happen; the tests read it
  }
  Finish(t, commit);
  if (t.inevitable) ReleaseToken(t);
  t.in_unit = false;
  const int64_t run_ns = std::max<int64_t>(0, gil::NowNs() - t.attempt_start_ns - t.attempt_paused_ns);
  if (commit) {
    t.commits.fetch_add(1, std::memory_order_relaxed);
    t.committed_ns.fetch_add(run_ns, std::memory_order_relaxed);
    commits_.fetch_add(1, std::memory_order_relaxed);
    committed_ns_.fetch_add(run_ns, std::memory_order_relaxed);
    t.consecutive_aborts = 0;
    return UnitVerdict::kDone;
  }
  t.aborts.fetch_add(1, std::memory_order_relaxed);
  t.aborted_ns.fetch_add(run_ns, std::memory_order_relaxed);
  aborts_.fetch_add(1, std::memory_order_relaxed);
  aborted_ns_.fetch_add(run_ns, std::memory_order_relaxed);
  if (t.pending) RecordConflict(t.pending_key, run_ns);
  if (++t.consecutive_aborts >= aborts_before_inevitable_ && !t.start_inevitable) {
    t.start_inevitable = true;
    t.start_inevitable_site = t.pending ? t.pending_key.site : t.last_site;
  }
  return UnitVerdict::kDone;
}

void StmModel::Finish(StmThread& t, bool commit) {
  if (commit) {
    for (auto& u : t.cell_undo) DropHeapValue(u.saved);
    for (auto& u : t.table_undo) DropTableContents(u.saved);
  } else {
    // Each object was copied once (its first write), so the order between
    // objects does not matter; reverse anyway, as undo logs go.
    for (auto it = t.cell_undo.rbegin(); it != t.cell_undo.rend(); ++it) RestoreCellValue(*it->cell, std::move(it->saved));
    for (auto it = t.table_undo.rbegin(); it != t.table_undo.rend(); ++it) {
      RestoreTableContents(*it->table, std::move(it->saved));
    }
  }
  t.cell_undo.clear();
  t.table_undo.clear();
  const uint64_t me_bit = Bit(t.slot);
  std::vector<Table*> tables;
  for (const auto& [object, h] : t.held) {
    StmWord& w = WordOf(object, h.target);
    if (h.write) {
      w.owners.store(0, std::memory_order_release);
    } else {
      w.owners.fetch_and(~me_bit, std::memory_order_acq_rel);
    }
    if (h.target == HeapAccess::Target::kTable) tables.push_back(static_cast<Table*>(const_cast<void*>(object)));
  }
  t.held.clear();
  for (Table* table : tables) ReleaseTable(table);  // after the words: a table freed here is no one's
}

void StmModel::OnCheckPoint(ExecThread& et) {
  StmThread& t = Of(et);
  slots_[t.slot].breaker.store(false, std::memory_order_relaxed);
  CheckDoomed(t);
}

void StmModel::OnTick(ExecThread& et) {
  StmThread& t = Of(et);
  CheckDoomed(t);
  // A long inevitable unit commits what it has so far at this check point
  // and goes on, still inevitable (see the notes).
  if (t.in_unit && t.inevitable && !t.held.empty()) {
    Finish(t, true);
    t.commits.fetch_add(1, std::memory_order_relaxed);
  }
}

void StmModel::CheckDoomed(StmThread& t) {
  if (t.inevitable) return;
  SlotState& s = slots_[t.slot];
  if (!s.doomed.load(std::memory_order_acquire)) return;
  t.pending = true;
  t.pending_key = {kInevitable, t.last_site, s.doom_site.load(std::memory_order_relaxed)};
  throw UnitAborted("stm: gave way to the inevitable unit");
}

// --- the barriers -----------------------------------------------------------

void StmModel::OnHeapAccess(ExecThread& et, const HeapAccess& a) {
  if (a.cell == nullptr) return;  // not a table: the operation fails on its own
  StmThread& t = Of(et);
  if (!t.in_unit) return;
  if (a.kind == HeapAccess::Kind::kCreate) {
    // Nobody else can see it: owned from birth, nothing to undo.
    WordOf(a.cell, a.target).owners.store(kWriter | static_cast<uint64_t>(t.slot), std::memory_order_relaxed);
    t.held.emplace(a.cell, StmThread::Held{a.target, true});
    RetainTable(static_cast<Table*>(const_cast<void*>(a.cell)));
    return;
  }
  const bool write = a.kind == HeapAccess::Kind::kWrite;
  auto it = t.held.find(a.cell);
  if (it != t.held.end() && (it->second.write || !write)) return;  // held already
  const int site = InternSite(t, a.site);
  t.last_site = site;
  CheckDoomed(t);
  Acquire(t, a, site);
}

void StmModel::Acquire(StmThread& t, const HeapAccess& a, int site) {
  const bool write = a.kind == HeapAccess::Kind::kWrite;
  StmWord& w = WordOf(a.cell, a.target);
  const uint64_t me_bit = Bit(t.slot);
  const uint64_t me_writer = kWriter | static_cast<uint64_t>(t.slot);
  int64_t wait_start_ns = 0;
  int64_t stall_reported_at_ns = 0;
  for (int round = 0;; ++round) {
    uint64_t cur = w.owners.load(std::memory_order_acquire);
    uint64_t others;
    if (cur & kWriter) {
      others = Bit(static_cast<int>(cur & kSlotMask));
      if ((cur & kSlotMask) == static_cast<uint64_t>(t.slot)) others = 0;  // cannot happen: held covers it
    } else {
      others = write ? (cur & ~me_bit) : 0;
    }
    if (others == 0) {
      const uint64_t desired = write ? me_writer : (cur | me_bit);
      if (w.owners.compare_exchange_weak(cur, desired, std::memory_order_acq_rel)) break;
      continue;
    }
    const int token = token_.load(std::memory_order_acquire);
    const bool other_inevitable = token >= 0 && (others & Bit(token)) != 0;
    const int kind = other_inevitable ? kInevitable : ((cur & kWriter) && write) ? kWriteWrite : kWriteRead;
    if (!t.inevitable) AbortForConflict(t, kind, site, w.site.load(std::memory_order_relaxed), a.cell, a.target, write);
    // The inevitable unit: doom whoever is in the way and wait for them.
    const int64_t now = gil::NowNs();
    if (wait_start_ns == 0) wait_start_ns = stall_reported_at_ns = now;
    for (uint64_t m = others; m != 0; m &= m - 1) {
      SlotState& victim = slots_[std::countr_zero(m)];
      victim.doom_site.store(site, std::memory_order_relaxed);
      victim.doomed.store(true, std::memory_order_release);
      victim.breaker.store(true, std::memory_order_release);
    }
    if (now - stall_reported_at_ns > stall_report_ms_ * 1'000'000) {
      stall_reported_at_ns = now;
      std::string where;
      {
        std::lock_guard lock(mu_);
        where = SiteText(w.site.load(std::memory_order_relaxed));
      }
      fmt::print(stderr, "gillab: stm stall: inevitable unit on '{}' has waited {} ms for an object last taken at {}\n",
                 t.name, (now - wait_start_ns) / 1'000'000, where);
    }
    Backoff(round);
  }
  if (wait_start_ns != 0) t.Paused(gil::NowNs() - wait_start_ns);
  w.site.store(site, std::memory_order_relaxed);
  auto it = t.held.find(a.cell);
  if (it == t.held.end()) {
    t.held.emplace(a.cell, StmThread::Held{a.target, write});
    if (a.target == HeapAccess::Target::kTable) RetainTable(static_cast<Table*>(const_cast<void*>(a.cell)));
  } else {
    it->second.write = true;  // a reader upgraded
  }
  if (write && !t.inevitable) {
    void* o = const_cast<void*>(a.cell);
    if (a.target == HeapAccess::Target::kCell) {
      t.cell_undo.push_back({static_cast<Cell*>(o), CopyCellValue(*static_cast<Cell*>(o))});
    } else {
      t.table_undo.push_back({static_cast<Table*>(o), CopyTableContents(*static_cast<Table*>(o))});
    }
  }
}

void StmModel::AbortForConflict(StmThread& t, int kind, int site, int other_site, const void* object,
                                HeapAccess::Target target, bool write) {
  t.pending = true;
  t.pending_key = {kind, site, other_site};
  t.wait_object = object;
  t.wait_target = target;
  t.wait_write = write;
  if (target == HeapAccess::Target::kTable) RetainTable(static_cast<Table*>(const_cast<void*>(object)));
  throw UnitAborted(fmt::format("stm: {} conflict", kKindNames[kind]));
}

void StmModel::WaitForLostObject(StmThread& t) {
  StmWord& w = WordOf(t.wait_object, t.wait_target);
  const uint64_t me_bit = Bit(t.slot);
  const int64_t start_ns = gil::NowNs();
  int64_t reported_ns = start_ns;
  for (int round = 0;; ++round) {
    const uint64_t cur = w.owners.load(std::memory_order_acquire);
    const bool free = t.wait_write ? (cur & ~me_bit) == 0 : (cur & kWriter) == 0;
    if (free) break;
    const int64_t now = gil::NowNs();
    if (now - reported_ns > stall_report_ms_ * 1'000'000) {
      reported_ns = now;
      std::string where;
      {
        std::lock_guard lock(mu_);
        where = SiteText(w.site.load(std::memory_order_relaxed));
      }
      fmt::print(stderr, "gillab: stm stall: '{}' has waited {} ms for an object held by a unit that took it at {}\n",
                 t.name, (now - start_ns) / 1'000'000, where);
    }
    Backoff(round);
  }
  t.Paused(gil::NowNs() - start_ns);
  if (t.wait_target == HeapAccess::Target::kTable) ReleaseTable(static_cast<Table*>(const_cast<void*>(t.wait_object)));
  t.wait_object = nullptr;
}

// --- inevitability ---------------------------------------------------------

void StmModel::TakeToken(StmThread& t, int site) {
  int64_t waited_ns = 0;
  {
    std::unique_lock lock(mu_);
    if (token_.load(std::memory_order_relaxed) != -1) {
      const int other_site = token_site_;
      if (!t.held.empty()) {
        // Waiting while holding objects could deadlock with the inevitable
        // unit (it may need them): give everything back and re-run
        // inevitable from the start. Decided under mu_, so the token cannot
        // be taken between this check and the wait.
        t.pending = true;
        t.pending_key = {kInevitable, site, other_site};
        t.start_inevitable = true;
        t.start_inevitable_site = site;
        lock.unlock();
        throw UnitAborted("stm: needs to become inevitable while another unit is");
      }
      const int64_t start_ns = gil::NowNs();
      while (token_.load(std::memory_order_relaxed) != -1) token_cv_.Wait(lock);
      waited_ns = gil::NowNs() - start_ns;
      ConflictFigures& f = conflicts_[ConflictKey{kInevitable, site, other_site}];
      ++f.count;
      f.lost_ns += waited_ns;
    }
    token_.store(t.slot, std::memory_order_release);
    token_site_ = site;
    const int64_t now = gil::NowNs();
    ++inevitable_now_;
    inevitable_.max_concurrent = std::max(inevitable_.max_concurrent, inevitable_now_);
    if (inevitable_.intervals_ns.size() < (size_t{1} << 20)) inevitable_.intervals_ns.emplace_back(now, -1);
  }
  if (waited_ns > 0) t.Paused(waited_ns);
  t.inevitable = true;
  t.inevitable_units.fetch_add(1, std::memory_order_relaxed);
  inevitable_units_.fetch_add(1, std::memory_order_relaxed);
  // It can no longer abort: what it wrote so far stays.
  for (auto& u : t.cell_undo) DropHeapValue(u.saved);
  for (auto& u : t.table_undo) DropTableContents(u.saved);
  t.cell_undo.clear();
  t.table_undo.clear();
}

void StmModel::ReleaseToken(StmThread& t) {
  t.inevitable = false;
  {
    std::lock_guard lock(mu_);
    const int64_t now = gil::NowNs();
    --inevitable_now_;
    // This thread's open interval is the last one still open.
    for (auto it = inevitable_.intervals_ns.rbegin(); it != inevitable_.intervals_ns.rend(); ++it) {
      if (it->second == -1) {
        it->second = now;
        break;
      }
    }
    token_.store(-1, std::memory_order_release);
  }
  token_cv_.NotifyAll();
}

void StmModel::BecomeInevitable(StmThread& t, int site) {
  if (t.inevitable || !t.in_unit) return;
  CheckDoomed(t);
  TakeToken(t, site);  // aborts instead of waiting when t holds objects
}

void StmModel::OnExternalEffect(ExecThread& t, std::string_view) { BecomeInevitable(Of(t), Of(t).last_site); }

void StmModel::OnExternalEffectAt(ExecThread& et, std::string_view, const SourceSite& site) {
  StmThread& t = Of(et);
  if (t.inevitable || !t.in_unit) return;
  BecomeInevitable(t, InternSite(t, site));
}

BlockResult StmModel::Block(ExecThread& et, const BlockingWait& wait) {
  StmThread& t = Of(et);
  if (!t.inevitable && t.in_unit) BecomeInevitable(t, InternSite(t, wait.site));
  return ExecModel::Block(et, wait);
}

// --- figures ---------------------------------------------------------------

std::map<std::string, double> StmModel::Figures(const ExecThread& et) const {
  const StmThread& t = Of(et);
  auto d = [](const std::atomic<int64_t>& v) { return static_cast<double>(v.load(std::memory_order_relaxed)); };
  return {{"stm_commits", d(t.commits)},         {"stm_aborts", d(t.aborts)},
          {"stm_paused_ns", d(t.paused_ns)},     {"stm_committed_ns", d(t.committed_ns)},
          {"stm_aborted_ns", d(t.aborted_ns)},   {"stm_inevitable_units", d(t.inevitable_units)}};
}

StmReport StmModel::Report() const {
  StmReport r;
  auto v = [](const std::atomic<int64_t>& a) { return a.load(std::memory_order_relaxed); };
  r.commits = v(commits_);
  r.aborts = v(aborts_);
  r.inevitable_units = v(inevitable_units_);
  r.committed_ns = v(committed_ns_);
  r.aborted_ns = v(aborted_ns_);
  r.paused_ns = v(paused_ns_);
  std::lock_guard lock(mu_);
  for (const auto& [key, f] : conflicts_) {
    r.conflicts.push_back({kKindNames[key.kind], SiteText(key.site), SiteText(key.other_site), f.count, f.lost_ns});
  }
  std::sort(r.conflicts.begin(), r.conflicts.end(),
            [](const StmConflict& a, const StmConflict& b) { return a.lost_ns > b.lost_ns; });
  return r;
}

StmInevitableRecord StmModel::Inevitable() const {
  std::lock_guard lock(mu_);
  return inevitable_;
}

std::map<std::string, double> StmModel::RunFigures() const {
  const StmReport r = Report();
  return {{"stm_commits", static_cast<double>(r.commits)},       {"stm_aborts", static_cast<double>(r.aborts)},
          {"stm_committed_ns", static_cast<double>(r.committed_ns)}, {"stm_aborted_ns", static_cast<double>(r.aborted_ns)},
          {"stm_paused_ns", static_cast<double>(r.paused_ns)},   {"stm_inevitable_units", static_cast<double>(r.inevitable_units)}};
}

nlohmann::json StmModel::ReportJson() const {
  const StmReport r = Report();
  nlohmann::json j = {{"commits", r.commits},       {"aborts", r.aborts},         {"inevitable_units", r.inevitable_units},
                      {"committed_ns", r.committed_ns}, {"aborted_ns", r.aborted_ns}, {"paused_ns", r.paused_ns}};
  nlohmann::json conflicts = nlohmann::json::array();
  for (size_t i = 0; i < r.conflicts.size() && i < 10; ++i) {
    const StmConflict& c = r.conflicts[i];
    conflicts.push_back({{"kind", c.kind}, {"site", c.site}, {"other_site", c.other_site}, {"count", c.count},
                         {"lost_ns", c.lost_ns}});
  }
  j["conflicts"] = conflicts;
  return j;
}

std::string FormatStmReport(const nlohmann::json& j) {
  auto ms = [&](const char* key) { return j.value(key, int64_t{0}) / 1e6; };
  const double committed = ms("committed_ns"), aborted = ms("aborted_ns"), paused = ms("paused_ns");
  const double total = std::max(committed + aborted + paused, 1e-9);
  std::string out = fmt::format(
      "stm: {} commits, {} aborts, {} inevitable units\n"
      "  time committed {:.1f} ms ({:.1f}%), aborted {:.1f} ms ({:.1f}%), paused {:.1f} ms ({:.1f}%)\n",
      j.value("commits", int64_t{0}), j.value("aborts", int64_t{0}), j.value("inevitable_units", int64_t{0}), committed,
      100 * committed / total, aborted, 100 * aborted / total, paused, 100 * paused / total);
  if (j.contains("conflicts") && !j["conflicts"].empty()) {
    out += "  top conflicts by time lost:\n";
    for (const auto& c : j["conflicts"]) {
      out += fmt::format("    {:>9.1f} ms  {:>7}x  {:<11} {}  <->  {}\n", c.value("lost_ns", int64_t{0}) / 1e6,
                         c.value("count", int64_t{0}), c.value("kind", std::string()), c.value("site", std::string()),
                         c.value("other_site", std::string()));
    }
  }
  return out;
}

}  // namespace gillab::interp
