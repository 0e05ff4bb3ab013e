// thread_priority.h — the two priority knobs of design §2, parsed from the
// command line and applied per thread.
//
// Lock priority is an int read by the `priority` policy. OS priority is a
// scheduling request applied to a kernel thread id with setpriority /
// sched_setscheduler and read back; a request the kernel refuses (EPERM) is
// reported as refused, never silently ignored.
//
//   auto lock = ParseLockPriorities("io=1,cpu=0");          // map<Role,int>
//   auto os = ParseOsPriorities("cpu=nice:10");             // map<Role,OsPriority>
//   OsPriorityResult r = ApplyOsPriority(CurrentTid(), os[Role::kCpu]);
#pragma once

#include <sys/types.h>

#include <map>
#include <string>
#include <string_view>

#include "gil/gil.h"

namespace gillab::gil {

struct OsPriority {
  enum class Kind { kDefault, kNice, kBatch, kIdle, kFifo, kRr };
  Kind kind = Kind::kDefault;
  int value = 0;  // nice value for kNice and kBatch, rt priority for kFifo/kRr
  std::string ToString() const;  // "nice:10", "batch", "idle", "fifo:5", "rr:5", "default"
};

struct OsPriorityResult {
  std::string requested;  // as OsPriority::ToString()
  bool applied = false;   // the kernel accepted it and the read-back matches
  std::string refused;    // empty, or why the kernel refused ("EPERM: ...")
  std::string readback;   // the policy and nice/rt priority read back afterwards
};

// Throw UsageError with a one-line message on bad input.
OsPriority ParseOsPriority(std::string_view text);
std::map<Role, int> ParseLockPriorities(std::string_view text);          // "io=1,cpu=0"
std::map<Role, OsPriority> ParseOsPriorities(std::string_view text);     // "cpu=nice:10,io=fifo:5"

OsPriorityResult ApplyOsPriority(pid_t tid, const OsPriority& priority);

}  // namespace gillab::gil
