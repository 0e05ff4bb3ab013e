// report.cc — summary.md and the plotting script for one results directory.
#include "experiments/report.h"

#include <cstdlib>
#include <filesystem>

#include <fmt/core.h>
#include <nlohmann/json.hpp>
#include <toml++/toml.h>

#include "experiments/child_process.h"
#include "experiments/results.h"
#include "experiments/summary.h"
#include "experiments/sysinfo.h"
#include "gil/error.h"

namespace gillab::experiments {

namespace fs = std::filesystem;

std::string WriteReport(const std::string& dir, bool plots) {
  std::string csv_path = dir + "/runs.csv";
  if (!fs::exists(csv_path)) throw UsageError(fmt::format("{} is not a results directory (no runs.csv)", dir));
  std::vector<Row> rows = ReadRunsCsv(csv_path);
  nlohmann::json meta = nlohmann::json::object();
  if (fs::exists(dir + "/meta.json")) {
    meta = nlohmann::json::parse(ReadFile(dir + "/meta.json"), nullptr, false);
    if (meta.is_discarded()) meta = nlohmann::json::object();
  }
  std::string name = fs::path(dir).filename().string(), description;
  try {
    toml::table experiment = toml::parse_file(dir + "/experiment.toml");
    name = experiment["name"].value_or(name);
    description = experiment["description"].value_or(std::string());
  } catch (const std::exception&) {
    // A directory without its experiment still gets a summary.
  }
  std::string summary = RenderSummary(rows, meta, name, description);
  WriteFileAtomic(dir + "/summary.md", summary);

  if (plots && !rows.empty()) {
    const char* script_env = std::getenv("GILLAB_PLOT_SCRIPT");
    const char* python_env = std::getenv("GILLAB_PYTHON");
    std::string script = script_env ? script_env : SourceDir() + "/scripts/plot.py";
    std::string python = python_env ? python_env : "/usr/bin/python3";
    try {
      ChildProcess plot({.argv = {python, script, dir}, .cpus = {}});
      bool done = WaitFor({&plot}, gil::KernelNowNs() + 120'000'000'000LL, [&] { return plot.exited(); });
      Pump({&plot}, 0);
      if (!done || plot.exit_code() != 0)
        fmt::print(stderr, "gillab report: warning: plots not made ({} {} {}: {}): {}\n", python, script, dir,
                   done ? plot.ExitDescription() : "timed out", plot.ErrTail(400));
      else if (!plot.out().empty())
        fmt::print(stderr, "{}", plot.out());
    } catch (const std::exception& e) {
      fmt::print(stderr, "gillab report: warning: plots not made: {}\n", e.what());
    }
  }
  return summary;
}

}  // namespace gillab::experiments
