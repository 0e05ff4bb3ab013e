// sysinfo.h — what the machine is and what this user may do to thread priorities.
//
// Used by `gillab sysinfo` (say up front which OS priorities will be refused)
// and by `gillab run` for meta.json. The priority probes run on a throwaway
// thread and restore what they changed, so the caller's own scheduling is
// never touched. Noise warnings: load average above 0.5, a CPU frequency
// governor other than "performance", other processes using a CPU.
//
//   SystemInfo info = CollectSystemInfo(/*sample_busy_ms=*/200);
//   fmt::print("{}", FormatSystemInfo(info));
//   meta["machine"] = ToJson(info);
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace gillab::experiments {

struct PriorityProbe {
  std::string what;     // "nice -5", "SCHED_FIFO 1", ...
  bool allowed = false;
  std::string detail;   // errno text when refused
};

struct SystemInfo {
  int cores = 0;          // online CPUs
  int usable_cores = 0;   // in this process's affinity mask
  std::string cpu_model;
  std::string kernel;     // uname -srvm
  std::string hostname;
  std::string load_average;  // "/proc/loadavg" first three fields
  double load_1min = 0;
  std::string governor;      // "" when not visible (VMs often hide it)
  std::string clock;         // what the lock's timestamps read: "tsc" or "kernel" (gil/clock.h)
  unsigned long long nofile_soft = 0, nofile_hard = 0;
  unsigned long long rtprio_limit = 0, nice_limit = 0;
  std::vector<PriorityProbe> probes;
  std::vector<std::string> busy_processes;  // "pid name 37%"
  std::vector<std::string> warnings;
};

// sample_busy_ms > 0 samples /proc for that long to find other busy processes.
SystemInfo CollectSystemInfo(int sample_busy_ms);
std::string FormatSystemInfo(const SystemInfo& info);
nlohmann::json ToJson(const SystemInfo& info);

// Versions of gillab (git sha, dirty flag) and of what it was built with.
nlohmann::json Versions();
// The source tree's short git sha and whether it has uncommitted changes.
std::string GitShortSha();
bool GitDirty();
// The repository root this binary was built from (GILLAB_SOURCE_DIR).
std::string SourceDir();

}  // namespace gillab::experiments
