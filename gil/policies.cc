// policies.cc — the run-time choice of policy by name (design §2).
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

const std::vector<std::string>& PolicyNames() {
  static const std::vector<std::string> names = {"mutex", "ticket", "priority", "newgil", "none"};
  return names;
}

std::string_view PolicySummary(std::string_view name) {
  if (name == "mutex")
    return "plain mutex released and re-taken every check_interval instructions; the OS decides "
           "(CPython 2 old GIL)";
  if (name == "ticket")
    return "fair FIFO; a waiter asks the holder to yield after switch_interval_us";
  if (name == "priority")
    return "served by (lock priority, arrival); a higher waiter preempts at the next check point; "
           "equals round-robin";
  if (name == "newgil")
    return "CPython 3.2-3.12: drop request after switch_interval_us without a switch, forced "
           "switching";
  if (name == "none") return "no lock at all (free-threaded upper bound; no shared mutable state)";
  return "";
}

std::unique_ptr<Gil> MakeGil(std::string_view name, const GilOptions& options) {
  if (options.switch_interval_us <= 0)
    throw UsageError(fmt::format("switch interval must be positive, got {} us", options.switch_interval_us));
  if (options.check_interval <= 0)
    throw UsageError(fmt::format("check interval must be positive, got {}", options.check_interval));
  if (name == "mutex") return std::make_unique<MutexLock>(options);
  if (name == "ticket") return std::make_unique<TicketLock>(options);
  if (name == "priority") return std::make_unique<PriorityLock>(options);
  if (name == "newgil") return std::make_unique<NewGilLock>(options);
  if (name == "none") return std::make_unique<NoLock>(options);
  throw UsageError(fmt::format("unknown policy '{}' (choose from {})", name,
                               fmt::join(PolicyNames(), ", ")));
}

}  // namespace gillab::gil
