// stm_model.h — the `stm` execution model (design §9, issue 13): VM threads run
// at the same time, each Vm::Call is one atomic unit (a transaction) over the
// shared heap (heap.h), and the units are serialisable.
//
// Notes about the implementation
//
// Algorithm: object-level barriers (PyPy-STM's granularity: one global cell or
// one whole table is one object) with encounter-time ownership and undo
// logging — strict two-phase locking where a conflict aborts instead of
// waiting (no-wait 2PL), so there are no zombie units: a unit only ever sees
// committed values and never needs validation at commit.
//
// - What is logged. Every object has an StmWord (heap.h): a 64-bit owner word
//   (bit 63 set: one writer, its thread slot in the low bits; clear: a
//   bitmask of the reader slots) and the interned site of its last owner.
//   A unit's first read of an object sets its reader bit (one CAS) and puts
//   the object in its set; its first write takes the word for itself (a CAS
//   from "no owner", or from "only me as a reader") and copies the object's
//   old contents into the undo log (a cell: its value; a table: all its
//   entries — the first write to a big shared table costs a copy of it, as
//   PyPy's write barrier copies an old object). Tables the unit made itself
//   (TNEW, reported as kCreate) are owned from birth and never copied. Later
//   accesses to an object the unit already holds cost one hash lookup. Every
//   table in the sets is held by a counted reference until the unit ends.
// - When conflicts are detected: at the access (encounter time): a read of an
//   object another unit writes, a write of an object another unit reads or
//   writes. Kinds in the report: write-write, write-read (either order), and
//   inevitable (the other side is the inevitable unit, or the unit had to
//   wait for or give way to it).
// - Who aborts. The requester: it throws UnitAborted (the VM unwinds and
//   re-runs the call), its undo log is applied in reverse, its ownership
//   released, and its re-run first waits until the object it lost is free
//   (paused time), so two units do not keep knocking each other out.
//   Exception: the inevitable unit never aborts; it dooms the owners in its
//   way (their doomed flag and eval breaker: they abort at their next check
//   point or heap access) and waits until they have let go.
// - Inevitable units. A native with an effect outside the heap (now_ns,
//   print, sleep_us and every Block) makes its unit inevitable: it takes the
//   one inevitable token, drops its undo log and can no longer abort. At most
//   one unit is inevitable at a time. A unit that needs the token while
//   another holds it waits for it if it holds nothing yet, else aborts and
//   re-runs inevitable from its start. `transaction_time` reads the clock
//   without becoming inevitable (PyPy's transaction.time()).
// - Starvation. A unit that aborted `stm_aborts_before_inevitable` times in a
//   row re-runs inevitable, so it finishes.
// - Long units. An inevitable unit commits what it has written every
//   `stm_transaction_length` instructions, at the next check point (PyPy
//   breaks transactions at safe points the same way): its ownership is
//   released so others can go on, it stays inevitable to its end. Since a
//   check point is the only place a GIL switches too, what was atomic under a
//   GIL (`gload c; push 1; add; gstore c`) stays atomic. A unit that is not
//   inevitable is never split: if it is long and conflicts, it aborts and
//   re-runs, and after enough aborts it runs inevitable. Each such piece
//   counts as one commit in the figures (stm_commits).
// - What a commit costs: one atomic store or fetch_and per object held, the
//   undo log freed, the table references dropped, one atomic increment of
//   the thread's unit serial. An abort costs the undo log applied in reverse
//   plus the same.
// - Waiting. Every wait goes through the platform seam (gil/platform.h), so
//   the simulator runs this code in virtual time (design §13): the token's
//   waiters sleep on a gil::CondVar, the spin-waits (an inevitable unit
//   waiting for its victims, a re-run waiting for the object it lost) back
//   off by spinning, yielding, then sleeping 50 µs — on a simulated thread
//   through Platform::Pause — and clock reads are gil::NowNs.
// - Limits. At most kMaxThreads (62) threads attached at once (the reader
//   bitmask); Attach beyond that throws. A unit that holds an object and never
//   ends (a hostile loop) makes the others that need it wait: after
//   `stall_report_ms` of waiting a waiter prints one stall line on stderr
//   naming the object's last owner site, and goes on waiting.
// - Sites. Conflicts name both sides as program:function:line; the sites are
//   interned once per (function, line) per thread. A site records the
//   function's name by address, so programs must outlive the model's report
//   (engines keep their programs for their life).
//
//   auto model = MakeExecModel("stm", {.stm_transaction_length = 100000});
//   auto me = model->Attach(gil::Role::kIo, "worker-0");
//   model->Enter(*me);
//   Vm vm(program, *model, *me, {.heap = heap});   // heap: concurrent
//   vm.Call("transfer", {...});                    // one transaction, re-run on conflict
//   StmReport r = static_cast<StmModel&>(*model).Report();
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include "gil/cond_var.h"
#include "interp/exec_model.h"

