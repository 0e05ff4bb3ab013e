// results.cc — runs.csv rows, atomic appends, resume bookkeeping.
#include "experiments/results.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <fmt/core.h>

#include "servers/engine_stats.h"

namespace gillab::experiments {
namespace {

using nlohmann::json;

// Per-role counters: summed over the role's threads.
const std::vector<std::string> kSummedThreadKeys = {"acquisitions", "wait_ns",  "hold_ns",        "voluntary_releases",
                                                    "forced_drops", "handoffs", "yield_requests", "iterations",
                                                    "elapsed_ns"};
// Per-role distribution figures: the worst thread.
const std::vector<std::string> kMaxThreadKeys = {"wait_p50_ns", "wait_p99_ns", "wait_max_ns"};

std::string Number(const json& value) {
  if (value.is_number_integer()) return std::to_string(value.get<int64_t>());
  if (value.is_number_unsigned()) return std::to_string(value.get<uint64_t>());
  if (value.is_number_float()) return fmt::format("{:.6g}", value.get<double>());
  return "";
}

// value at a key path, or nullptr.
const json* Find(const json& object, std::initializer_list<const char*> path) {
  const json* node = &object;
  for (const char* key : path) {
    if (!node->is_object()) return nullptr;
    auto it = node->find(key);
    if (it == node->end()) return nullptr;
    node = &*it;
  }
  return node;
}

std::string Cell(const json& object, std::initializer_list<const char*> path) {
  const json* node = Find(object, path);
  return node ? Number(*node) : "";
}

std::string JsonText(const json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_boolean()) return value.get<bool>() ? "true" : "false";
  if (value.is_number()) return Number(value);
  return "";
}

void AddRoleColumns(const json& serve, Row& row) {
  const json* threads = Find(serve, {"threads"});
  for (const std::string& role : RowRoles()) {
    std::vector<const json*> mine;
    if (threads && threads->is_array())
      for (const auto& t : *threads)
        if (t.is_object() && t.value("role", "") == role) mine.push_back(&t);
    row[role + "_thread_count"] = threads ? std::to_string(mine.size()) : "";
    for (const auto& key : kSummedThreadKeys) {
      bool any = false;
      double sum = 0;
      bool integral = true;
      for (const json* t : mine) {
        auto it = t->find(key);
        if (it == t->end() || !it->is_number()) continue;
        any = true;
        sum += it->get<double>();
        integral &= !it->is_number_float();
      }
      row[role + "_" + key] = !any ? "" : integral ? fmt::format("{:.0f}", sum) : fmt::format("{:.6g}", sum);
    }
    for (const auto& key : kMaxThreadKeys) {
      bool any = false;
      double worst = 0;
      for (const json* t : mine) {
        auto it = t->find(key);
        if (it == t->end() || !it->is_number()) continue;
        worst = any ? std::max(worst, it->get<double>()) : it->get<double>();
        any = true;
      }
      row[role + "_" + key] = any ? fmt::format("{:.0f}", worst) : "";
    }
    // Priorities: what was asked for, and whether every thread of the role got it.
    std::string lock_priority, requested, readback, refused, applied;
    int applied_count = 0, known = 0;
    for (const json* t : mine) {
      if (auto it = t->find("lock_priority"); it != t->end() && lock_priority.empty()) lock_priority = JsonText(*it);
      const json* os = Find(*t, {"os_priority"});
      if (!os || !os->is_object()) continue;
      if (requested.empty()) requested = JsonText(os->value("requested", json()));
      if (readback.empty()) readback = JsonText(os->value("readback", json()));
      std::string why = JsonText(os->value("refused", json()));
      if (!why.empty() && refused.find(why) == std::string::npos) refused += (refused.empty() ? "" : "; ") + why;
      if (auto it = os->find("applied"); it != os->end() && it->is_boolean()) {
        ++known;
        applied_count += it->get<bool>() ? 1 : 0;
      }
    }
    if (known > 0) applied = applied_count == known ? "true" : applied_count == 0 ? "false" : "partial";
    row[role + "_lock_priority"] = lock_priority;
    row[role + "_os_priority_requested"] = requested;
    row[role + "_os_priority_applied"] = applied;
    row[role + "_os_priority_refused"] = refused;
    row[role + "_os_priority_readback"] = readback;
    for (const auto& figure : servers::ModelFigureSpecs()) {
      bool any = false;
      double value = 0;
      for (const json* t : mine) {
        const json* v = Find(*t, {"model", std::string(figure.name).c_str()});
        if (!v || !v->is_number()) continue;
        const double x = v->get<double>();
        value = !any ? x : figure.summed ? value + x : std::max(value, x);
        any = true;
      }
      row[fmt::format("{}_{}", role, figure.name)] = any ? fmt::format("{:.6g}", value) : "";
    }
  }
}

}  // namespace

const std::vector<std::string>& RowRoles() {
  static const std::vector<std::string> roles = {"io", "cpu"};
  return roles;
}

