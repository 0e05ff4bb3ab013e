// merge.cc — checks, de-duplication and the merged results directory.
#include "experiments/merge.h"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include <fmt/core.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "experiments/experiment.h"
#include "experiments/report.h"
#include "experiments/results.h"
#include "gil/error.h"

namespace gillab::experiments {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// One input directory, read and checked.
struct Source {
  std::string dir;
  std::string experiment_text;  // experiment.toml as stored
  std::vector<std::string> resolved_lines;  // the resolved experiment without comments
  json meta;
  std::vector<std::vector<std::string>> rows;  // runs.csv without its header
};

std::vector<std::string> ResolvedLines(const Experiment& e) {
  std::vector<std::string> lines;
  std::istringstream in(e.ToToml());
  for (std::string line; std::getline(in, line);)
    if (!line.empty() && line[0] != '#') lines.push_back(line);
  return lines;
}

std::string Host(const json& meta) { return meta.value("hostname", std::string("?")); }

Source ReadSource(const std::string& dir) {
  Source s;
  s.dir = dir;
  for (const char* file : {"experiment.toml", "runs.csv", "meta.json"})
    if (!fs::is_regular_file(fs::path(dir) / file))
      throw UsageError(fmt::format("merge: {} is not a results directory (no {})", dir, file));
  s.experiment_text = ReadFile(dir + "/experiment.toml");
  s.resolved_lines = ResolvedLines(LoadExperiment(dir + "/experiment.toml"));
  s.meta = json::parse(ReadFile(dir + "/meta.json"), nullptr, false);
  if (!s.meta.is_object()) throw UsageError(fmt::format("merge: {}/meta.json is not a JSON object", dir));
  auto csv = ParseCsv(ReadFile(dir + "/runs.csv"));
  if (csv.empty() || csv[0] != RunColumns())
    throw UsageError(fmt::format("merge: {}/runs.csv has different columns than this gillab writes", dir));
  for (size_t i = 1; i < csv.size(); ++i)
    if (csv[i].size() == RunColumns().size()) s.rows.push_back(std::move(csv[i]));
  return s;
}

// The first difference between two sources' experiments or git shas, or "".
std::string Mismatch(const Source& a, const Source& b) {
  const auto& la = a.resolved_lines;
  const auto& lb = b.resolved_lines;
  for (size_t i = 0; i < std::max(la.size(), lb.size()); ++i) {
    std::string x = i < la.size() ? la[i] : "(end of file)", y = i < lb.size() ? lb[i] : "(end of file)";
    if (x != y)
      return fmt::format("{} and {} hold different experiments: `{}` against `{}`", a.dir, b.dir, x, y);
  }
  std::string sha_a = a.meta.value("git_sha", std::string("?")), sha_b = b.meta.value("git_sha", std::string("?"));
  if (sha_a != sha_b)
    return fmt::format("{} and {} come from different gillab builds: git sha {} against {}", a.dir, b.dir, sha_a, sha_b);
  return "";
}

RunId RowRun(const std::vector<std::string>& row, const std::string& dir, int points, int repetitions) {
  RunId run;
  try {
    run = {std::stoi(row[0]), std::stoi(row[1])};
  } catch (const std::exception&) {
    throw UsageError(fmt::format("merge: {}/runs.csv has a row with point `{}` repetition `{}`", dir, row[0], row[1]));
  }
  if (run.point < 0 || run.point >= points || run.repetition < 0 || run.repetition >= repetitions)
    throw UsageError(fmt::format("merge: {}/runs.csv holds point {} rep {}, outside the experiment ({} points x {} "
                                 "repetitions)", dir, run.point, run.repetition, points, repetitions));
  return run;
}

// "p003_r1_load.json" -> {3, 1}; other names (warm-up files) -> nullopt.
std::optional<RunId> RawFileRun(const std::string& name) {
  int point = 0, rep = 0, length = 0;
  if (std::sscanf(name.c_str(), "p%d_r%d_%n", &point, &rep, &length) != 2 || length == 0) return std::nullopt;
  return RunId{point, rep};
}

std::string ShardText(const json& meta) {
  auto it = meta.find("shard");
  if (it == meta.end() || !it->is_object()) return "whole";
  return fmt::format("{}/{}", it->value("index", -1), it->value("count", -1));
}

}  // namespace

