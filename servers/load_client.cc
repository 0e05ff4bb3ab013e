// load_client.cc — closed- and open-loop load over any transport (see load_client.h).
#include "servers/load_client.h"

#include <algorithm>
#include <barrier>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <thread>

#include <fmt/core.h>

#include "gil/clock.h"
#include "gil/error.h"
#include "servers/client_connection.h"
#include "servers/load_event_loop.h"
#include "servers/payload_source.h"

namespace gillab::servers {
namespace {

constexpr size_t kMaxMessagesPerConnection = 3;
constexpr int64_t kMaxMessageBytes = int64_t{1} << 30;

// when_ns is on gil::KernelNowNs(), CLOCK_MONOTONIC: steady_clock's clock.
void SleepUntilNs(int64_t when_ns) {
  std::this_thread::sleep_until(std::chrono::steady_clock::time_point(std::chrono::nanoseconds(when_ns)));
}

struct Worker {
  int index = 0;
  int64_t warmup = 0;
  int64_t requests = 0;
  std::unique_ptr<ClientConnection> connection;
  gil::Histogram latency_ns;
  int64_t ok = 0;
  int64_t errors = 0;
  int64_t non_2xx = 0;
  int64_t unsent = 0;
  int64_t finish_ns = 0;
  std::vector<std::string> messages;

