// load_command.cc — `gillab load` (design §5): flags -> LoadOptions -> RunLoad,
// a readable summary on stdout, optionally one JSON object in a file.
//
// Exit status: 0 when every request got its correct reply, 1 when any error
// or non-2xx reply was counted (the summary is printed first), 2 for bad usage.
// Flags that set an experiment setting are checked by its one rule
// (servers/settings.h).
#include <sys/resource.h>

#include <stdexcept>

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include "gil/error.h"
#include "servers/commands.h"
#include "servers/load_client.h"
#include "servers/settings.h"

namespace gillab::servers {

void AddLoadCommand(CLI::App& app) {
  auto options = std::make_shared<LoadOptions>();
  auto json_path = std::make_shared<std::string>();
  auto expect = std::make_shared<std::string>("echo");
  CLI::App* load = app.add_subcommand("load", "drive a server with requests and report latency");
  load->add_option("--endpoint", options->endpoint, "tcp://HOST:PORT or ipc://NAME")->required();
  load->add_option("--requests", options->requests, "measured requests over all connections")
      ->required()
      ->check(SettingValidator("requests"));
  auto* bytes = load->add_option("--message-bytes", options->message_bytes, "random payload size S")
                    ->check(SettingValidator("message_bytes"));
  auto* payload = load->add_option("--payload", options->payload,
                                   "send these bytes as every request instead of random ones (e.g. 20000 for "
                                   "--handler primes)");
  bytes->excludes(payload);
  load->add_option("--connections", options->connections, "connections: one thread each, or one epoll loop for 128 and more")
      ->check(SettingValidator("connections"))
      ->capture_default_str();
  auto* think = load->add_option("--think-us", options->think_us, "closed loop: sleep after each reply")
                    ->check(SettingValidator("think_us"));
  auto* rate = load->add_option("--rate", options->rate, "open loop: requests/s over all connections")
                   ->check(SettingValidator("rate"));
  think->excludes(rate);
  load->add_option("--json", *json_path, "write the result as one JSON object to FILE");
  load->add_option("--server", options->server,
                   "server kind, which tells the transport (default: tcp:// stream, ipc:// multiprocessing)")
      ->check(SettingValidator("server"));
  load->add_option("--warmup", options->warmup, "unmeasured requests first, over all connections")
      ->capture_default_str();
  load->add_option("--expect", *expect, "echo: reply must equal the request; any: accept any reply")
      ->check(SettingValidator("expect"))
      ->capture_default_str();
  load->add_option("--reply-timeout-ms", options->reply_timeout_ms, "a reply later than this is an error")
      ->capture_default_str();
  load->add_option("--seed", options->seed, "payload PRNG seed")->capture_default_str();
  load->add_option("--protocol", options->protocol, "frame (size-prefixed) or http (HTTP/1.1 keep-alive)")
      ->check(SettingValidator("protocol"))
      ->capture_default_str();
  load->add_option("--target", options->http_target, "http: POST /echo sends the payload; any other path is a GET")
      ->check(SettingValidator("http_target"))
      ->capture_default_str();
  load->add_option("--pipeline", options->pipeline, "http: requests sent back to back per connection (closed loop)")
      ->check(SettingValidator("pipeline"))
      ->capture_default_str();
  load->callback([options, json_path, expect, load] {
    if (options->payload.empty() && load->count("--message-bytes") == 0) {
      throw CLI::RequiredError("--message-bytes or --payload");
    }
    if (!options->payload.empty()) options->message_bytes = static_cast<int64_t>(options->payload.size());
    options->expect_echo = *expect != "any";  // "" (the experiment default) is echo here
    // --connections 10000 (C10K) needs more descriptors than the usual soft limit of 1024.
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
      limit.rlim_cur = limit.rlim_max;
      setrlimit(RLIMIT_NOFILE, &limit);
    }
    const LoadResult result = RunLoad(*options);
    fmt::print("{}", result.Summary());
    std::fflush(stdout);
    for (const auto& message : result.error_messages) fmt::print(stderr, "gillab load: {}\n", message);
    if (!json_path->empty()) WriteJsonAtomically(*json_path, result.ToJson());
    if (result.errors > 0 || result.non_2xx > 0) {
      throw std::runtime_error(fmt::format("load: {} error(s), {} non-2xx repl{}", result.errors, result.non_2xx,
                                           result.non_2xx == 1 ? "y" : "ies"));
    }
  });
}

}  // namespace gillab::servers
