// summary.h — statistics over repetitions and the summary.md of a results directory.
//
// Everything here is computed from runs.csv alone (plus meta.json for the
// machine), so `gillab report DIR` regenerates exactly what `gillab run` wrote.
// Per point: median and min–max of req/s and p50/p99 latency, coefficient of
// variation of req/s (warning above 5%), and the slowdown against the matching
// unloaded point: the point with the same settings except cpu_threads = 0,
// slowdown = median req/s unloaded ÷ median req/s loaded. When the engine is
// swept and one of them is cpython, a calibration table gives, per loaded
// point, the model's slowdown ÷ cpython's slowdown at the same settings.
//
// When an experiment runs points both real and simulated (mode swept), a
// validation table gives per simulated point the median req/s, p50 and p99
// latency and io-thread lock wait p50, real and simulated, their ratio and
// whether it is within ±20%.
//
// The main table reads like Beazley's: one row per server (or per the other
// swept settings), one column group per variant (engine/policy), with req/s and
// p50 at each CPU-thread count and the slowdown.
//
//   Spread s = Summarize({310, 300, 305});   // s.median == 305
//   std::string md = RenderSummary(ReadRunsCsv(dir + "/runs.csv"), meta, "convoy", "...");
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "experiments/results.h"

namespace gillab::experiments {

constexpr double kCvWarningThreshold = 0.05;

struct Spread {
  int n = 0;
  double median = 0;
  double min = 0;
  double max = 0;
  std::optional<double> cv;  // sample standard deviation / mean; needs n >= 2 and a non-zero mean
};
Spread Summarize(std::vector<double> values);

// The runs of one point, grouped.
struct PointRuns {
  int point = 0;
  Row settings;            // the point's resolved settings (and variant) from its first row
  std::vector<Row> runs;
  std::optional<Spread> Of(const std::string& column) const;  // nullopt if no run has the value
};
std::vector<PointRuns> GroupByPoint(const std::vector<Row>& rows);

// The point with the same settings except cpu_threads == 0 (itself excluded), or nullptr.
const PointRuns* MatchingUnloaded(const std::vector<PointRuns>& points, const PointRuns& point);
// median req/s of the unloaded match ÷ this point's median req/s.
std::optional<double> Slowdown(const std::vector<PointRuns>& points, const PointRuns& point);

// Calibration (issue 5): a model engine is faithful when its slowdown is within
// ±kCalibrationTolerance of the cpython engine's at the same settings.
constexpr double kCalibrationTolerance = 0.30;
// The point with the same settings except engine == "cpython" (itself excluded), or nullptr.
const PointRuns* MatchingCpython(const std::vector<PointRuns>& points, const PointRuns& point);

// Validation of the simulator (design §13): a simulated point agrees with the
// machine when each figure's median is within ±kValidationTolerance of the real
// point's. The real twin of a simulated point has the same settings except
// mode, cores and seed (which a real run ignores; its `cores` is the machine's).
constexpr double kValidationTolerance = 0.20;
const PointRuns* MatchingReal(const std::vector<PointRuns>& points, const PointRuns& simulated);

// Setting columns (and "variant") whose value differs between rows, in column order.
std::vector<std::string> VaryingSettings(const std::vector<Row>& rows);

std::string RenderSummary(const std::vector<Row>& rows, const nlohmann::json& meta, const std::string& name,
                          const std::string& description);

// "9120", "1.23e+05"; "105 µs", "5.02 ms"; "33.1x".
std::string FormatRate(double per_s);
std::string FormatUs(double us);
std::string FormatRatio(double ratio);

}  // namespace gillab::experiments
