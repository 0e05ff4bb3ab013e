// load_client.h — `gillab load`: drive a server with C connections and
// measure request latency (design §5, §6).
//
// Closed loop (rate == 0): each connection keeps one request in flight and
// sleeps think_us after each reply (Beazley's setup). Latency is send -> reply;
// the think sleep and its overshoot are outside it.
// Open loop (rate > 0): request k of connection i has an intended send time
// t0 + (k*C + i)/rate. A connection that falls behind sends at once but keeps
// the schedule, and latency is measured from the intended time, so a server
// stall shows in every request it delayed (no coordinated omission).
// Payloads are S pseudo-random bytes, fresh per request; every reply is
// compared with its request (expect_echo), and a mismatch is counted in
// `errors`, never as a latency sample. A connection whose transport fails
// counts one error and stops; the others go on.
// HTTP (protocol "http", design §11): keep-alive requests to http_target —
// `POST /echo` carries the payload and expects it back, any other target is a
// GET whose body is accepted as it is. A non-2xx reply is counted in `non_2xx`
// and is not a latency sample. pipeline P > 1 (closed loop only) sends P
// requests in one write, then reads their P replies; each one's latency runs
// from that write to its own reply.
//
//   LoadResult r = RunLoad({.endpoint = "tcp://127.0.0.1:5555", .requests = 1000});
//   fmt::print("{}", r.Summary());
//   WriteJsonAtomically("load.json", r.ToJson());
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "gil/histogram.h"

namespace gillab::servers {

struct LoadOptions {
  std::string endpoint;
  std::string server;           // server kind; "" = from the endpoint (tcp:// stream, ipc:// multiprocessing)
  int64_t requests = 1000;      // measured requests, over all connections
  int64_t message_bytes = 64;
  std::string payload;          // non-empty: every request is exactly these bytes (e.g. "20000" for primes)
  int connections = 1;
  int64_t think_us = 0;         // closed loop only
  double rate = 0;              // requests/s over all connections; 0 = closed loop
  int64_t warmup = 0;           // unmeasured requests before the clock starts, over all connections
  bool expect_echo = true;      // false: any reply is accepted (e.g. the primes handler)
  int reply_timeout_ms = 10000;
  uint64_t seed = 1;
  std::string protocol = "frame";  // frame | http (the stream servers under --protocol http, or any HTTP server)
  std::string http_target = "/echo";
  int pipeline = 1;                // http: requests in flight per connection
};

struct LoadResult {
  LoadOptions options;
  std::string transport;
  int64_t requests = 0;  // replies received and verified (= latency samples)
  int64_t errors = 0;    // wrong replies + failed connections
  int64_t non_2xx = 0;   // http replies with a status outside 200-299 (not latency samples)
  int64_t unsent = 0;    // requests never sent because their connection failed
  double seconds = 0;
  gil::Histogram latency_ns;
  std::vector<std::string> error_messages;  // the first few, for the report

  double req_per_s() const { return seconds > 0 ? requests / seconds : 0.0; }
  // Keys relied on (design §5): requests, errors, non_2xx, seconds, req_per_s,
  // latency_us {p50, p90, p99, p999, max}; others are informative (latency_us.cdf:
  // [[percentile, us], ...] on Histogram::kCdfPercentiles, for the latency CDF plot).
  nlohmann::json ToJson() const;
  std::string Summary() const;  // a few readable lines for stdout
};

// Throws UsageError for bad options or endpoints and std::runtime_error when
// a connection cannot be opened; failures during the run are counted instead.
LoadResult RunLoad(const LoadOptions& options);

// Writes PATH.tmp then renames it over PATH, so PATH is either absent, the old
// file, or the whole new one. Throws std::runtime_error.
void WriteJsonAtomically(const std::string& path, const nlohmann::json& value);

}  // namespace gillab::servers