MergeResult MergeResults(const std::string& out_dir, const std::vector<std::string>& dirs, bool plots) {
  if (dirs.empty()) throw UsageError("merge: give at least one results directory to merge");
  if (fs::exists(out_dir) && !fs::is_empty(out_dir))
    throw UsageError(fmt::format("merge: output directory {} exists and is not empty", out_dir));

  // Check everything before writing anything.
  std::vector<Source> sources;
  for (const auto& dir : dirs) sources.push_back(ReadSource(dir));
  for (size_t i = 1; i < sources.size(); ++i)
    if (std::string why = Mismatch(sources[0], sources[i]); !why.empty()) throw UsageError("merge: " + why);
  if (sources[0].meta.value("git_dirty", false))
    fmt::print(stderr, "gillab merge: warning: {} was built from a dirty tree; the same git sha may not mean the same "
                       "code\n", sources[0].dir);

  const Experiment experiment = LoadExperiment(sources[0].dir + "/experiment.toml");
  const int points = static_cast<int>(experiment.Points().size());
  MergeResult result;
  result.runs_total = points * experiment.repetitions;
  std::map<RunId, std::pair<const std::vector<std::string>*, size_t>> kept;  // run -> (row, source index)
  std::vector<int> contributed(sources.size(), 0);
  for (size_t si = 0; si < sources.size(); ++si) {
    for (const auto& row : sources[si].rows) {
      RunId run = RowRun(row, sources[si].dir, points, experiment.repetitions);
      auto [it, inserted] = kept.insert({run, {&row, si}});
      if (inserted) {
        ++contributed[si];
        continue;
      }
      if (*it->second.first != row)
        throw UsageError(fmt::format("merge: point {} rep {} is in both {} and {} with different results; remove it "
                                     "from one of them", run.point, run.repetition, sources[it->second.second].dir,
                                     sources[si].dir));
      ++result.duplicates_dropped;
    }
  }

  fs::create_directories(fs::path(out_dir) / "raw");
  WriteFileAtomic(out_dir + "/experiment.toml", sources[0].experiment_text);

  // runs.csv in the runner's order: repetitions outer, points inner.
  std::vector<std::pair<RunId, const std::vector<std::string>*>> ordered;
  for (const auto& [run, where] : kept) ordered.push_back({run, where.first});
  std::sort(ordered.begin(), ordered.end(), [](const auto& a, const auto& b) {
    return std::pair(a.first.repetition, a.first.point) < std::pair(b.first.repetition, b.first.point);
  });
  std::string csv = CsvLine(RunColumns());
  for (const auto& [run, row] : ordered) csv += CsvLine(*row);
  WriteFileAtomic(out_dir + "/runs.csv", csv);
  result.runs_merged = static_cast<int>(ordered.size());

  // raw/: each kept run's files from the directory its row came from; other files (none
  // today but the warm-up's discarded load JSON, which is skipped) from the first that has them.
  for (size_t si = 0; si < sources.size(); ++si) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(fs::path(sources[si].dir) / "raw", ec)) {
      const std::string name = entry.path().filename().string();
      if (!entry.is_regular_file() || name.rfind("warmup_", 0) == 0) continue;
      if (auto run = RawFileRun(name)) {
        auto it = kept.find(*run);
        if (it == kept.end() || it->second.second != si) continue;
      }
      fs::path target = fs::path(out_dir) / "raw" / name;
      if (!fs::exists(target)) fs::copy_file(entry.path(), target);
    }
  }

  // failures.log: every directory's, tagged.
  std::string failures;
  for (const auto& s : sources) {
    if (!fs::exists(s.dir + "/failures.log")) continue;
    std::istringstream in(ReadFile(s.dir + "/failures.log"));
    for (std::string line; std::getline(in, line);)
      failures += fmt::format("[{} on {}] {}\n", s.dir, Host(s.meta), line);
  }
  if (!failures.empty()) WriteFileAtomic(out_dir + "/failures.log", failures);

  for (int rep = 0; rep < experiment.repetitions; ++rep)
    for (int p = 0; p < points; ++p)
      if (!kept.count({p, rep})) result.missing.push_back({p, rep});

  json meta = sources[0].meta;
  meta.erase("shard");
  json hosts = json::array(), shards = json::array(), sessions = json::array(), missing = json::array();
  std::set<std::string> seen_hosts;
  auto add_host = [&](const std::string& host) {
    if (seen_hosts.insert(host).second) hosts.push_back(host);
  };
  for (size_t si = 0; si < sources.size(); ++si) {
    const json& m = sources[si].meta;
    add_host(Host(m));
    if (auto it = m.find("sessions"); it != m.end() && it->is_array())
      for (const auto& session : *it) {
        if (session.is_object() && session.contains("host") && session["host"].is_string())
          add_host(session["host"].get<std::string>());
        json tagged = session;
        tagged["dir"] = sources[si].dir;
        sessions.push_back(tagged);
      }
    json entry = {{"dir", fs::absolute(sources[si].dir).lexically_normal().string()},
                  {"host", Host(m)},
                  {"shard", m.value("shard", json())},
                  {"shard_text", ShardText(m)},
                  {"git_sha", m.value("git_sha", json())},
                  {"cpu_model", m.value("cpu_model", json())},
                  {"cores", m.value("cores", json())},
                  {"kernel", m.value("kernel", json())},
                  {"started_utc", m.value("started_utc", json())},
                  {"runs_in_csv", sources[si].rows.size()},
                  {"runs_kept", contributed[si]}};
    shards.push_back(entry);
  }
  for (const RunId& r : result.missing) missing.push_back({r.point, r.repetition});
  meta["hosts"] = hosts;
  meta["shards"] = shards;
  meta["sessions"] = sessions;
  meta["merged_utc"] = [] {
    std::time_t now = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&now, &tm);
    char buffer[32];
    std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return std::string(buffer);
  }();
  meta["runs_total"] = result.runs_total;
  meta["runs_finished"] = result.runs_merged;
  meta["missing_runs"] = missing;
  WriteFileAtomic(out_dir + "/meta.json", meta.dump(2) + "\n");

  if (result.runs_merged > 0) result.summary = WriteReport(out_dir, plots);
  return result;
}

}  // namespace gillab::experiments
