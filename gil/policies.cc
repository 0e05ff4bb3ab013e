// policies.cc — the run-time choice of policy by name (design §2): one table,
// one row per policy (name, summary, traits, factory). A new policy is its own
// file plus one row here.
#include <algorithm>
#include <functional>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "gil/error.h"
#include "gil/gil.h"
#include "gil/mutex_lock.h"
#include "gil/newgil_lock.h"
#include "gil/no_lock.h"
#include "gil/priority_lock.h"
#include "gil/ticket_lock.h"

namespace gillab::gil {
namespace {

struct PolicyRow {
  std::string name;
  std::string_view summary;
  PolicyTraits traits;
  std::function<std::unique_ptr<Gil>(const GilOptions&)> make;
};

template <typename Lock>
std::unique_ptr<Gil> Make(const GilOptions& options) {
  return std::make_unique<Lock>(options);
}

// The convoy figures are the runner's dry-run fit (cpu_threads.toml on the
// 2-core reference VM): newgil waited 1, 2.4 and 5.6 switch intervals at
// K = 1, 2, 4 CPU threads; ticket, which queues the I/O thread behind every
// CPU thread, 2, 4.8 and 10.4; `mutex` ticks hand the lock over within ~100 µs.
const std::vector<PolicyRow>& Rows() {
  static const std::vector<PolicyRow> rows = {
      {"mutex",
       "plain mutex released and re-taken every check_interval instructions; the OS decides "
       "(CPython 2 old GIL)",
       {.exclusive = true, .requests_drops = false, .uses_ticks = true, .convoy_fixed_us = 100},
       Make<MutexLock>},
      {"ticket", "fair FIFO; a waiter asks the holder to yield after switch_interval_us",
       {.exclusive = true, .requests_drops = true, .convoy_intervals_per_cpu_thread = 2.5,
        .convoy_intervals_offset = -0.5},
       Make<TicketLock>},
      {"priority",
       "served by (lock priority, arrival); a higher waiter preempts at the next check point; "
       "equals round-robin",
       {.exclusive = true, .requests_drops = true, .uses_lock_priority = true,
        .convoy_intervals_per_cpu_thread = 1.4, .convoy_intervals_offset = -0.4,
        .io_priority_avoids_convoy = true},
       Make<PriorityLock>},
      {"newgil",
       "CPython 3.2-3.12: drop request after switch_interval_us without a switch, forced "
       "switching",
       {.exclusive = true, .requests_drops = true, .uses_forced_switching = true,
        .convoy_intervals_per_cpu_thread = 1.4, .convoy_intervals_offset = -0.4},
       Make<NewGilLock>},
      {"none", "no lock at all (free-threaded upper bound; no shared mutable state)",
       {.exclusive = false, .requests_drops = false}, Make<NoLock>},
  };
  return rows;
}

const PolicyRow* Find(std::string_view name) {
  const auto& rows = Rows();
  auto it = std::find_if(rows.begin(), rows.end(), [&](const PolicyRow& r) { return r.name == name; });
  return it == rows.end() ? nullptr : &*it;
}

const PolicyRow& FindOrThrow(std::string_view name) {
  if (const PolicyRow* row = Find(name)) return *row;
  throw UsageError(fmt::format("unknown policy '{}' (choose from {})", name, fmt::join(PolicyNames(), ", ")));
}

}  // namespace

const std::vector<std::string>& PolicyNames() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const PolicyRow& r : Rows()) out.push_back(r.name);
    return out;
  }();
  return names;
}

std::string_view PolicySummary(std::string_view name) {
  const PolicyRow* row = Find(name);
  return row == nullptr ? std::string_view() : row->summary;
}

const PolicyTraits& PolicyTraitsOf(std::string_view name) { return FindOrThrow(name).traits; }

std::unique_ptr<Gil> MakeGil(std::string_view name, const GilOptions& options) {
  const PolicyRow& row = FindOrThrow(name);
  if (options.switch_interval_us <= 0)
    throw UsageError(fmt::format("switch interval must be positive, got {} us", options.switch_interval_us));
  if (options.check_interval <= 0)
    throw UsageError(fmt::format("check interval must be positive, got {}", options.check_interval));
  return row.make(options);
}

}  // namespace gillab::gil
