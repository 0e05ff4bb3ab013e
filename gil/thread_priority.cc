// thread_priority.cc — parsing the two priority knobs and applying the OS one.
//
// Applying is done per kernel thread id: setpriority(PRIO_PROCESS, tid, n) and
// sched_setscheduler(tid, ...) act on one thread on Linux. Every request is
// read back (getpriority, sched_getscheduler, sched_getparam), because a
// request can "succeed" and still not be what runs (e.g. a nice value is
// ignored under SCHED_FIFO). Refusals (EPERM for a non-root user lowering its
// nice value or asking for a real-time class, ESRCH for a gone thread) are
// reported with the errno name, never swallowed.
#include "gil/thread_priority.h"

#include <sched.h>
#include <sys/resource.h>

#include <cerrno>
#include <charconv>
#include <cstring>

#include <fmt/format.h>

#include "gil/error.h"

namespace gillab::gil {

namespace {

constexpr std::string_view kOsForms = "nice:N (-20..19), batch[:N], idle, fifo:P, rr:P (1..99) or default";

std::optional<int> ParseInt(std::string_view text) {
  int value = 0;
  if (!text.empty() && text.front() == '+') text.remove_prefix(1);
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

int NumberIn(std::string_view text, std::string_view number, int low, int high, std::string_view what) {
  std::optional<int> n = ParseInt(number);
  if (!n) throw UsageError(fmt::format("bad OS priority '{}': '{}' is not an integer", text, number));
  if (*n < low || *n > high)
    throw UsageError(fmt::format("bad OS priority '{}': {} {} out of range {}..{}", text, what, *n, low, high));
  return *n;
}

// Splits "k=v,k=v" and calls `each(role, value_text, item)` per item.
template <typename Each>
void ForEachRoleItem(std::string_view text, std::string_view what, std::string_view example, Each each) {
  std::map<Role, bool> seen;
  size_t start = 0;
  text = Trim(text);
  if (text.empty()) return;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string_view::npos) comma = text.size();
    const std::string_view item = Trim(text.substr(start, comma - start));
    const size_t eq = item.find('=');
    if (eq == std::string_view::npos)
      throw UsageError(fmt::format("bad {} '{}': expected ROLE=VALUE items like '{}'", what, item, example));
    const std::string_view role_name = Trim(item.substr(0, eq));
    const std::optional<Role> role = ParseRole(role_name);
    if (!role)
      throw UsageError(fmt::format("bad {} '{}': unknown role '{}' (choose from io, cpu, client, other)",
                                   what, item, role_name));
    if (seen[*role]) throw UsageError(fmt::format("bad {} '{}': role '{}' given twice", what, text, role_name));
    seen[*role] = true;
    each(*role, Trim(item.substr(eq + 1)), item);
    start = comma + 1;
  }
}

std::string Refusal(int err, std::string_view call) {
  const char* name = strerrorname_np(err);
  return fmt::format("{}: {} ({})", name ? name : "E?", std::strerror(err), call);
}

// "other nice:0", "batch nice:5", "idle", "fifo:5", "rr:5"; empty with *err set on failure.
std::string ReadBack(pid_t tid, int* policy_out, int* value_out, int* err) {
  const int policy = sched_getscheduler(tid);
  if (policy < 0) {
    *err = errno;
    return "";
  }
  *policy_out = policy;
  if (policy == SCHED_FIFO || policy == SCHED_RR) {
    sched_param param{};
    if (sched_getparam(tid, &param) != 0) {
      *err = errno;
      return "";
    }
    *value_out = param.sched_priority;
    return fmt::format("{}:{}", policy == SCHED_FIFO ? "fifo" : "rr", param.sched_priority);
  }
  errno = 0;
  const int nice = getpriority(PRIO_PROCESS, static_cast<id_t>(tid));
  if (nice == -1 && errno != 0) {
    *err = errno;
    return "";
  }
  *value_out = nice;
  if (policy == SCHED_IDLE) return fmt::format("idle nice:{}", nice);
  return fmt::format("{} nice:{}", policy == SCHED_BATCH ? "batch" : "other", nice);
}

}  // namespace

std::string OsPriority::ToString() const {
  switch (kind) {
    case Kind::kDefault: return "default";
    case Kind::kNice: return fmt::format("nice:{}", value);
    case Kind::kBatch: return value == 0 ? "batch" : fmt::format("batch:{}", value);
    case Kind::kIdle: return "idle";
    case Kind::kFifo: return fmt::format("fifo:{}", value);
    case Kind::kRr: return fmt::format("rr:{}", value);
  }
  return "default";
}

