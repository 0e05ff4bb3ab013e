// clients.h — the load generators `gillab run` drives (design §11): one table
// row per client, saying how to build its command line and how to read its
// output into the one load object the results row is made from.
//
// Clients: `gillab` (our own `gillab load`, framed or HTTP), and Debian's
// `wrk` (the PyParallel seed's client, run with experiments/clients/
// wrk_report.lua whose done() prints one JSON line), `siege` (the PyPy-STM
// seed's; its --json-output summary) and `ab` (ApacheBench's text report).
// Every parser returns the same keys, so runs.csv has the same columns
// whichever client ran: requests, errors, non_2xx, seconds, req_per_s and
// latency_us {p50, p90, p99, p999, max, min, mean}. A figure the client does
// not report is ABSENT (an empty cell, NA), never 0:
//
//   client  percentiles                latency resolution  duration from
//   gillab  p50 p90 p99 p99.9 max      ~1% (log buckets)   requests
//   wrk     p50 p90 p99 p99.9 max      1 us                duration_s
//   siege   none (mean, min, max only) 10 ms               duration_s
//   ab      p50 p90 p99 max (no p99.9) 1 ms                duration_s
//
// Counting: `errors` are transport failures and wrong replies (wrk: connect +
// read + write + timeout; siege: failed transactions; ab: failed requests);
// `non_2xx` are replies with a status outside 2xx (wrk counts only >= 400).
// wrk, siege and ab count non-2xx replies in `requests`; gillab load does not
// (they are not latency samples). The experiment's `warmup` requests are
// gillab load's only; wrk, siege and ab measure from their first request.
//
//   const LoadClient& c = FindLoadClient(point.settings.at("client"));
//   ChildProcess load({.argv = c.args({point, bin, endpoint, json_path, warmup})});
//   nlohmann::json result = c.parse(load.out(), json_path);
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "experiments/experiment.h"

namespace gillab::experiments {

struct ClientCall {
  const Point& point;
  std::string gillab_bin;
  std::string endpoint;   // tcp://127.0.0.1:PORT, the server's resolved endpoint
  std::string json_path;  // where gillab load writes its result
  int64_t warmup_requests = 0;
  std::string source_dir;  // where experiments/clients/wrk_report.lua lives (SourceDir())
};

struct LoadClient {
  std::string_view name;
  std::string_view program;  // the executable ("" = the gillab binary itself)
  std::string_view help;
  bool http_only;
  std::vector<std::string> (*args)(const ClientCall& call);
  // The client's stdout (and, for gillab, its --json file) -> the load object.
  // Throws std::runtime_error when the output holds no result.
  nlohmann::json (*parse)(const std::string& out, const std::string& json_path);
};

const std::vector<LoadClient>& LoadClients();
const LoadClient* FindLoadClient(std::string_view name);
std::vector<std::string> LoadClientNames();

// Whether a point's server speaks HTTP: an outside server_command always, a
// gillab server when its `protocol` setting is http.
bool PointSpeaksHttp(const Settings& settings);

// `gillab load`'s command line for one run (the gillab client's row).
std::vector<std::string> LoadArgs(const Point& point, const std::string& bin, const std::string& endpoint,
                                  const std::string& json_path, int64_t warmup_requests);

// tcp://HOST:PORT + "/static" -> http://HOST:PORT/static
std::string HttpUrl(std::string_view endpoint, std::string_view target);

// The parsers, exposed for tests (experiments/testdata/clients/ holds captured outputs).
nlohmann::json ParseWrkOutput(const std::string& out);
nlohmann::json ParseSiegeOutput(const std::string& out);
nlohmann::json ParseAbOutput(const std::string& out);

}  // namespace gillab::experiments