const std::vector<std::string>& RunColumns() {
  static const std::vector<std::string> columns = [] {
    std::vector<std::string> c = {"point", "repetition", "variant"};
    for (const auto& spec : SettingSpecs()) c.emplace_back(spec.name);
    for (const char* name : {"status", "started_utc", "wall_s", "req_per_s", "latency_p50_us", "latency_p90_us",
                             "latency_p99_us", "latency_p999_us", "latency_max_us", "latency_min_us", "latency_mean_us", "requests_done", "errors", "non_2xx",
                             "load_seconds", "cpu_iterations_per_s", "lock_switches", "lock_handoff_p50_ns",
                             "lock_handoff_p99_ns", "serve_wall_ns"})
      c.emplace_back(name);
    for (const auto& role : RowRoles()) {
      c.push_back(role + "_thread_count");
      for (const auto& key : kSummedThreadKeys) c.push_back(role + "_" + key);
      for (const auto& key : kMaxThreadKeys) c.push_back(role + "_" + key);
      for (const char* key : {"lock_priority", "os_priority_requested", "os_priority_applied",
                              "os_priority_refused", "os_priority_readback"})
        c.push_back(role + "_" + key);
    }
    // A model's own figures (servers/engine_stats.h), last: a runs.csv written
    // before one existed reads it as empty.
    for (const auto& role : RowRoles())
      for (const auto& figure : servers::ModelFigureSpecs()) c.push_back(fmt::format("{}_{}", role, figure.name));
    // The stm conflict report's top line (serve's "model_report", interp/stm_model.h).
    c.emplace_back("stm_top_conflict");
    // The server process (design §10's C10K table): peak RSS, peak thread
    // count, and the green hub's lock releases per request; last, as above.
    for (const char* name : {"server_max_rss_kb", "server_threads_max", "hub_lock_releases_per_request",
                             "hub_sched_latency_p99_ns"})
      c.emplace_back(name);
    return c;
  }();
  return columns;
}

Row MakeRow(const Point& point, int repetition, const json& load, const json& serve, const RunTiming& timing) {
  Row row;
  for (const auto& c : RunColumns()) row[c] = "";
  row["point"] = std::to_string(point.id);
  row["repetition"] = std::to_string(repetition);
  row["variant"] = point.variant;
  for (const auto& [key, value] : point.settings) row[key] = value;
  row["status"] = timing.status;
  row["started_utc"] = timing.started_utc;
  row["wall_s"] = fmt::format("{:.3f}", timing.wall_s);
  row["serve_wall_ns"] = timing.serve_wall_ns > 0 ? std::to_string(timing.serve_wall_ns) : "";
  row["req_per_s"] = Cell(load, {"req_per_s"});
  for (const char* p : {"p50", "p90", "p99", "p999", "max", "min", "mean"})
    row[fmt::format("latency_{}_us", p)] = Cell(load, {"latency_us", p});
  row["requests_done"] = Cell(load, {"requests"});
  row["errors"] = Cell(load, {"errors"});
  row["non_2xx"] = Cell(load, {"non_2xx"});
  row["load_seconds"] = Cell(load, {"seconds"});
  row["cpu_iterations_per_s"] = Cell(serve, {"cpu_iterations_per_s"});
  row["lock_switches"] = Cell(serve, {"lock", "switches"});
  row["lock_handoff_p50_ns"] = Cell(serve, {"lock", "handoff_p50_ns"});
  row["lock_handoff_p99_ns"] = Cell(serve, {"lock", "handoff_p99_ns"});
  AddRoleColumns(serve, row);
  if (const json* conflicts = Find(serve, {"model_report", "conflicts"}); conflicts && conflicts->is_array() &&
                                                                          !conflicts->empty()) {
    const json& c = conflicts->front();
    row["stm_top_conflict"] = fmt::format("{} {} <-> {} ({}x, {:.1f} ms lost)", c.value("kind", std::string()),
                                          c.value("site", std::string()), c.value("other_site", std::string()),
                                          c.value("count", int64_t{0}), c.value("lost_ns", int64_t{0}) / 1e6);
  }
  row["server_max_rss_kb"] = Cell(serve, {"max_rss_kb"});
  row["server_threads_max"] = Cell(serve, {"threads_max"});
  row["hub_lock_releases_per_request"] = Cell(serve, {"hub", "lock_releases_per_request"});
  row["hub_sched_latency_p99_ns"] = Cell(serve, {"hub", "sched_latency_ns", "p99"});
  return row;
}

std::string CsvEscape(const std::string& cell) {
  if (cell.find_first_of(",\"\n\r") == std::string::npos) return cell;
  std::string out = "\"";
  for (char c : cell) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string CsvLine(const std::vector<std::string>& cells) {
  std::string line;
  for (size_t i = 0; i < cells.size(); ++i) {
    if (i) line += ',';
    // A row is one line: newlines inside a cell (an error message) become spaces.
    std::string cell = cells[i];
    std::replace(cell.begin(), cell.end(), '\n', ' ');
    std::replace(cell.begin(), cell.end(), '\r', ' ');
    line += CsvEscape(cell);
  }
  return line + "\n";
}

std::vector<std::vector<std::string>> ParseCsv(const std::string& text) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  std::string cell;
  bool quoted = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (quoted) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') cell += '"', ++i;
      else if (c == '"') quoted = false;
      else cell += c;
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      row.push_back(std::move(cell));
      cell.clear();
    } else if (c == '\n') {
      row.push_back(std::move(cell));
      cell.clear();
      rows.push_back(std::move(row));
      row.clear();
    } else if (c != '\r') {
      cell += c;
    }
  }
  return rows;  // whatever follows the last '\n' was a partial write
}

