// results.h — a results directory: runs.csv (one tidy row per run) and meta.json.
//
// runs.csv has a fixed header (RunColumns(): point, repetition, variant, every
// setting, then measurements with units in their names, then each role's model
// figures, servers/engine_stats.h). Each finished run is
// appended as one line with a single write() and fsync'd, so Ctrl-C or kill -9
// loses no finished run. Opening an existing file drops a trailing partial line
// (a run killed mid-write) and remembers which (point, repetition) pairs are
// done, so --resume runs only the rest and never writes a pair twice. A file
// written by an older gillab, whose header lacks columns added since (a new
// setting, a model figure), is rewritten once with the current header, its
// rows empty (NA) in the new columns; ReadRunsCsv reads such a file the same way.
// A measurement the engine cannot provide is an empty cell (NA), never 0.
//
//   RunsCsv csv = RunsCsv::Open(dir + "/runs.csv");
//   if (!csv.Finished(p.id, rep)) csv.Append(MakeRow(p, rep, load_json, serve_json, timing));
//   auto rows = ReadRunsCsv(dir + "/runs.csv");
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "experiments/experiment.h"

namespace gillab::experiments {

using Row = std::map<std::string, std::string>;  // column -> cell text ("" = NA)

// The roles whose lock statistics get their own columns.
const std::vector<std::string>& RowRoles();
const std::vector<std::string>& RunColumns();

struct RunTiming {
  std::string started_utc;  // ISO 8601
  double wall_s = 0;        // the whole run: serve start to serve exit
  int64_t serve_wall_ns = 0;  // from `listening` to the server's exit (the lock's lifetime, roughly)
  std::string status = "ok";  // ok | errors (the client counted failed requests)
};

// One row from a run's load JSON and serve exit JSON (either may lack keys).
Row MakeRow(const Point& point, int repetition, const nlohmann::json& load, const nlohmann::json& serve,
            const RunTiming& timing);

std::string CsvEscape(const std::string& cell);
std::string CsvLine(const std::vector<std::string>& cells);  // with the trailing '\n'
// Parses CSV text; a last line without '\n' is dropped (a partial write).
std::vector<std::vector<std::string>> ParseCsv(const std::string& text);

// Re-lays rows written under an older header (rows[0]) under RunColumns(),
// new columns empty, and rewrites `path` atomically. Throws std::runtime_error
// when the old header has a column RunColumns() lacks.
std::vector<std::vector<std::string>> MigrateColumns(const std::string& path,
                                                     const std::vector<std::vector<std::string>>& rows);

class RunsCsv {
 public:
  // Creates the file with its header, or opens an existing one: drops a
  // partial trailing line and checks the header. Throws std::runtime_error.
  static RunsCsv Open(const std::string& path);
  bool Finished(int point, int repetition) const { return finished_.count({point, repetition}) > 0; }
  size_t finished_count() const { return finished_.size(); }
  // Appends one line atomically (single write + fsync). Throws on I/O errors.
  void Append(const Row& row);

 private:
  std::string path_;
  std::set<std::pair<int, int>> finished_;
};

// Every complete row of a runs.csv, keyed by column. Throws std::runtime_error.
std::vector<Row> ReadRunsCsv(const std::string& path);

// Writes text to path via a temporary file and rename (readers never see half a file).
void WriteFileAtomic(const std::string& path, const std::string& text);
std::string ReadFile(const std::string& path);  // throws std::runtime_error

}  // namespace gillab::experiments