namespace gillab::interp {

// One line of the conflict report: what kind, where on both sides, how often
// and how much time it cost (aborted attempts' run time, or time paused
// waiting for the other side).
struct StmConflict {
  std::string kind;        // "write-write", "write-read", "inevitable"
  std::string site;        // program:function:line of the unit that lost time
  std::string other_site;  // program:function:line of the other side ("?" when unknown)
  int64_t count = 0;
  int64_t lost_ns = 0;
};

// The whole run (PyPy's print_stm_log.py summary): CPU time in committed,
// aborted and paused units, and the conflicts by time lost, most first.
struct StmReport {
  int64_t commits = 0;
  int64_t aborts = 0;
  int64_t inevitable_units = 0;
  int64_t committed_ns = 0;
  int64_t aborted_ns = 0;
  int64_t paused_ns = 0;
  std::vector<StmConflict> conflicts;
};

// What the model has recorded about the inevitable units, for tests: each
// [begin, end) interval in which a unit held the inevitable token, and
// whether any unit ever aborted while inevitable (it must not).
struct StmInevitableRecord {
  std::vector<std::pair<int64_t, int64_t>> intervals_ns;  // by begin
  int64_t aborted_while_inevitable = 0;
  int64_t max_concurrent = 0;
};

// The report as text, print_stm_log.py's shape: time committed / aborted /
// paused, then the top conflicts by time lost.
std::string FormatStmReport(const nlohmann::json& report);

class StmThread;

class StmModel final : public ExecModel {
 public:
  static constexpr int kMaxThreads = 62;

  explicit StmModel(const ExecModelOptions& options);
  ~StmModel() override;

  std::string_view name() const override { return "stm"; }
  const ExecTraits& traits() const override { return traits_; }

  std::unique_ptr<ExecThread> Attach(gil::Role role, std::string name, int priority = 0) override;
  void Enter(ExecThread& t) override;
  void Leave(ExecThread& t) override;
  bool Inside(const ExecThread& t) const override;
  void BeginBlocking(ExecThread& t) override;
  void EndBlocking(ExecThread& t) override;

  const std::atomic<bool>& EvalBreaker(const ExecThread& t) const override;
  int64_t TickInterval() const override { return transaction_length_; }

  void BeginUnit(ExecThread& t) override;
  UnitVerdict EndUnit(ExecThread& t, UnitEnd how) override;
  void OnCheckPoint(ExecThread& t) override;
  void OnTick(ExecThread& t) override;
  BlockResult Block(ExecThread& t, const BlockingWait& wait) override;
  void OnExternalEffect(ExecThread& t, std::string_view native) override;
  void OnExternalEffectAt(ExecThread& t, std::string_view native, const SourceSite& site) override;
  void OnHeapAccess(ExecThread& t, const HeapAccess& access) override;
  void SetPriority(ExecThread&, int) override {}

  std::map<std::string, double> Figures(const ExecThread& t) const override;
  std::map<std::string, double> RunFigures() const override;
  // {"committed_ns","aborted_ns","paused_ns","commits","aborts","inevitable_units",
  //  "conflicts":[{"kind","site","other_site","count","lost_ns"}...]} (top 10 by time lost)
  nlohmann::json ReportJson() const override;

  // The run so far (any thread; figures of running units are not included).
  StmReport Report() const;
  StmInevitableRecord Inevitable() const;

 private:
  friend class StmThread;
  struct SlotState;
  struct ConflictKey {
    int kind;  // 0 write-write, 1 write-read, 2 inevitable
    int site;
    int other_site;
    auto operator<=>(const ConflictKey&) const = default;
  };
  struct ConflictFigures {
    int64_t count = 0;
    int64_t lost_ns = 0;
  };

  StmThread& Of(ExecThread& t) const;
  const StmThread& Of(const ExecThread& t) const;
  int InternSite(StmThread& t, const SourceSite& site);
  std::string SiteText(int site) const;
  void Detach(int slot);

  // The unit's accesses (OnHeapAccess's halves).
  void Acquire(StmThread& t, const HeapAccess& access, int site);
  [[noreturn]] void AbortForConflict(StmThread& t, int kind, int site, int other_site, const void* object,
                                     HeapAccess::Target target, bool write);
  void CheckDoomed(StmThread& t);
  // Becomes the inevitable unit (or aborts to re-run as one).
  void BecomeInevitable(StmThread& t, int site);
  void TakeToken(StmThread& t, int site);
  void ReleaseToken(StmThread& t);
  // Ends the transaction: commit (keep effects) or roll back, then release.
  void Finish(StmThread& t, bool commit);
  void WaitForLostObject(StmThread& t);
  void RecordConflict(const ConflictKey& key, int64_t lost_ns);

  const ExecTraits traits_{.exclusive = false, .sees_heap_accesses = true, .units_may_abort = true};
  const int64_t transaction_length_;
  const int aborts_before_inevitable_;
  const int64_t stall_report_ms_ = 2000;

  std::unique_ptr<SlotState[]> slots_;  // kMaxThreads
  mutable std::mutex mu_;               // slot allocation, sites, conflicts, totals, the token's waiters
  gil::CondVar token_cv_;               // the token's waiters (mu_); a simulator's on its threads
  std::atomic<int> token_{-1};          // the inevitable unit's slot, or -1
  int token_site_ = -1;                 // where it became inevitable (mu_)
  std::vector<std::string> site_text_;  // by site id (mu_)
  std::map<std::tuple<const void*, const void*, int>, int> site_ids_;  // (program, function, line) -> id (mu_)
  std::map<ConflictKey, ConflictFigures> conflicts_;                    // mu_
  // Run-wide figures (every thread adds to them as its units end).
  std::atomic<int64_t> commits_{0}, aborts_{0}, inevitable_units_{0}, committed_ns_{0}, aborted_ns_{0}, paused_ns_{0};
  StmInevitableRecord inevitable_;                                     // mu_
  int64_t inevitable_now_ = 0;                                         // mu_
};

}  // namespace gillab::interp
