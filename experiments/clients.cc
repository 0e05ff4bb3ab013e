// clients.cc — command lines and output parsers of gillab load, wrk, siege and ab (see clients.h).
#include "experiments/clients.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>
#include <stdexcept>

#include <fmt/core.h>

#include "gil/error.h"
#include "servers/settings.h"

namespace gillab::experiments {
namespace {

using nlohmann::json;

// ab keeps one record per request: -n bounds its memory (~40 B a request)
// while -t ends the run; loopback ab does far fewer than this in a run.
constexpr int64_t kAbMaxRequests = 1'000'000;
constexpr std::string_view kWrkJsonMarker = "GILLAB_WRK_JSON ";

// The program's path on PATH (the runner execs a path, not a name).
std::string OnPath(std::string_view program) {
  const char* path = std::getenv("PATH");
  std::string_view dirs = path ? path : "/usr/bin:/bin";
  while (!dirs.empty()) {
    const size_t colon = dirs.find(':');
    const std::string_view dir = dirs.substr(0, colon);
    const std::string candidate = fmt::format("{}/{}", dir.empty() ? "." : dir, program);
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
    dirs = colon == std::string_view::npos ? std::string_view() : dirs.substr(colon + 1);
  }
  throw UsageError(fmt::format("client {}: no '{}' on PATH (scripts/setup installs wrk, siege and apache2-utils)",
                               program, program));
}

std::string Target(const Settings& s) { return s.at("http_target"); }

// "10" -> "10", "2.5" -> "3": the tools take whole seconds.
std::string WholeSeconds(const Settings& s) {
  return std::to_string(std::max<int64_t>(1, std::llround(SettingDouble(s, "duration_s"))));
}

std::vector<std::string> GillabArgs(const ClientCall& c) {
  return LoadArgs(c.point, c.gillab_bin, c.endpoint, c.json_path, c.warmup_requests);
}

json GillabParse(const std::string&, const std::string& json_path) {
  std::ifstream in(json_path);
  std::stringstream text;
  text << in.rdbuf();
  json j = json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) throw std::runtime_error("gillab load wrote no readable --json file");
  return j;
}

std::vector<std::string> WrkArgs(const ClientCall& c) {
  const Settings& s = c.point.settings;
  // wrk refuses fewer connections than threads.
  const int64_t threads = std::min(SettingInt(s, "client_threads"), SettingInt(s, "connections"));
  return {OnPath("wrk"), "-c", s.at("connections"), "-t", std::to_string(threads), "-d", WholeSeconds(s) + "s", "--latency",
          "-s", c.source_dir + "/experiments/clients/wrk_report.lua", HttpUrl(c.endpoint, Target(s))};
}

std::vector<std::string> SiegeArgs(const ClientCall& c) {
  const Settings& s = c.point.settings;
  // -b: no delay between a user's requests (benchmark); -q: only the JSON summary on stdout.
  return {OnPath("siege"), "-b", "-q", "--json-output", "-c", s.at("connections"), "-t", WholeSeconds(s) + "S",
          HttpUrl(c.endpoint, Target(s))};
}

std::vector<std::string> AbArgs(const ClientCall& c) {
  const Settings& s = c.point.settings;
  // -t before -n: -t alone would cap the run at 50,000 requests.
  return {OnPath("ab"), "-k", "-q", "-c", s.at("connections"), "-t", WholeSeconds(s), "-n", std::to_string(kAbMaxRequests),
          "-s", fmt::format("{}", std::max<int64_t>(1, std::llround(SettingDouble(s, "timeout_s")))),
          HttpUrl(c.endpoint, Target(s))};
}

json ParseWrkFile(const std::string& out, const std::string&) { return ParseWrkOutput(out); }
json ParseSiegeFile(const std::string& out, const std::string&) { return ParseSiegeOutput(out); }
json ParseAbFile(const std::string& out, const std::string&) { return ParseAbOutput(out); }

double Number(const json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end() || !it->is_number()) throw std::runtime_error(fmt::format("no number '{}'", key));
  return it->get<double>();
}

// The first capture of `pattern` in `text` as a number, or NaN.
double Find(const std::string& text, const char* pattern) {
  std::smatch m;
  if (!std::regex_search(text, m, std::regex(pattern))) return std::nan("");
  return std::stod(m[1].str());
}

}  // namespace

// From the settings table (servers/settings.h): each row names its flag and
// when it is passed (e.g. --server only for a gillab server, --protocol http
// and --target for a server that speaks http).
std::vector<std::string> LoadArgs(const Point& p, const std::string& bin, const std::string& endpoint,
                                  const std::string& json_path, int64_t warmup_requests) {
  std::vector<std::string> args = {bin, "load", "--endpoint", endpoint};
  for (std::string& flag : servers::SettingFlags(SettingTarget::kLoad, p.settings)) args.push_back(std::move(flag));
  args.insert(args.end(), {"--json", json_path});
  if (warmup_requests > 0) args.insert(args.end(), {"--warmup", std::to_string(warmup_requests)});
  return args;
}

const std::vector<LoadClient>& LoadClients() {
  static const std::vector<LoadClient> clients = {
      {"gillab", "", "gillab load: framed or HTTP, closed or open loop, `requests` per run", false, GillabArgs,
       GillabParse},
      {"wrk", "wrk", "wrk -c connections -t client_threads -d duration_s --latency (PyParallel's client)", true,
       WrkArgs, ParseWrkFile},
      {"siege", "siege", "siege -b -c connections -t duration_s (PyPy-STM's client; no percentiles)", true, SiegeArgs,
       ParseSiegeFile},
      {"ab", "ab", "ab -k -c connections -t duration_s (ApacheBench; 1 ms resolution)", true, AbArgs, ParseAbFile},
  };
  return clients;
}