OsPriority ParseOsPriority(std::string_view text) {
  text = Trim(text);
  const size_t colon = text.find(':');
  const std::string_view kind = text.substr(0, colon);
  const bool has_number = colon != std::string_view::npos;
  const std::string_view number = has_number ? text.substr(colon + 1) : std::string_view{};
  OsPriority p;
  if (kind == "default" && !has_number) return p;
  if (kind == "idle" && !has_number) {
    p.kind = OsPriority::Kind::kIdle;
    return p;
  }
  if (kind == "batch") {
    p.kind = OsPriority::Kind::kBatch;
    if (has_number) p.value = NumberIn(text, number, -20, 19, "nice value");
    return p;
  }
  if (kind == "nice" && has_number) {
    p.kind = OsPriority::Kind::kNice;
    p.value = NumberIn(text, number, -20, 19, "nice value");
    return p;
  }
  if ((kind == "fifo" || kind == "rr") && has_number) {
    p.kind = kind == "fifo" ? OsPriority::Kind::kFifo : OsPriority::Kind::kRr;
    p.value = NumberIn(text, number, 1, 99, "real-time priority");
    return p;
  }
  throw UsageError(fmt::format("bad OS priority '{}' (expected {})", text, kOsForms));
}

std::map<Role, int> ParseLockPriorities(std::string_view text) {
  std::map<Role, int> result;
  ForEachRoleItem(text, "lock priority", "io=1,cpu=0", [&](Role role, std::string_view value, std::string_view item) {
    const std::optional<int> n = ParseInt(value);
    if (!n)
      throw UsageError(fmt::format("bad lock priority '{}': '{}' is not an integer (expected e.g. io=1,cpu=0)",
                                   item, value));
    result[role] = *n;
  });
  return result;
}

std::map<Role, OsPriority> ParseOsPriorities(std::string_view text) {
  std::map<Role, OsPriority> result;
  ForEachRoleItem(text, "OS priority", "cpu=nice:10,io=fifo:5",
                  [&](Role role, std::string_view value, std::string_view) {
                    result[role] = ParseOsPriority(value);
                  });
  return result;
}

OsPriorityResult ApplyOsPriority(pid_t tid, const OsPriority& priority) {
  OsPriorityResult r;
  r.requested = priority.ToString();
  using Kind = OsPriority::Kind;

  int err = 0;
  std::string failed_call;
  auto set_class = [&](int policy, int rt_priority, std::string_view name) {
    sched_param param{};
    param.sched_priority = rt_priority;
    if (sched_setscheduler(tid, policy, &param) != 0) {
      err = errno;
      failed_call = fmt::format("sched_setscheduler({}, {}, {})", tid, name, rt_priority);
      return false;
    }
    return true;
  };
  auto set_nice = [&](int nice) {
    if (setpriority(PRIO_PROCESS, static_cast<id_t>(tid), nice) != 0) {
      err = errno;
      failed_call = fmt::format("setpriority({}, {})", tid, nice);
      return false;
    }
    return true;
  };

  int want_policy = SCHED_OTHER;
  int want_value = 0;
  bool ok = true;
  switch (priority.kind) {
    case Kind::kDefault: break;  // leave the thread as it is; only read back
    case Kind::kNice:
      want_value = priority.value;
      // From a real-time or batch class, come back to the normal one first.
      ok = set_class(SCHED_OTHER, 0, "SCHED_OTHER") && set_nice(priority.value);
      break;
    case Kind::kBatch:
      want_policy = SCHED_BATCH;
      want_value = priority.value;
      ok = set_class(SCHED_BATCH, 0, "SCHED_BATCH") && set_nice(priority.value);
      break;
    case Kind::kIdle:
      want_policy = SCHED_IDLE;
      ok = set_class(SCHED_IDLE, 0, "SCHED_IDLE");
      break;
    case Kind::kFifo:
    case Kind::kRr:
      want_policy = priority.kind == Kind::kFifo ? SCHED_FIFO : SCHED_RR;
      want_value = priority.value;
      ok = set_class(want_policy, priority.value, priority.kind == Kind::kFifo ? "SCHED_FIFO" : "SCHED_RR");
      break;
  }

  int got_policy = -1;
  int got_value = 0;
  int read_err = 0;
  r.readback = ReadBack(tid, &got_policy, &got_value, &read_err);
  if (!ok) {
    r.refused = Refusal(err, failed_call);
    return r;
  }
  if (r.readback.empty()) {
    r.refused = Refusal(read_err, fmt::format("reading back thread {}", tid));
    return r;
  }
  if (priority.kind == Kind::kDefault) {
    r.applied = true;
  } else if (priority.kind == Kind::kIdle) {
    r.applied = got_policy == SCHED_IDLE;
  } else {
    r.applied = got_policy == want_policy && got_value == want_value;
  }
  if (!r.applied) r.refused = fmt::format("read back '{}' after asking for '{}'", r.readback, r.requested);
  return r;
}

}  // namespace gillab::gil
