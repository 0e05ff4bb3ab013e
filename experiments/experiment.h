// experiment.h — an experiment file (design §6): fixed settings plus a sweep.
//
// An experiment is a TOML file:
//
//   name = "convoy"                      # defaults to the file's stem
//   description = "what it shows"
//   repetitions = 3                      # runs per point
//   warmup = 50                          # requests per run the client discards
//   warmup_runs = 1                      # whole runs of the first point, discarded
//   [settings]                           # any setting of servers/settings.h
//   server = "blocking"
//   think_us = 100
//   [sweep]                              # axes; their cartesian product is run
//   cpu_threads = [0, 1]
//   variant = [{ engine = "native" },    # a "variant" bundles several settings,
//              { label = "toy newgil", engine = "toy", policy = "newgil" }]
//
// The simulator's settings (design §13) may also stand at the top level, in
// the spelling: `mode = "simulate"` is [settings]' mode, `cores = [2,
// 4, 64]` a [sweep] axis; the resolved file has them there. `mode` may be
// swept (["real", "simulate"]) to run every point both ways. cores and seed
// where only real points would see them are refused (a real run ignores them).
//
// Resolution: defaults <- [settings] <- sweep axis value / variant bundle <-
// `-s key=value` overrides. An override of a swept key with one value removes
// the axis; with a TOML array it replaces the axis values; `-s variant=LABEL`
// (or an array of labels) keeps those variants. Axes vary in file order, the
// last fastest. Every value is validated when the file is loaded; errors are
// UsageErrors naming FILE:LINE and the key ("x.toml:12: unknown key
// 'cpu_thread' (did you mean 'cpu_threads'?)").
//
// Settings are kept as canonical text (ints in decimal, priorities as
// "io=1,cpu=0"), the form they take on a command line and in runs.csv.
//
//   Experiment e = LoadExperiment("experiments/convoy.toml", {"requests=200"});
//   for (const Point& p : e.Points()) RunPoint(p);
//   WriteFile(dir + "/experiment.toml", e.ToToml());
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "servers/settings.h"

namespace gillab::experiments {

// The settings schema (types, rules, defaults, flags) is servers/settings.h,
// shared with `gillab serve`/`load`; these names keep the experiment code's spelling.
using servers::FindSetting;
using servers::ParseCpuList;
using servers::Settings;  // name -> canonical text
using servers::SettingSpec;
using servers::SettingSpecs;
using servers::SettingTarget;
using servers::SettingType;

struct Variant {
  std::string label;
  std::vector<std::pair<std::string, std::string>> settings;  // in file order
};

struct Axis {
  std::string key;                  // a setting name, or "variant"
  std::vector<std::string> values;  // canonical text (for "variant": the labels)
  std::vector<Variant> variants;    // only for "variant"
};

// One point of the sweep: every setting resolved.
struct Point {
  int id = 0;  // position in Points(), stable for a given resolved experiment
  Settings settings;
  std::string variant;                                     // label, or empty
  std::vector<std::pair<std::string, std::string>> swept;  // axis -> value, in axis order
  std::string Describe() const;                            // "server=blocking variant=native"
};

struct Experiment {
  std::string path;  // the file it came from (for messages and the resolved copy)
  std::string name;
  std::string description;
  int repetitions = 3;
  int64_t warmup = 0;   // requests per run discarded by the client
  int warmup_runs = 1;  // runs of the first point before measuring, discarded
  Settings settings;    // fixed settings, every one resolved (defaults included)
  std::vector<Axis> axes;
  std::vector<std::string> overrides;  // the -s arguments applied, for the record

  std::vector<Point> Points() const;
  int64_t RunCount() const { return static_cast<int64_t>(Points().size()) * repetitions; }
  // The resolved experiment as TOML; loading it again gives the same points in the same order.
  std::string ToToml() const;
  // A human-readable account for --dry-run.
  std::string Describe() const;
};

// Both throw UsageError naming the file (or the -s argument), the line and the key.
Experiment LoadExperiment(const std::string& path, const std::vector<std::string>& overrides = {});
Experiment ParseExperiment(std::string_view text, const std::string& path,
                           const std::vector<std::string>& overrides = {});

// Typed access to canonical text (throws UsageError on malformed text).
int64_t SettingInt(const Settings& settings, const std::string& name);
double SettingDouble(const Settings& settings, const std::string& name);
bool SettingBool(const Settings& settings, const std::string& name);

// The closest name within a small edit distance, or "" (for "did you mean").
std::string NearestName(std::string_view name, const std::vector<std::string>& candidates);

}  // namespace gillab::experiments
