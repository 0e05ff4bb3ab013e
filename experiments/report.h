// report.h — `gillab report DIR`: summary.md and plots/ from a results directory.
//
// Reads runs.csv, meta.json and experiment.toml (for the name and
// description), writes summary.md and, when asked, runs the plotting script
// (scripts/plot.py with Debian's /usr/bin/python3 and matplotlib, overridable
// with GILLAB_PLOT_SCRIPT / GILLAB_PYTHON). A missing python or matplotlib is
// a warning, not a failure: the tables are the result, the plots a view of it.
//
//   std::string md = WriteReport("results/runs/2024..._convoy_abc1234", /*plots=*/true);
#pragma once

#include <string>

namespace gillab::experiments {

// Returns the summary text (as written to DIR/summary.md). Throws UsageError
// when DIR holds no runs.csv.
std::string WriteReport(const std::string& dir, bool plots);

}  // namespace gillab::experiments
