// sysinfo.cc — /proc and uname readings, priority probes on a throwaway thread, versions.
#include "experiments/sysinfo.h"

#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <boost/version.hpp>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include <fmt/core.h>
#include <fmt/format.h>
#include <toml++/toml.h>
#include <zmq.h>

#include "experiments/child_process.h"
#include "gil/clock.h"

#ifndef GILLAB_SOURCE_DIR
#define GILLAB_SOURCE_DIR "."
#endif
#ifndef GILLAB_PYTHON_VERSION
#define GILLAB_PYTHON_VERSION "unknown"
#endif

namespace gillab::experiments {
namespace {

std::string FirstLine(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

std::string Trim(std::string s) {
  while (!s.empty() && isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t start = 0;
  while (start < s.size() && isspace(static_cast<unsigned char>(s[start]))) ++start;
  return s.substr(start);
}

pid_t Tid() { return static_cast<pid_t>(syscall(SYS_gettid)); }

PriorityProbe ProbeNice(int nice) {
  PriorityProbe probe{fmt::format("nice {}", nice), false, ""};
  std::thread([&] {
    errno = 0;
    int before = getpriority(PRIO_PROCESS, static_cast<id_t>(Tid()));
    if (setpriority(PRIO_PROCESS, static_cast<id_t>(Tid()), nice) == 0) {
      probe.allowed = true;
      setpriority(PRIO_PROCESS, static_cast<id_t>(Tid()), before);
    } else {
      probe.detail = fmt::format("{}: {}", errno == EPERM ? "EPERM" : errno == EACCES ? "EACCES" : "error", std::strerror(errno));
    }
  }).join();
  return probe;
}

PriorityProbe ProbePolicy(int policy, const char* name, int priority) {
  PriorityProbe probe{priority ? fmt::format("{} {}", name, priority) : name, false, ""};
  std::thread([&] {
    sched_param param{};
    param.sched_priority = priority;
    if (sched_setscheduler(Tid(), policy, &param) == 0) {
      probe.allowed = true;
      sched_param normal{};
      // Going back from SCHED_IDLE may itself need privilege; the thread ends either way.
      sched_setscheduler(Tid(), SCHED_OTHER, &normal);
    } else {
      probe.detail = fmt::format("{}: {}", errno == EPERM ? "EPERM" : "error", std::strerror(errno));
    }
  }).join();
  return probe;
}

// CPU ticks per process from /proc/PID/stat (utime + stime).
std::map<int, std::pair<std::string, unsigned long long>> ProcessTicks() {
  std::map<int, std::pair<std::string, unsigned long long>> ticks;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    std::string name = entry.path().filename().string();
    if (name.empty() || !isdigit(static_cast<unsigned char>(name[0]))) continue;
    std::string stat = FirstLine(entry.path().string() + "/stat");
    size_t open = stat.find('('), close = stat.rfind(')');
    if (open == std::string::npos || close == std::string::npos) continue;
    std::istringstream rest(stat.substr(close + 2));
    std::string field;
    unsigned long long utime = 0, stime = 0;
    for (int i = 3; i <= 15 && rest >> field; ++i) {
      if (i == 14) utime = std::strtoull(field.c_str(), nullptr, 10);
      if (i == 15) stime = std::strtoull(field.c_str(), nullptr, 10);
    }
    ticks[std::atoi(name.c_str())] = {stat.substr(open + 1, close - open - 1), utime + stime};
  }
  return ticks;
}

std::string RunText(const std::vector<std::string>& argv) { return Trim(CaptureOutput(argv, 3000)); }

}  // namespace

std::string SourceDir() {
  if (const char* env = std::getenv("GILLAB_SOURCE_DIR")) return env;
  return GILLAB_SOURCE_DIR;
}

std::string GitShortSha() {
  std::string sha = RunText({"/usr/bin/git", "-C", SourceDir(), "rev-parse", "--short=7", "HEAD"});
  return sha.empty() ? "nogit" : sha;
}

bool GitDirty() {
  return !RunText({"/usr/bin/git", "-C", SourceDir(), "status", "--porcelain", "--untracked-files=no"}).empty();
}

SystemInfo CollectSystemInfo(int sample_busy_ms) {
  SystemInfo info;
  info.cores = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) info.usable_cores = CPU_COUNT(&set);
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);) {
    if (line.rfind("model name", 0) == 0) {
      info.cpu_model = Trim(line.substr(line.find(':') + 1));
      break;
    }
  }
  utsname u{};
  if (uname(&u) == 0) {
    info.kernel = fmt::format("{} {} {} {}", u.sysname, u.release, u.version, u.machine);
    info.hostname = u.nodename;
  }
  std::istringstream load(FirstLine("/proc/loadavg"));
  std::string a, b, c;
  load >> a >> b >> c;
  info.load_average = fmt::format("{} {} {}", a, b, c);
  info.load_1min = std::atof(a.c_str());
  info.governor = Trim(FirstLine("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"));
  info.clock = std::string(gillab::gil::ClockSourceName(gillab::gil::ActiveClockSource()));
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0) info.nofile_soft = limit.rlim_cur, info.nofile_hard = limit.rlim_max;
  if (getrlimit(RLIMIT_RTPRIO, &limit) == 0) info.rtprio_limit = limit.rlim_cur;
  if (getrlimit(RLIMIT_NICE, &limit) == 0) info.nice_limit = limit.rlim_cur;

  info.probes.push_back(ProbeNice(10));
  info.probes.push_back(ProbeNice(-5));
  info.probes.push_back(ProbePolicy(SCHED_BATCH, "SCHED_BATCH", 0));
  info.probes.push_back(ProbePolicy(SCHED_IDLE, "SCHED_IDLE", 0));
  info.probes.push_back(ProbePolicy(SCHED_FIFO, "SCHED_FIFO", 1));
  info.probes.push_back(ProbePolicy(SCHED_RR, "SCHED_RR", 1));

  if (info.load_1min > 0.5)
    info.warnings.push_back(fmt::format("load average {} (above 0.5): timings will be noisy", info.load_average));
  if (!info.governor.empty() && info.governor != "performance")
    info.warnings.push_back(fmt::format("CPU frequency governor is '{}', not 'performance'", info.governor));
  if (sample_busy_ms > 0) {
    auto before = ProcessTicks();
    std::this_thread::sleep_for(std::chrono::milliseconds(sample_busy_ms));
    auto after = ProcessTicks();
    double ticks_per_s = static_cast<double>(sysconf(_SC_CLK_TCK));
    int self = getpid();
    for (const auto& [pid, entry] : after) {
      auto it = before.find(pid);
      if (pid == self || it == before.end()) continue;
      double share = static_cast<double>(entry.second - it->second.second) / ticks_per_s / (sample_busy_ms / 1000.0);
      if (share >= 0.10) info.busy_processes.push_back(fmt::format("{} {} {:.0f}%", pid, entry.first, 100 * share));
    }
    if (!info.busy_processes.empty())
      info.warnings.push_back(fmt::format("other busy processes: {}", fmt::join(info.busy_processes, ", ")));
  }
  return info;
}

