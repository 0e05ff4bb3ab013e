// summary.cc — medians, spreads, slowdowns and the markdown tables of summary.md.
#include "experiments/summary.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <set>

#include <fmt/core.h>
#include <fmt/format.h>

namespace gillab::experiments {
namespace {

std::optional<double> ParseCell(const Row& row, const std::string& column) {
  auto it = row.find(column);
  if (it == row.end() || it->second.empty()) return std::nullopt;
  try {
    size_t used = 0;
    double value = std::stod(it->second, &used);
    if (used != it->second.size() || !std::isfinite(value)) return std::nullopt;
    return value;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::vector<std::string> SettingColumns() {
  std::vector<std::string> columns = {"variant"};
  for (const auto& spec : SettingSpecs()) columns.emplace_back(spec.name);
  return columns;
}

std::string Get(const Row& row, const std::string& key) {
  auto it = row.find(key);
  return it == row.end() ? "" : it->second;
}

std::string MarkdownRow(const std::vector<std::string>& cells) {
  std::string line = "|";
  for (const auto& c : cells) {
    std::string cell = c;
    // A pipe inside a cell would split it.
    for (size_t p = cell.find('|'); p != std::string::npos; p = cell.find('|', p + 2)) cell.replace(p, 1, "\\|");
    line += " " + cell + " |";
  }
  return line + "\n";
}

std::string MarkdownTable(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows) {
  std::string out = MarkdownRow(header);
  out += "|";
  for (size_t i = 0; i < header.size(); ++i) out += i == 0 ? " --- |" : " ---: |";
  out += "\n";
  for (const auto& r : rows) out += MarkdownRow(r);
  return out;
}

std::string Describe(const Row& settings, const std::vector<std::string>& keys) {
  std::string out;
  for (const auto& k : keys) {
    if (!out.empty()) out += " ";
    out += k == "variant" ? Get(settings, k) : k + "=" + Get(settings, k);
  }
  return out.empty() ? "(all)" : out;
}

// The main table's row label: the row settings' values ("blocking"), or the server when nothing else varies.
std::string RowLabel(const Row& settings, const std::vector<std::string>& keys) {
  if (keys.empty()) return Get(settings, "server");
  if (keys.size() == 1) return Get(settings, keys[0]);
  return Describe(settings, keys);
}

std::string MedianRange(const std::optional<Spread>& s, std::string (*format)(double)) {
  if (!s) return "NA";
  if (s->n == 1) return format(s->median);
  return fmt::format("{} ({}–{})", format(s->median), format(s->min), format(s->max));
}

std::string Percent(double fraction) { return fmt::format("{:.1f}%", 100 * fraction); }

}  // namespace

Spread Summarize(std::vector<double> values) {
  Spread s;
  s.n = static_cast<int>(values.size());
  if (values.empty()) return s;
  std::sort(values.begin(), values.end());
  size_t n = values.size();
  s.median = n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
  s.min = values.front();
  s.max = values.back();
  double mean = std::accumulate(values.begin(), values.end(), 0.0) / static_cast<double>(n);
  if (n >= 2 && mean != 0) {
    double squares = 0;
    for (double v : values) squares += (v - mean) * (v - mean);
    s.cv = std::sqrt(squares / static_cast<double>(n - 1)) / std::fabs(mean);
  }
  return s;
}

std::optional<Spread> PointRuns::Of(const std::string& column) const {
  std::vector<double> values;
  for (const auto& r : runs)
    if (auto v = ParseCell(r, column)) values.push_back(*v);
  if (values.empty()) return std::nullopt;
  return Summarize(values);
}

std::vector<PointRuns> GroupByPoint(const std::vector<Row>& rows) {
  std::map<int, PointRuns> by_point;
  for (const auto& row : rows) {
    int point = 0;
    try {
      point = std::stoi(Get(row, "point"));
    } catch (const std::exception&) {
      continue;
    }
    PointRuns& p = by_point[point];
    if (p.runs.empty()) {
      p.point = point;
      for (const auto& c : SettingColumns()) p.settings[c] = Get(row, c);
    }
    p.runs.push_back(row);
  }
  std::vector<PointRuns> out;
  for (auto& [id, p] : by_point) out.push_back(std::move(p));
  return out;
}

namespace {
// The point whose `column` is `value` and whose other settings equal point's (itself excluded).
const PointRuns* MatchingExcept(const std::vector<PointRuns>& points, const PointRuns& point, const std::string& column,
                                const std::string& value) {
  for (const auto& candidate : points) {
    if (candidate.point == point.point || Get(candidate.settings, column) != value) continue;
    bool same = true;
    for (const auto& c : SettingColumns())
      if (c != column && Get(candidate.settings, c) != Get(point.settings, c)) same = false;
    if (same) return &candidate;
  }
  return nullptr;
}
}  // namespace

const PointRuns* MatchingReal(const std::vector<PointRuns>& points, const PointRuns& simulated) {
  static const std::set<std::string> kIgnored = {"mode", "cores", "seed"};
  if (Get(simulated.settings, "mode") != "simulate") return nullptr;
  for (const auto& candidate : points) {
    if (Get(candidate.settings, "mode") != "real") continue;
    bool same = true;
    for (const auto& c : SettingColumns())
      if (!kIgnored.count(c) && Get(candidate.settings, c) != Get(simulated.settings, c)) same = false;
    if (same) return &candidate;
  }
  return nullptr;
}

const PointRuns* MatchingUnloaded(const std::vector<PointRuns>& points, const PointRuns& point) {
  return MatchingExcept(points, point, "cpu_threads", "0");
}

const PointRuns* MatchingCpython(const std::vector<PointRuns>& points, const PointRuns& point) {
  return MatchingExcept(points, point, "engine", "cpython");
}

std::optional<double> Slowdown(const std::vector<PointRuns>& points, const PointRuns& point) {
  if (Get(point.settings, "cpu_threads") == "0") return std::nullopt;
  const PointRuns* base = MatchingUnloaded(points, point);
  if (!base) return std::nullopt;
  auto loaded = point.Of("req_per_s");
  auto unloaded = base->Of("req_per_s");
  if (!loaded || !unloaded || loaded->median <= 0) return std::nullopt;
  return unloaded->median / loaded->median;
}

std::vector<std::string> VaryingSettings(const std::vector<Row>& rows) {
  std::vector<std::string> varying;
  for (const auto& c : SettingColumns()) {
    std::set<std::string> values;
    for (const auto& r : rows) values.insert(Get(r, c));
    if (values.size() > 1) varying.push_back(c);
  }
  return varying;
}

std::string FormatRate(double per_s) {
  if (per_s >= 1e6) return fmt::format("{:.3g}", per_s);
  if (per_s >= 100) return fmt::format("{:.0f}", per_s);
  return fmt::format("{:.3g}", per_s);
}

std::string FormatUs(double us) {
  if (us >= 1e6) return fmt::format("{:.2f} s", us / 1e6);
  if (us >= 1000) return fmt::format("{:.2f} ms", us / 1000);
  if (us >= 10) return fmt::format("{:.0f} µs", us);
  return fmt::format("{:.1f} µs", us);
}

std::string FormatRatio(double ratio) {
  if (ratio >= 10) return fmt::format("{:.0f}x", ratio);
  return fmt::format("{:.2f}x", ratio);
}

std::string RenderSummary(const std::vector<Row>& rows, const nlohmann::json& meta, const std::string& name,
                          const std::string& description) {
  std::string out = fmt::format("# {} — summary\n\n", name);
  if (!description.empty()) out += description + "\n\n";
  auto meta_text = [&](const char* key) -> std::string {
    auto it = meta.find(key);
    if (it == meta.end()) return "?";
    return it->is_string() ? it->get<std::string>() : it->dump();
  };
  if (meta.is_object() && !meta.empty()) {
    out += fmt::format("Machine: {} ({} cores), kernel {}. gillab {}{}. Started {}.\n", meta_text("cpu_model"),
                       meta_text("cores"), meta_text("kernel"), meta_text("git_sha"),
                       meta.value("git_dirty", false) ? " (dirty tree)" : "", meta_text("started_utc"));
    if (auto pin = meta.find("pinning"); pin != meta.end() && pin->is_object())
      out += fmt::format("Pinning: server {}, client {}.\n", pin->value("server_cpus", "?"), pin->value("client_cpus", "?"));
    out += "\n";
  }
  auto points = GroupByPoint(rows);
  if (points.empty()) return out + "No finished runs yet.\n";
  std::vector<std::string> varying = VaryingSettings(rows);
  bool by_variant = std::find(varying.begin(), varying.end(), "variant") != varying.end();
  // Settings that only change with the variant are its content: its label stands for them.
  auto determined_by_variant = [&](const std::string& key) {
    if (!by_variant || key == "variant") return false;
    std::map<std::string, std::set<std::string>> per_variant;
    for (const auto& r : rows) per_variant[Get(r, "variant")].insert(Get(r, key));
    return std::all_of(per_variant.begin(), per_variant.end(), [](auto& e) { return e.second.size() == 1; });
  };
  std::vector<std::string> shown;  // the varying settings a table needs to tell points apart
  for (const auto& key : varying)
    if (!determined_by_variant(key)) shown.push_back(key);
  // Fixed settings, for the reader (defaults omitted).
  std::vector<std::string> fixed;
  for (const auto& spec : SettingSpecs()) {
    std::string key(spec.name);
    if (std::find(varying.begin(), varying.end(), key) != varying.end()) continue;
    // Variants bundle these: a "fixed" policy beside a native variant would mislead.
    if (by_variant && (key == "engine" || key == "policy" || key == "lock_priority" || key == "os_priority")) continue;
    std::string value = Get(points[0].settings, key);
    if (value != spec.default_value || key == "server" || key == "engine" || key == "requests")
      fixed.push_back(fmt::format("{}={}", key, value.empty() ? "\"\"" : value));
  }
  size_t run_count = rows.size();
  out += fmt::format("{} runs over {} points. Fixed: {}.\n\n", run_count, points.size(),
                     fixed.empty() ? "(defaults)" : fmt::format("{}", fmt::join(fixed, " ")));

  // ---- The main table (Beazley's layout) ----
  bool has_unloaded = std::any_of(points.begin(), points.end(), [](const PointRuns& p) { return Get(p.settings, "cpu_threads") == "0"; });
  bool cpu_varies = std::find(varying.begin(), varying.end(), "cpu_threads") != varying.end();
  if (cpu_varies && has_unloaded) {
    std::vector<std::string> row_keys;
    for (const auto& key : shown)
      if (key != "variant" && key != "cpu_threads") row_keys.push_back(key);
    // Variants are column groups beside other rows (Beazley: servers x variants); alone they are the rows.
    bool by_variant_columns = by_variant && !row_keys.empty();
    if (by_variant && !by_variant_columns) row_keys = {"variant"};
    std::vector<std::string> columns, cpu_values, row_labels;
    std::map<std::string, Row> row_settings;
    for (const auto& p : points) {
      std::string column = by_variant_columns ? Get(p.settings, "variant") : "";
      if (std::find(columns.begin(), columns.end(), column) == columns.end()) columns.push_back(column);
      std::string cpu = Get(p.settings, "cpu_threads");
      if (std::find(cpu_values.begin(), cpu_values.end(), cpu) == cpu_values.end()) cpu_values.push_back(cpu);
      std::string label = RowLabel(p.settings, row_keys);
      if (!row_settings.count(label)) row_labels.push_back(label), row_settings[label] = p.settings;
    }
    std::sort(cpu_values.begin(), cpu_values.end(), [](auto& a, auto& b) { return std::stoll(a) < std::stoll(b); });
    std::vector<std::string> header = {row_keys.empty() ? "server" : fmt::format("{}", fmt::join(row_keys, " "))};
    for (const auto& column : columns) {
      std::string prefix = column.empty() ? "" : column + ": ";
      for (const auto& cpu : cpu_values) header.push_back(fmt::format("{}{} CPU", prefix, cpu));
      for (const auto& cpu : cpu_values)
        if (cpu != "0") header.push_back(fmt::format("{}slowdown{}", prefix, cpu_values.size() > 2 ? " " + cpu : ""));
    }
    std::vector<std::vector<std::string>> table;
    for (const auto& label : row_labels) {
      std::vector<std::string> cells = {label};
      for (const auto& column : columns) {
        auto find = [&](const std::string& cpu) -> const PointRuns* {
          for (const auto& p : points)
            if ((!by_variant_columns || Get(p.settings, "variant") == column) && Get(p.settings, "cpu_threads") == cpu &&
                RowLabel(p.settings, row_keys) == label)
              return &p;
          return nullptr;
        };
        for (const auto& cpu : cpu_values) {
          const PointRuns* p = find(cpu);
          auto rate = p ? p->Of("req_per_s") : std::nullopt;
          auto p50 = p ? p->Of("latency_p50_us") : std::nullopt;
          cells.push_back(!p ? "—" : fmt::format("{}/s · p50 {}", rate ? FormatRate(rate->median) : "NA",
                                                  p50 ? FormatUs(p50->median) : "NA"));
        }
        for (const auto& cpu : cpu_values) {
          if (cpu == "0") continue;
          const PointRuns* p = find(cpu);
          auto s = p ? Slowdown(points, *p) : std::nullopt;
          cells.push_back(s ? "**" + FormatRatio(*s) + "**" : "NA");
        }
      }
      table.push_back(cells);
    }
    out += "## Slowdown from CPU threads (median req/s and p50 latency; slowdown = req/s at 0 CPU threads ÷ req/s with them)\n\n";
    out += MarkdownTable(header, table) + "\n";
  }

  // ---- The model against real CPython (calibration) ----
  std::vector<std::string> warnings;
  std::vector<std::vector<std::string>> calibration;
  std::vector<std::string> calibration_keys;  // what tells the loaded points of one engine apart
  for (const auto& key : shown)
    if (key != "engine") calibration_keys.push_back(key);
  for (const auto& p : points) {
    if (Get(p.settings, "engine") == "cpython" || Get(p.settings, "cpu_threads") == "0") continue;
    const PointRuns* twin = MatchingCpython(points, p);
    if (!twin) continue;
    auto model = Slowdown(points, p);
    auto real = Slowdown(points, *twin);
    std::vector<std::string> cells = {Get(p.settings, "engine")};
    for (const auto& k : calibration_keys) cells.push_back(Get(p.settings, k));
    cells.push_back(model ? FormatRatio(*model) : "NA");
    cells.push_back(real ? FormatRatio(*real) : "NA");
    if (model && real && *real > 0) {
      double ratio = *model / *real;
      bool within = std::abs(ratio - 1) <= kCalibrationTolerance;
      cells.push_back(fmt::format("**{:.2f}**", ratio));
      cells.push_back(within ? "within" : "⚠ outside");
      if (!within)
        warnings.push_back(fmt::format("point {} ({}): {} slowdown is {:.2f}x cpython's, outside ±{:.0f}%", p.point,
                                       Describe(p.settings, shown), Get(p.settings, "engine"), ratio,
                                       100 * kCalibrationTolerance));
    } else {
      cells.insert(cells.end(), {"NA", "NA"});
    }
    calibration.push_back(cells);
  }
  if (!calibration.empty()) {
    std::vector<std::string> calibration_header = {"engine"};
    for (const auto& k : calibration_keys) calibration_header.push_back(k);
    calibration_header.insert(calibration_header.end(), {"slowdown", "cpython slowdown", "ratio",
                                                         fmt::format("±{:.0f}%", 100 * kCalibrationTolerance)});
    out += "## The model against CPython (ratio = the engine's slowdown ÷ cpython's slowdown at the same settings)\n\n";
    out += MarkdownTable(calibration_header, calibration) + "\n";
  }

  // ---- The simulator against the machine (design §13) ----
  std::vector<std::vector<std::string>> validation;
  std::vector<std::string> validation_keys;  // what tells the simulated points apart
  for (const auto& key : shown)
    if (key != "mode" && key != "seed" && key != "cores") validation_keys.push_back(key);
  // figure column, its formatter, its header
  struct Figure {
    const char* column;
    std::string (*format)(double);
    const char* name;
  };
  const std::vector<Figure> figures = {
      {"req_per_s", FormatRate, "req/s"},
      {"latency_p50_us", FormatUs, "p50"},
      {"latency_p99_us", FormatUs, "p99"},
      {"io_wait_p50_ns", [](double ns) { return FormatUs(ns / 1000); }, "io lock wait p50"},
  };
  std::vector<bool> figure_present(figures.size(), false);
  for (size_t f = 0; f < figures.size(); ++f)
    figure_present[f] = std::any_of(rows.begin(), rows.end(), [&](const Row& r) {
      return Get(r, "mode") == "simulate" && ParseCell(r, figures[f].column).has_value();
    });
  int within_count = 0, compared_count = 0;
  for (const auto& p : points) {
    const PointRuns* real = MatchingReal(points, p);
    if (!real) continue;
    std::vector<std::string> cells = {fmt::format("{} / {}", p.point, real->point)};
    for (const auto& k : validation_keys) cells.push_back(Get(p.settings, k));
    cells.push_back(fmt::format("{} / {}", Get(p.settings, "cores"), Get(real->settings, "cores")));
    for (size_t f = 0; f < figures.size(); ++f) {
      if (!figure_present[f]) continue;
      auto r = real->Of(figures[f].column);
      auto sim = p.Of(figures[f].column);
      // "real → simulated · **ratio** ✓": one cell per figure keeps the table readable.
      std::string cell = fmt::format("{} → {}", r ? figures[f].format(r->median) : "NA",
                                     sim ? figures[f].format(sim->median) : "NA");
      if (r && sim && r->median > 0) {
        const double ratio = sim->median / r->median;
        const bool within = std::abs(ratio - 1) <= kValidationTolerance;
        ++compared_count;
        within_count += within ? 1 : 0;
        cell += fmt::format(" · **{:.2f}** {}", ratio, within ? "✓" : "⚠");
      }
      cells.push_back(cell);
    }
    validation.push_back(cells);
  }
  if (!validation.empty()) {
    std::vector<std::string> validation_header = {"points sim / real"};
    validation_header.insert(validation_header.end(), validation_keys.begin(), validation_keys.end());
    validation_header.push_back("cores sim / real");
    for (size_t f = 0; f < figures.size(); ++f) {
      if (!figure_present[f]) continue;
      validation_header.push_back(fmt::format("{} real → sim · ratio", figures[f].name));
    }
    out += fmt::format("## Validation: simulated vs real (medians over repetitions; sim/real within ±{:.0f}%: ✓)\n\n",
                       100 * kValidationTolerance);
    out += MarkdownTable(validation_header, validation);
    out += fmt::format("\n{} of {} comparisons within ±{:.0f}%. The real runs share the machine with whatever else "
                       "ran (load average in meta.json); the simulated ones do not.\n\n",
                       within_count, compared_count, 100 * kValidationTolerance);
  }

  // ---- Per point ----
  std::vector<std::string> header = {"point"};
  for (const auto& k : shown) header.push_back(k);
  for (const char* h : {"runs", "req/s median (min–max)", "CV", "p50", "p99", "slowdown", "notes"}) header.push_back(h);
  std::vector<std::vector<std::string>> table;
  for (const auto& p : points) {
    std::vector<std::string> cells = {std::to_string(p.point)};
    for (const auto& k : shown) cells.push_back(Get(p.settings, k));
    auto rate = p.Of("req_per_s");
    cells.push_back(std::to_string(p.runs.size()));
    cells.push_back(MedianRange(rate, FormatRate));
    std::string notes;
    if (rate && rate->cv) {
      cells.push_back(Percent(*rate->cv));
      if (*rate->cv > kCvWarningThreshold) {
        notes += "⚠ CV > 5% ";
        warnings.push_back(fmt::format("point {} ({}): req/s varies by {} (CV) over {} runs; repeat or quiet the machine",
                                       p.point, Describe(p.settings, shown), Percent(*rate->cv), rate->n));
      }
    } else {
      cells.push_back("NA");
    }
    cells.push_back(MedianRange(p.Of("latency_p50_us"), FormatUs));
    cells.push_back(MedianRange(p.Of("latency_p99_us"), FormatUs));
    auto slowdown = Slowdown(points, p);
    bool is_base = Get(p.settings, "cpu_threads") == "0" &&
                   std::any_of(points.begin(), points.end(), [&](const PointRuns& q) { return MatchingUnloaded(points, q) == &p; });
    cells.push_back(slowdown ? FormatRatio(*slowdown) : is_base ? "1x (base)" : "—");
    auto errors = p.Of("errors");
    if (errors && errors->max > 0) {
      notes += fmt::format("⚠ {} errors ", errors->max);
      warnings.push_back(fmt::format("point {} ({}): the client counted failed requests (up to {} per run)", p.point,
                                     Describe(p.settings, shown), errors->max));
    }
    cells.push_back(notes);
    table.push_back(cells);
  }
  out += "## Per point (median over repetitions, min–max in brackets)\n\n" + MarkdownTable(header, table) + "\n";

  // ---- STM (interp/stm_model.h): time committed / aborted / paused, top conflict ----
  const bool any_stm = std::any_of(rows.begin(), rows.end(), [](const Row& r) { return !Get(r, "io_stm_commits").empty(); });
  if (any_stm) {
    std::vector<std::string> stm_header = {"point"};
    for (const auto& key : shown) stm_header.push_back(key);
    for (const char* h : {"req/s", "commits", "aborts", "committed ms", "aborted ms", "paused ms", "top conflict (first run)"})
      stm_header.emplace_back(h);
    std::vector<std::vector<std::string>> stm_table;
    auto ms = [](double ns) { return fmt::format("{:.1f}", ns / 1e6); };
    auto count = [](double n) { return fmt::format("{:.0f}", n); };
    for (const PointRuns& p : points) {
      if (Get(p.settings, "policy") != "stm") continue;
      std::vector<std::string> cells = {std::to_string(p.point)};
      for (const auto& key : shown) cells.push_back(Get(p.settings, key));
      cells.push_back(MedianRange(p.Of("req_per_s"), FormatRate));
      cells.push_back(MedianRange(p.Of("io_stm_commits"), count));
      cells.push_back(MedianRange(p.Of("io_stm_aborts"), count));
      cells.push_back(MedianRange(p.Of("io_stm_committed_ns"), ms));
      cells.push_back(MedianRange(p.Of("io_stm_aborted_ns"), ms));
      cells.push_back(MedianRange(p.Of("io_stm_paused_ns"), ms));
      const std::string top = p.runs.empty() ? "" : Get(p.runs.front(), "stm_top_conflict");
      cells.push_back(top.empty() ? "none" : top);
      stm_table.push_back(cells);
    }
    out += "## STM: time in committed / aborted / paused units and the top conflict (median, min–max)\n\n" +
           MarkdownTable(stm_header, stm_table) + "\n";
  }

  // ---- Lock per role ----
  bool any_lock = std::any_of(rows.begin(), rows.end(), [](const Row& r) { return !Get(r, "io_hold_ns").empty(); });
  if (any_lock) {
    std::vector<std::string> lock_header = {"point"};
    for (const auto& k : shown) lock_header.push_back(k);
    for (const char* h : {"io holding", "io waiting", "cpu holding", "cpu waiting", "switches/s", "io wait p99",
                          "forced drops io/cpu", "hand-off p50"})
      lock_header.push_back(h);
    std::vector<std::vector<std::string>> lock_table;
    for (const auto& p : points) {
      // Share of the threads' lifetime: their own elapsed time when the engine reports it,
      // else threads x the server's wall time (from `listening` to exit).
      auto share = [&](const std::string& role, const std::string& what) -> std::string {
        std::vector<double> shares;
        for (const auto& r : p.runs) {
          auto value = ParseCell(r, role + "_" + what + "_ns");
          auto elapsed = ParseCell(r, role + "_elapsed_ns");
          auto threads = ParseCell(r, role + "_thread_count");
          auto wall = ParseCell(r, "serve_wall_ns");
          if (!value) continue;
          if (elapsed && *elapsed > 0) shares.push_back(*value / *elapsed);
          else if (threads && *threads > 0 && wall && *wall > 0) shares.push_back(*value / (*threads * *wall));
        }
        return shares.empty() ? "NA" : Percent(Summarize(shares).median);
      };
      std::vector<std::string> cells = {std::to_string(p.point)};
      for (const auto& k : shown) cells.push_back(Get(p.settings, k));
      cells.push_back(share("io", "hold"));
      cells.push_back(share("io", "wait"));
      cells.push_back(share("cpu", "hold"));
      cells.push_back(share("cpu", "wait"));
      std::vector<double> rates;
      for (const auto& r : p.runs) {
        auto sw = ParseCell(r, "lock_switches");
        auto wall = ParseCell(r, "serve_wall_ns");
        if (sw && wall && *wall > 0) rates.push_back(*sw / (*wall / 1e9));
      }
      cells.push_back(rates.empty() ? "NA" : FormatRate(Summarize(rates).median));
      auto wait_p99 = p.Of("io_wait_p99_ns");
      cells.push_back(wait_p99 ? FormatUs(wait_p99->median / 1000) : "NA");
      auto io_drops = p.Of("io_forced_drops");
      auto cpu_drops = p.Of("cpu_forced_drops");
      cells.push_back(fmt::format("{}/{}", io_drops ? fmt::format("{:.0f}", io_drops->median) : "NA",
                                  cpu_drops ? fmt::format("{:.0f}", cpu_drops->median) : "NA"));
      auto handoff = p.Of("lock_handoff_p50_ns");
      cells.push_back(handoff ? FormatUs(handoff->median / 1000) : "NA");
      lock_table.push_back(cells);
    }
    out += "## The lock per role (share of each thread's lifetime holding / waiting; the rest is outside the lock)\n\n";
    out += MarkdownTable(lock_header, lock_table) + "\n";
  }

  // ---- OS priorities the kernel refused ----
  std::vector<std::string> refused;
  for (const auto& p : points)
    for (const auto& role : RowRoles())
      for (const auto& r : p.runs) {
        std::string why = Get(r, role + "_os_priority_refused");
        std::string applied = Get(r, role + "_os_priority_applied");
        if (why.empty() && applied != "false" && applied != "partial") continue;
        refused.push_back(fmt::format("- point {} ({}): {} {} not applied{}", p.point, Describe(p.settings, shown), role,
                                      Get(r, role + "_os_priority_requested"), why.empty() ? "" : ": " + why));
        break;
      }
  if (!refused.empty()) {
    out += "## OS priorities the kernel refused\n\n";
    for (const auto& line : refused) out += line + "\n";
    out += "\n";
  }
  if (meta.is_object()) {
    if (auto it = meta.find("warnings"); it != meta.end() && it->is_array())
      for (const auto& w : *it)
        if (w.is_string()) warnings.push_back("machine: " + w.get<std::string>());
  }
  if (!warnings.empty()) {
    out += "## Warnings\n\n";
    for (const auto& w : warnings) out += "- " + w + "\n";
    out += "\n";
  }
  return out;
}

}  // namespace gillab::experiments
