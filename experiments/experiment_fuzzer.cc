// experiment_fuzzer.cc — libFuzzer target for the experiment loader
// (experiment.h), built with GILLAB_FUZZ=ON (scripts/fuzz).
//
// The input is an experiment file. Its lines that start with "#s " (TOML
// comments, so the file still parses) are also applied as `-s` overrides, so
// the override parser is fuzzed with the file. Loading either throws
// UsageError or gives an experiment whose documented properties hold: a
// non-empty name, repetitions >= 1, every setting resolved in every point,
// and ToToml() loads back to the same points in the same order (checked on
// sweeps of up to kMaxCheckedPoints points). Any other
// exception, crash or leak is a bug.
//
//   build-fuzz/experiments/experiment_fuzzer experiments/fuzz_corpus/experiment
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "experiments/experiment.h"
#include "gil/error.h"

namespace gillab::experiments {
namespace {

constexpr size_t kMaxCheckedPoints = 1000;

void Check(bool ok, const std::string& what) {
  if (ok) return;
  std::fprintf(stderr, "experiment_fuzzer: check failed: %s\n", what.c_str());
  std::abort();
}

void CheckSamePoints(const std::vector<Point>& a, const std::vector<Point>& b) {
  Check(a.size() == b.size(), "the resolved TOML has another number of points");
  for (size_t i = 0; i < a.size(); ++i) {
    Check(a[i].settings == b[i].settings, "point " + std::to_string(i) + " resolves differently");
    Check(a[i].variant == b[i].variant, "point " + std::to_string(i) + " has another variant");
    Check(a[i].swept == b[i].swept, "point " + std::to_string(i) + " is swept differently");
  }
}

void Run(std::string_view text) {
  std::vector<std::string> overrides;
  for (size_t at = 0; at < text.size();) {
    size_t end = text.find('\n', at);
    if (end == std::string_view::npos) end = text.size();
    if (text.substr(at, 3) == "#s ") overrides.emplace_back(text.substr(at + 3, end - at - 3));
    at = end + 1;
  }
  Experiment e;
  try {
    e = ParseExperiment(text, "fuzz.toml", overrides);
  } catch (const UsageError&) {
    return;
  }
  Check(!e.name.empty(), "an empty name");
  Check(e.repetitions >= 1 && e.warmup >= 0 && e.warmup_runs >= 0, "a negative count");
  const std::vector<Point> points = e.Points();
  Check(!points.empty(), "no points");
  // The checks below expand the sweep several times over; on the largest
  // sweeps the loader accepts that takes seconds under ASan, and they say no
  // more about the loader than a smaller sweep does.
  if (points.size() > kMaxCheckedPoints) return;
  Check(e.RunCount() >= static_cast<int64_t>(points.size()), "fewer runs than points");
  for (const Point& p : points) {
    for (const SettingSpec& spec : SettingSpecs()) {
      Check(p.settings.count(std::string(spec.name)) == 1, "a point lacks " + std::string(spec.name));
    }
  }
  e.Describe();
  const std::string resolved = e.ToToml();
  Experiment again;
  try {
    again = ParseExperiment(resolved, "resolved.toml");
  } catch (const UsageError& error) {
    Check(false, std::string("the resolved TOML does not load: ") + error.what() + "\n" + resolved);
  }
  Check(again.name == e.name && again.description == e.description && again.repetitions == e.repetitions &&
            again.warmup == e.warmup && again.warmup_runs == e.warmup_runs,
        "the resolved TOML changes a top-level key\n" + resolved);
  CheckSamePoints(points, again.Points());
}

}  // namespace
}  // namespace gillab::experiments

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  gillab::experiments::Run(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