const LoadClient* FindLoadClient(std::string_view name) {
  for (const auto& c : LoadClients())
    if (c.name == name) return &c;
  return nullptr;
}

std::vector<std::string> LoadClientNames() {
  std::vector<std::string> names;
  for (const auto& c : LoadClients()) names.emplace_back(c.name);
  return names;
}

bool PointSpeaksHttp(const Settings& s) {
  if (auto it = s.find("server_command"); it != s.end() && !it->second.empty()) return true;
  auto it = s.find("protocol");
  return it != s.end() && it->second == "http";
}

std::string HttpUrl(std::string_view endpoint, std::string_view target) {
  std::string_view rest = endpoint;
  if (rest.starts_with("tcp://")) rest.remove_prefix(6);
  return fmt::format("http://{}{}", rest, target);
}

json ParseWrkOutput(const std::string& out) {
  const size_t at = out.rfind(kWrkJsonMarker);
  if (at == std::string::npos) throw std::runtime_error("wrk printed no result (no GILLAB_WRK_JSON line)");
  const size_t end = out.find('\n', at);
  json w = json::parse(out.substr(at + kWrkJsonMarker.size(), end == std::string::npos ? end : end - at - kWrkJsonMarker.size()),
                       nullptr, /*allow_exceptions=*/false);
  if (!w.is_object() || !w.contains("errors") || !w.contains("latency_us"))
    throw std::runtime_error("wrk's GILLAB_WRK_JSON line is not the expected JSON object");
  const json& e = w["errors"];
  const double seconds = Number(w, "duration_us") / 1e6;
  const double requests = Number(w, "requests");
  json result = {
      {"client", "wrk"},
      {"requests", static_cast<int64_t>(requests)},
      {"errors", static_cast<int64_t>(Number(e, "connect") + Number(e, "read") + Number(e, "write") + Number(e, "timeout"))},
      {"non_2xx", static_cast<int64_t>(Number(e, "status"))},
      {"seconds", seconds},
      {"req_per_s", seconds > 0 ? requests / seconds : 0.0},
      {"errors_detail", e},
      {"latency_us", json::object()},
  };
  for (const char* p : {"p50", "p90", "p99", "p999", "max", "min", "mean"}) result["latency_us"][p] = Number(w["latency_us"], p);
  return result;
}

json ParseSiegeOutput(const std::string& out) {
  // siege prints its summary as one JSON object (with tabs) after any per-request lines.
  const size_t start = out.rfind("{");
  const size_t end = out.rfind('}');
  json s = start == std::string::npos || end == std::string::npos || end < start
               ? json()
               : json::parse(out.substr(start, end - start + 1), nullptr, /*allow_exceptions=*/false);
  if (!s.is_object() || !s.contains("transactions")) throw std::runtime_error("siege printed no JSON summary");
  const double transactions = Number(s, "transactions");
  json result = {
      {"client", "siege"},
      {"requests", static_cast<int64_t>(transactions)},
      {"errors", static_cast<int64_t>(Number(s, "failed_transactions"))},
      {"non_2xx", static_cast<int64_t>(transactions - Number(s, "successful_transactions"))},
      {"seconds", Number(s, "elapsed_time")},
      {"req_per_s", Number(s, "transaction_rate")},
      // siege reports seconds with two decimals: 10 ms resolution, and no percentiles.
      {"latency_us",
       {{"mean", Number(s, "response_time") * 1e6},
        {"max", Number(s, "longest_transaction") * 1e6},
        {"min", Number(s, "shortest_transaction") * 1e6}}},
  };
  return result;
}

json ParseAbOutput(const std::string& out) {
  const double complete = Find(out, R"(Complete requests:\s+(\d+))");
  const double seconds = Find(out, R"(Time taken for tests:\s+([0-9.]+) seconds)");
  const double rate = Find(out, R"(Requests per second:\s+([0-9.]+))");
  if (std::isnan(complete) || std::isnan(seconds) || std::isnan(rate))
    throw std::runtime_error("ab printed no report (no 'Complete requests' / 'Requests per second')");
  const double failed = Find(out, R"(Failed requests:\s+(\d+))");
  const double non_2xx = Find(out, R"(Non-2xx responses:\s+(\d+))");  // absent when there were none
  json latency = json::object();
  // "Percentage of the requests served within a certain time (ms)": whole milliseconds.
  for (const auto& [key, pattern] : std::vector<std::pair<const char*, const char*>>{
           {"p50", R"(\n\s+50%\s+(\d+))"}, {"p90", R"(\n\s+90%\s+(\d+))"}, {"p99", R"(\n\s+99%\s+(\d+))"},
           {"max", R"(\n\s+100%\s+(\d+))"}}) {
    const double ms = Find(out, pattern);
    if (!std::isnan(ms)) latency[key] = ms * 1000;
  }
  const double mean_ms = Find(out, R"(Time per request:\s+([0-9.]+) \[ms\] \(mean\)\n)");
  if (!std::isnan(mean_ms)) latency["mean"] = mean_ms * 1000;
  const double min_ms = Find(out, R"(\nTotal:\s+(\d+))");
  if (!std::isnan(min_ms)) latency["min"] = min_ms * 1000;
  return {
      {"client", "ab"},
      {"requests", static_cast<int64_t>(complete)},
      {"errors", std::isnan(failed) ? 0 : static_cast<int64_t>(failed)},
      {"non_2xx", std::isnan(non_2xx) ? 0 : static_cast<int64_t>(non_2xx)},
      {"seconds", seconds},
      {"req_per_s", rate},
      {"latency_us", latency},
  };
}

}  // namespace gillab::experiments