std::string FormatSystemInfo(const SystemInfo& info) {
  std::string out;
  out += fmt::format("cores          {} online, {} usable by this process\n", info.cores, info.usable_cores);
  out += fmt::format("cpu            {}\n", info.cpu_model.empty() ? "?" : info.cpu_model);
  out += fmt::format("kernel         {}\n", info.kernel);
  out += fmt::format("load average   {}\n", info.load_average);
  out += fmt::format("governor       {}\n", info.governor.empty() ? "(not visible)" : info.governor);
  out += fmt::format("lock clock     {}\n", info.clock == "tsc" ? "tsc (RDTSC, anchored to CLOCK_MONOTONIC)"
                                                               : "kernel (clock_gettime CLOCK_MONOTONIC)");
  out += fmt::format("RLIMIT_NOFILE  soft {} hard {}\n", info.nofile_soft, info.nofile_hard);
  out += fmt::format("RLIMIT_RTPRIO  {}   RLIMIT_NICE {}\n", info.rtprio_limit, info.nice_limit);
  out += "OS priorities this user may set (probed on a throwaway thread):\n";
  for (const auto& p : info.probes)
    out += fmt::format("  {:<14} {}{}\n", p.what, p.allowed ? "yes" : "NO", p.detail.empty() ? "" : "  (" + p.detail + ")");
  if (info.warnings.empty()) out += "noise          none detected\n";
  for (const auto& w : info.warnings) out += "warning        " + w + "\n";
  return out;
}

nlohmann::json ToJson(const SystemInfo& info) {
  nlohmann::json probes = nlohmann::json::object();
  for (const auto& p : info.probes) probes[p.what] = p.allowed ? "allowed" : "refused: " + p.detail;
  return {{"cores", info.cores},
          {"usable_cores", info.usable_cores},
          {"cpu_model", info.cpu_model},
          {"kernel", info.kernel},
          {"hostname", info.hostname},
          {"load_average", info.load_average},
          {"governor", info.governor},
          {"clock", info.clock},
          {"rlimit_nofile", {info.nofile_soft, info.nofile_hard}},
          {"priority_probes", probes},
          {"busy_processes", info.busy_processes},
          {"warnings", info.warnings}};
}

nlohmann::json Versions() {
  int major = 0, minor = 0, patch = 0;
  zmq_version(&major, &minor, &patch);
  std::string python = RunText({"/usr/bin/python3", "-c",
                                "import sys, matplotlib; print(sys.version.split()[0], matplotlib.__version__)"});
  std::string matplotlib;
  if (auto space = python.find(' '); space != std::string::npos) matplotlib = python.substr(space + 1), python.resize(space);
  return {{"gillab", GitShortSha() + (GitDirty() ? "-dirty" : "")},
          {"libzmq", fmt::format("{}.{}.{}", major, minor, patch)},
          {"boost", fmt::format("{}.{}.{}", BOOST_VERSION / 100000, BOOST_VERSION / 100 % 1000, BOOST_VERSION % 100)},
          {"python_embedded", GILLAB_PYTHON_VERSION},
          {"python_plots", python},
          {"matplotlib", matplotlib},
          {"compiler", fmt::format("{}", __VERSION__)},
          {"fmt", FMT_VERSION},
          {"tomlplusplus", fmt::format("{}.{}.{}", TOML_LIB_MAJOR, TOML_LIB_MINOR, TOML_LIB_PATCH)},
          {"nlohmann_json", fmt::format("{}.{}.{}", NLOHMANN_JSON_VERSION_MAJOR, NLOHMANN_JSON_VERSION_MINOR,
                                         NLOHMANN_JSON_VERSION_PATCH)}};
}

}  // namespace gillab::experiments