  void Note(std::string message) {
    ++errors;
    if (messages.size() < kMaxMessagesPerConnection) {
      messages.push_back(fmt::format("connection {}: {}", index, std::move(message)));
    }
  }
};

std::string Mismatch(std::string_view request, std::string_view reply) {
  const size_t common = std::min(request.size(), reply.size());
  size_t at = 0;
  while (at < common && request[at] == reply[at]) ++at;
  return fmt::format("wrong reply: {} bytes for a {}-byte request, first difference at byte {}",
                     reply.size(), request.size(), at);
}

// Splits n over c connections, the first ones taking the remainder.
int64_t Share(int64_t n, int c, int i) { return n / c + (i < n % c ? 1 : 0); }

void Validate(const LoadOptions& o) {
  if (o.requests < 1) throw UsageError("--requests must be at least 1");
  if (o.message_bytes < 0 || o.message_bytes > kMaxMessageBytes) {
    throw UsageError(fmt::format("--message-bytes must be from 0 to {}", kMaxMessageBytes));
  }
  if (o.connections < 1 || o.connections > 10000) throw UsageError("--connections must be from 1 to 10000");
  if (o.think_us < 0) throw UsageError("--think-us must be >= 0");
  if (o.rate < 0) throw UsageError("--rate must be > 0");
  if (o.rate > 0 && o.think_us > 0) throw UsageError("--think-us and --rate exclude each other");
  if (o.warmup < 0) throw UsageError("--warmup must be >= 0");
  if (o.reply_timeout_ms < 1) throw UsageError("--reply-timeout-ms must be >= 1");
  if (o.protocol != "frame" && o.protocol != "http") throw UsageError("--protocol must be frame or http");
  if (o.pipeline < 1 || o.pipeline > 100000) throw UsageError("--pipeline must be from 1 to 100000");
  if (o.pipeline > 1 && o.protocol != "http") throw UsageError("--pipeline needs --protocol http");
  if (o.pipeline > 1 && o.rate > 0) throw UsageError("--pipeline is for the closed loop; drop --rate");
  if (o.protocol == "http" && (o.http_target.empty() || o.http_target[0] != '/')) {
    throw UsageError(fmt::format("--target '{}' must start with '/'", o.http_target));
  }
}

}  // namespace

LoadResult RunLoad(const LoadOptions& options) {
  Validate(options);
  LoadResult result;
  result.options = options;
  result.transport = options.protocol == "http" ? "http"
                     : options.server.empty()   ? DefaultTransport(options.endpoint)
                                                : TransportOfServerKind(options.server);
  if (options.protocol == "http" && !options.server.empty() && TransportOfServerKind(options.server) != "stream") {
    throw UsageError(fmt::format("--protocol http needs a stream server, not {}", options.server));
  }
  // Only POST /echo sends the payload back; every other http target's body is accepted as it is.
  const bool expect_echo = options.expect_echo && (options.protocol != "http" || options.http_target == "/echo");
  CheckEndpoint(result.transport, options.endpoint);

  const int c = options.connections;
  if (result.transport == "stream" && c >= kEventLoopMinConnections) {
    // Many connections (C10K): one epoll loop instead of a thread each (load_event_loop.h).
    PayloadSource payloads(static_cast<size_t>(options.message_bytes), options.seed * 1000003);
    RunFrameLoadOnEpoll(options, expect_echo, [&](std::string& out) {
      if (options.payload.empty()) payloads.Next(out);
      else out = options.payload;
    }, result);
    return result;
  }
  std::vector<Worker> workers(c);
  for (int i = 0; i < c; ++i) {
    workers[i].index = i;
    workers[i].warmup = Share(options.warmup, c, i);
    workers[i].requests = Share(options.requests, c, i);
    workers[i].connection =
        ConnectClient(result.transport, options.endpoint, options.reply_timeout_ms, options.http_target);
  }

  int64_t start_ns = 0;
  std::barrier start(c, [&start_ns]() noexcept { start_ns = gil::KernelNowNs(); });
  const bool open_loop = options.rate > 0;
  const bool http = result.transport == "http";
  const double gap_ns = open_loop ? 1e9 / options.rate : 0;

  auto run = [&](Worker& w) {
    PayloadSource payloads(static_cast<size_t>(options.message_bytes), options.seed * 1000003 + w.index);
    std::string request, reply;
    bool failed = false;
    HttpReply http_reply;
    // One reply checked and, when measured, timed from since_ns; false when it is not a good reply.
    auto check = [&](std::string_view sent, const std::string& got, int status, int64_t since_ns, bool measured) {
      const int64_t done_ns = gil::KernelNowNs();
      if (status != 0 && (status < 200 || status > 299)) {
        ++w.non_2xx;
        if (w.messages.size() < kMaxMessagesPerConnection) {
          w.messages.push_back(fmt::format("connection {}: HTTP status {}", w.index, status));
        }
        return;
      }
      if (expect_echo && got != sent) {
        w.Note(Mismatch(sent, got));
        return;
      }
      if (measured) {
        w.latency_ns.Record(done_ns - since_ns);
        ++w.ok;
      }
    };
    auto next_request = [&] {
      if (options.payload.empty()) payloads.Next(request);
      else request = options.payload;
    };
    auto exchange = [&](int64_t intended_ns, bool measured) {
      next_request();
      const int64_t sent_ns = gil::KernelNowNs();
      try {
        if (http) {
          w.connection->Send(request);
          w.connection->Receive(http_reply);
        } else {
          w.connection->Exchange(request, reply);
        }
      } catch (const std::exception& e) {
        w.Note(e.what());
        failed = true;
        return;
      }
      if (http) check(request, http_reply.body, http_reply.status, open_loop ? intended_ns : sent_ns, measured);
      else check(request, reply, 0, open_loop ? intended_ns : sent_ns, measured);
    };
    // Pipelined (http, closed loop): n requests in one write, then their n replies in order.
    std::vector<std::string> batch;
    auto exchange_batch = [&](int64_t n, bool measured) {
      batch.clear();
      try {
        for (int64_t j = 0; j < n; ++j) {
          next_request();
          batch.push_back(request);
        }
        const int64_t sent_ns = gil::KernelNowNs();
        for (const auto& r : batch) w.connection->Send(r);
        for (const auto& r : batch) {
          w.connection->Receive(http_reply);
          check(r, http_reply.body, http_reply.status, sent_ns, measured);
        }
      } catch (const std::exception& e) {
        w.Note(e.what());
        failed = true;
      }
    };
    const int64_t pipeline = options.pipeline;
    if (pipeline > 1) {
      for (int64_t k = 0; k < w.warmup && !failed; k += pipeline) exchange_batch(std::min(pipeline, w.warmup - k), false);
    } else {
      for (int64_t k = 0; k < w.warmup && !failed; ++k) exchange(0, false);
    }
    start.arrive_and_wait();
    int64_t k = 0;
    for (; k < w.requests && !failed;) {
      if (pipeline > 1) {
        const int64_t n = std::min(pipeline, w.requests - k);
        exchange_batch(n, true);
        k += n;
        continue;
      }
      int64_t intended_ns = 0;
      if (open_loop) {
        intended_ns = start_ns + static_cast<int64_t>((static_cast<double>(k) * c + w.index) * gap_ns);
        if (gil::KernelNowNs() < intended_ns) SleepUntilNs(intended_ns);
      }
      exchange(intended_ns, true);
      ++k;
      if (options.think_us > 0 && !failed) {
        std::this_thread::sleep_for(std::chrono::microseconds(options.think_us));
      }
    }
    if (failed && pipeline > 1) k = std::max<int64_t>(0, k - static_cast<int64_t>(batch.size()));
    w.unsent = w.requests - k;
    w.finish_ns = gil::KernelNowNs();
    w.connection.reset();  // hang up before the summary, not at exit
  };

  std::vector<std::thread> threads;
  threads.reserve(c);
  for (auto& w : workers) threads.emplace_back(run, std::ref(w));
  for (auto& t : threads) t.join();

  int64_t finish_ns = start_ns;
  for (const Worker& w : workers) {
    result.requests += w.ok;
    result.errors += w.errors;
    result.non_2xx += w.non_2xx;
    result.unsent += w.unsent;
    result.latency_ns.Merge(w.latency_ns);
    finish_ns = std::max(finish_ns, w.finish_ns);
    for (const auto& m : w.messages) result.error_messages.push_back(m);
  }
  result.seconds = (finish_ns - start_ns) / 1e9;
  return result;
}

nlohmann::json LoadResult::ToJson() const {
  const auto us = [this](double p) { return latency_ns.Percentile(p) / 1000.0; };
  nlohmann::json cdf = nlohmann::json::array();
  for (const auto& [p, ns] : latency_ns.Cdf()) cdf.push_back({p, ns / 1000.0});
  nlohmann::json j = {
      {"requests", requests},
      {"errors", errors},
      {"seconds", seconds},
      {"req_per_s", req_per_s()},
      {"latency_us",
       {{"p50", us(50)},
        {"p90", us(90)},
        {"p99", us(99)},
        {"p999", us(99.9)},
        {"max", latency_ns.max() / 1000.0},
        {"min", latency_ns.min() / 1000.0},
        {"mean", latency_ns.Mean() / 1000.0},
        {"cdf", cdf}}},
      {"mode", options.rate > 0 ? "open" : "closed"},
      {"transport", transport},
      {"server", options.server},
      {"endpoint", options.endpoint},
      {"connections", options.connections},
      {"message_bytes", options.message_bytes},
      {"think_us", options.think_us},
      {"rate", options.rate},
      {"warmup", options.warmup},
      {"expect", options.expect_echo ? "echo" : "any"},
      {"unsent", unsent},
      {"protocol", options.protocol},
      {"target", options.protocol == "http" ? options.http_target : ""},
      {"pipeline", options.pipeline},
      {"error_messages", error_messages},
  };
  // Only http replies have a status: the framed transports leave non_2xx out (NA in runs.csv).
  if (options.protocol == "http") j["non_2xx"] = non_2xx;
  return j;
}

std::string LoadResult::Summary() const {
  const auto us = [this](double p) { return latency_ns.Percentile(p) / 1000.0; };
  std::string out = fmt::format(
      "{} {} loop, {} connection(s), {} B messages\n"
      "requests {}  errors {}  non_2xx {}  seconds {:.3f}  req/s {:.1f}\n"
      "latency_us p50 {:.1f}  p90 {:.1f}  p99 {:.1f}  p99.9 {:.1f}  max {:.1f}  mean {:.1f}\n",
      transport, options.rate > 0 ? "open" : "closed", options.connections, options.message_bytes, requests,
      errors, non_2xx, seconds, req_per_s(), us(50), us(90), us(99), us(99.9), latency_ns.max() / 1000.0,
      latency_ns.Mean() / 1000.0);
  if (unsent > 0) out += fmt::format("unsent {} (their connections failed)\n", unsent);
  return out;
}

void WriteJsonAtomically(const std::string& path, const nlohmann::json& value) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << value.dump(2) << '\n';
    out.close();
    if (!out) {
      std::remove(tmp.c_str());
      throw std::runtime_error(fmt::format("cannot write {}", tmp));
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw std::runtime_error(fmt::format("cannot rename {} to {}", tmp, path));
  }
}

}  // namespace gillab::servers
