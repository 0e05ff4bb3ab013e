// clients_test.cc — the load generators' command lines and output parsers, on
// outputs captured from Debian's wrk 4.1, siege 4.0.7 and ab 2.3 against
// CPython's http.server (experiments/testdata/clients/).
#include "experiments/clients.h"

#include "servers/settings.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "experiments/results.h"
#include "gil/error.h"

namespace gillab::experiments {
namespace {

std::string Sample(const std::string& name) { return ReadFile(std::string(GILLAB_CLIENT_SAMPLES) + "/" + name); }

std::string Line(const std::vector<std::string>& args) {
  std::string line;
  for (const auto& a : args) line += a + " ";
  return line;
}

Point FirstPoint(const std::string& settings) { return ParseExperiment("[settings]\n" + settings, "x.toml").Points()[0]; }

constexpr const char* kOutside = "server_command = \"srv --port {port}\"\n";

TEST(WrkOutput, DoneScriptLineGivesCountsPercentilesAndRate) {
  const auto r = ParseWrkOutput(Sample("wrk_static.txt"));
  EXPECT_EQ(r["requests"], 855);
  EXPECT_EQ(r["errors"], 0);
  EXPECT_EQ(r["non_2xx"], 0);
  EXPECT_DOUBLE_EQ(r["seconds"].get<double>(), 2.09907);
  EXPECT_NEAR(r["req_per_s"].get<double>(), 855 / 2.09907, 1e-6);
  EXPECT_EQ(r["latency_us"]["p50"], 8028);
  EXPECT_EQ(r["latency_us"]["p90"], 49845);
  EXPECT_EQ(r["latency_us"]["p99"], 124567);
  EXPECT_EQ(r["latency_us"]["p999"], 154129);
  EXPECT_EQ(r["latency_us"]["max"], 163983);
}

TEST(WrkOutput, StatusErrorsAreNon2xxNotTransportErrors) {
  const auto r = ParseWrkOutput(Sample("wrk_404.txt"));
  EXPECT_EQ(r["requests"], 431);
  EXPECT_EQ(r["non_2xx"], 431);
  EXPECT_EQ(r["errors"], 0);
}

TEST(WrkOutput, WithoutTheDoneLineIsAnError) {
  EXPECT_THROW(ParseWrkOutput("Running 2s test @ http://x\n  855 requests in 2.10s\n"), std::runtime_error);
  EXPECT_THROW(ParseWrkOutput("GILLAB_WRK_JSON {\"requests\": 1}\n"), std::runtime_error);
  EXPECT_THROW(ParseWrkOutput("GILLAB_WRK_JSON {not json\n"), std::runtime_error);
}

TEST(SiegeOutput, JsonSummaryGivesRateMeanAndMaxButNoPercentiles) {
  const auto r = ParseSiegeOutput(Sample("siege_static.out"));
  EXPECT_EQ(r["requests"], 484);
  EXPECT_EQ(r["errors"], 0);
  EXPECT_EQ(r["non_2xx"], 0);
  EXPECT_DOUBLE_EQ(r["seconds"].get<double>(), 1.60);
  EXPECT_DOUBLE_EQ(r["req_per_s"].get<double>(), 302.50);
  EXPECT_DOUBLE_EQ(r["latency_us"]["max"].get<double>(), 100000);
  EXPECT_DOUBLE_EQ(r["latency_us"]["mean"].get<double>(), 10000);
  // NA, never 0: siege has no percentiles.
  EXPECT_FALSE(r["latency_us"].contains("p50"));
  EXPECT_FALSE(r["latency_us"].contains("p99"));
}

TEST(SiegeOutput, UnsuccessfulTransactionsAreNon2xx) {
  const auto r = ParseSiegeOutput(Sample("siege_404.out"));
  EXPECT_EQ(r["requests"], 472);
  EXPECT_EQ(r["non_2xx"], 472);
  EXPECT_EQ(r["errors"], 0);
  EXPECT_THROW(ParseSiegeOutput("siege aborted due to excessive socket failure\n"), std::runtime_error);
}

TEST(AbOutput, ReportGivesCountsRateAndMillisecondPercentiles) {
  const auto r = ParseAbOutput(Sample("ab_static.txt"));
  EXPECT_EQ(r["requests"], 400);
  EXPECT_EQ(r["errors"], 0);
  EXPECT_EQ(r["non_2xx"], 0);
  EXPECT_DOUBLE_EQ(r["seconds"].get<double>(), 1.213);
  EXPECT_DOUBLE_EQ(r["req_per_s"].get<double>(), 329.77);
  EXPECT_DOUBLE_EQ(r["latency_us"]["p50"].get<double>(), 3000);
  EXPECT_DOUBLE_EQ(r["latency_us"]["p90"].get<double>(), 47000);
  EXPECT_DOUBLE_EQ(r["latency_us"]["p99"].get<double>(), 92000);
  EXPECT_DOUBLE_EQ(r["latency_us"]["max"].get<double>(), 109000);
  EXPECT_DOUBLE_EQ(r["latency_us"]["mean"].get<double>(), 12130);
  EXPECT_FALSE(r["latency_us"].contains("p999"));
}

TEST(AbOutput, Non2xxLineIsCountedAndAMissingReportIsAnError) {
  const auto r = ParseAbOutput(Sample("ab_404.txt"));
  EXPECT_EQ(r["requests"], 100);
  EXPECT_EQ(r["non_2xx"], 100);
  EXPECT_THROW(ParseAbOutput("apr_socket_connect(): Connection refused (111)\n"), std::runtime_error);
}

TEST(ClientsRow, EveryParserFillsTheSameResultsColumns) {
  // Whichever client ran, the row has req/s, errors and non_2xx; NA only for what it cannot say.
  const Point p = FirstPoint("");
  for (const auto& [name, result] : std::vector<std::pair<std::string, nlohmann::json>>{
           {"wrk", ParseWrkOutput(Sample("wrk_static.txt"))},
           {"siege", ParseSiegeOutput(Sample("siege_static.out"))},
           {"ab", ParseAbOutput(Sample("ab_static.txt"))}}) {
    const Row row = MakeRow(p, 0, result, nlohmann::json(), RunTiming{});
    EXPECT_FALSE(row.at("req_per_s").empty()) << name;
    EXPECT_EQ(row.at("errors"), "0") << name;
    EXPECT_EQ(row.at("non_2xx"), "0") << name;
    EXPECT_FALSE(row.at("latency_max_us").empty()) << name;
    EXPECT_EQ(row.at("latency_p50_us").empty(), name == "siege") << name;
  }
}

TEST(ClientsArgs, WrkSiegeAndAbTakeTheirOptionsFromTheSettings) {
  const Point p = FirstPoint(std::string(kOutside) + "connections = 8\nclient_threads = 2\nduration_s = 10\nhttp_target = \"/primes/100\"\n");
  auto call = [&](const char* client) {
    return Line(FindLoadClient(client)->args({.point = p, .gillab_bin = "/bin/gillab", .endpoint = "tcp://127.0.0.1:8080",
                                              .json_path = "/tmp/l.json", .warmup_requests = 0, .source_dir = "/src"}));
  };
  const std::string wrk = call("wrk");
  EXPECT_NE(wrk.find("-c 8 -t 2 -d 10s --latency -s /src/experiments/clients/wrk_report.lua http://127.0.0.1:8080/primes/100"),
            std::string::npos)
      << wrk;
  EXPECT_NE(call("siege").find("-c 8 -t 10S http://127.0.0.1:8080/primes/100"), std::string::npos) << call("siege");
  EXPECT_NE(call("ab").find("-k -q -c 8 -t 10 -n"), std::string::npos) << call("ab");
  const std::string gillab = call("gillab");
  EXPECT_NE(gillab.find("--protocol http "), std::string::npos) << gillab;
  EXPECT_NE(gillab.find("--target /primes/100"), std::string::npos) << gillab;
  EXPECT_EQ(gillab.find("--server "), std::string::npos) << gillab;  // an outside server is no gillab kind
}

TEST(ClientsArgs, WrkNeverGetsMoreThreadsThanConnections) {
  const Point p = FirstPoint(std::string(kOutside) + "client = \"siege\"\nconnections = 1\nclient_threads = 4\n");
  const std::string wrk = Line(FindLoadClient("wrk")->args({.point = p, .gillab_bin = "", .endpoint = "tcp://h:1",
                                                            .json_path = "", .warmup_requests = 0, .source_dir = "/s"}));
  EXPECT_NE(wrk.find("-c 1 -t 1 "), std::string::npos) << wrk;
}

TEST(ClientsSettings, HttpClientsNeedAnHttpServerAndBadNamesAreRefused) {
  auto error_of = [](const std::string& settings) -> std::string {
    try {
      ParseExperiment("[settings]\n" + settings, "x.toml");
    } catch (const UsageError& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_NE(error_of("client = \"wrk\"\n").find("client wrk speaks HTTP"), std::string::npos);
  EXPECT_NE(error_of("client = \"wget\"\n").find("client must be one of gillab, wrk, siege, ab"), std::string::npos);
  EXPECT_NE(error_of("server_command = \"srv\"\n").find("{port}"), std::string::npos);
  EXPECT_NE(error_of("http_target = \"static\"\n").find("starting with '/'"), std::string::npos);
  EXPECT_NE(error_of("pipeline = 4\n").find("pipeline applies"), std::string::npos);
  EXPECT_NE(error_of(std::string(kOutside) + "client = \"wrk\"\nconnections = 1\nclient_threads = 2\n").find("wrk needs"), std::string::npos);
  EXPECT_EQ(error_of(std::string(kOutside) + "client = \"wrk\"\nconnections = 8\n"), "");
  // The blocking server's one-connection rule does not bind an outside server.
  EXPECT_EQ(error_of(std::string(kOutside) + "server = \"blocking\"\nconnections = 8\n"), "");
}

TEST(ClientsSettings, TheClientSettingAcceptsExactlyTheClientTable) {
  // The setting's rule lives in servers/settings.cc, which cannot see this table.
  EXPECT_EQ(LoadClientNames(), servers::LoadClientSettingNames());
}

TEST(ClientsUrl, EndpointAndTargetMakeTheUrl) {
  EXPECT_EQ(HttpUrl("tcp://127.0.0.1:8080", "/static"), "http://127.0.0.1:8080/static");
  EXPECT_EQ(HttpUrl("tcp://[::1]:80", "/"), "http://[::1]:80/");
}

}  // namespace
}  // namespace gillab::experiments