RunsCsv RunsCsv::Open(const std::string& path) {
  RunsCsv csv;
  csv.path_ = path;
  std::string header = CsvLine(RunColumns());
  struct stat st {};
  if (stat(path.c_str(), &st) != 0 || st.st_size == 0) {
    WriteFileAtomic(path, header);
    return csv;
  }
  std::string text = ReadFile(path);
  size_t complete = text.rfind('\n');
  complete = complete == std::string::npos ? 0 : complete + 1;
  if (complete < text.size()) {
    // A run killed in the middle of its write: drop the fragment so the next append starts a clean line.
    if (truncate(path.c_str(), static_cast<off_t>(complete)) != 0)
      throw std::runtime_error(fmt::format("cannot truncate {}: {}", path, std::strerror(errno)));
    text.resize(complete);
  }
  if (text.empty()) {
    WriteFileAtomic(path, header);
    return csv;
  }
  auto rows = ParseCsv(text);
  if (!rows.empty() && rows[0] != RunColumns()) rows = MigrateColumns(path, rows);
  for (size_t i = 1; i < rows.size(); ++i) {
    if (rows[i].size() != RunColumns().size()) continue;
    try {
      csv.finished_.insert({std::stoi(rows[i][0]), std::stoi(rows[i][1])});
    } catch (const std::exception&) {
    }
  }
  return csv;
}

void RunsCsv::Append(const Row& row) {
  std::vector<std::string> cells;
  for (const auto& c : RunColumns()) {
    auto it = row.find(c);
    cells.push_back(it == row.end() ? "" : it->second);
  }
  std::string line = CsvLine(cells);
  int fd = open(path_.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error(fmt::format("cannot open {}: {}", path_, std::strerror(errno)));
  ssize_t written = write(fd, line.data(), line.size());
  int error = errno;
  bool synced = written == static_cast<ssize_t>(line.size()) && fsync(fd) == 0;
  if (!synced && written >= 0) error = errno;
  close(fd);
  if (!synced) throw std::runtime_error(fmt::format("cannot append to {}: {}", path_, std::strerror(error)));
  finished_.insert({std::stoi(row.at("point")), std::stoi(row.at("repetition"))});
}

std::vector<std::vector<std::string>> MigrateColumns(const std::string& path,
                                                     const std::vector<std::vector<std::string>>& rows) {
  const std::vector<std::string>& old_header = rows[0];
  const std::vector<std::string>& columns = RunColumns();
  for (const auto& c : old_header)
    if (std::find(columns.begin(), columns.end(), c) == columns.end())
      throw std::runtime_error(
          fmt::format("{} has a column '{}' that this version of gillab does not write; resume it with the gillab "
                      "that started it", path, c));
  std::vector<std::vector<std::string>> out = {columns};
  std::string text = CsvLine(columns);
  for (size_t i = 1; i < rows.size(); ++i) {
    if (rows[i].size() != old_header.size()) continue;  // not a row of that header
    std::vector<std::string> cells(columns.size());
    for (size_t c = 0; c < old_header.size(); ++c) {
      size_t at = std::find(columns.begin(), columns.end(), old_header[c]) - columns.begin();
      cells[at] = rows[i][c];
    }
    text += CsvLine(cells);
    out.push_back(std::move(cells));
  }
  WriteFileAtomic(path, text);
  return out;
}

std::vector<Row> ReadRunsCsv(const std::string& path) {
  auto rows = ParseCsv(ReadFile(path));
  if (rows.empty()) throw std::runtime_error(fmt::format("{} is empty", path));
  const auto& header = rows[0];
  std::vector<Row> out;
  for (size_t i = 1; i < rows.size(); ++i) {
    if (rows[i].size() != header.size()) continue;
    Row row;
    for (const auto& c : RunColumns()) row[c] = "";  // a column newer than the file: NA
    for (size_t c = 0; c < header.size(); ++c) row[header[c]] = rows[i][c];
    out.push_back(std::move(row));
  }
  return out;
}

void WriteFileAtomic(const std::string& path, const std::string& text) {
  std::string tmp = path + ".tmp";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error(fmt::format("cannot write {}: {}", tmp, std::strerror(errno)));
  bool ok = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && fsync(fd) == 0;
  int error = errno;
  close(fd);
  if (!ok || rename(tmp.c_str(), path.c_str()) != 0) {
    unlink(tmp.c_str());
    throw std::runtime_error(fmt::format("cannot write {}: {}", path, std::strerror(ok ? errno : error)));
  }
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(fmt::format("cannot read {}: {}", path, std::strerror(errno)));
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

}  // namespace gillab::experiments
