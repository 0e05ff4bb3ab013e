// shard.cc — round-robin assignment of (point, repetition) runs to shards.
#include "experiments/shard.h"

#include <charconv>

#include <fmt/core.h>

#include "gil/error.h"

namespace gillab::experiments {
namespace {

constexpr int kMaxShards = 1'000'000;
constexpr const char* kAssignment = "round robin: run i = repetition * points + point goes to shard i mod N";

bool ParseInt(std::string_view text, int& out) {
  if (text.empty()) return false;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), out);
  return error == std::errc() && end == text.data() + text.size();
}

}  // namespace

Shard ParseShard(std::string_view text) {
  size_t slash = text.find('/');
  Shard shard;
  if (slash == std::string_view::npos || !ParseInt(text.substr(0, slash), shard.index) ||
      !ParseInt(text.substr(slash + 1), shard.count))
    throw UsageError(fmt::format("--shard {}: expected K/N (shard K of N, counting from 0), e.g. 0/4", text));
  if (shard.count < 1 || shard.count > kMaxShards)
    throw UsageError(fmt::format("--shard {}: N must be 1..{}", text, kMaxShards));
  if (shard.index < 0 || shard.index >= shard.count)
    throw UsageError(fmt::format("--shard {}: K must be 0..{} (shards count from 0)", text, shard.count - 1));
  return shard;
}

int ShardOf(RunId run, int points, int count) {
  const int64_t i = static_cast<int64_t>(run.repetition) * points + run.point;
  return static_cast<int>(i % count);
}

std::vector<RunId> ShardRuns(const Experiment& e, Shard shard) {
  const int points = static_cast<int>(e.Points().size());
  std::vector<RunId> runs;
  for (int rep = 0; rep < e.repetitions; ++rep)
    for (int p = 0; p < points; ++p)
      if (ShardOf({p, rep}, points, shard.count) == shard.index) runs.push_back({p, rep});
  return runs;
}

nlohmann::json ShardJson(const Experiment& e, Shard shard) {
  nlohmann::json runs = nlohmann::json::array();
  for (const RunId& r : ShardRuns(e, shard)) runs.push_back({r.point, r.repetition});
  return {{"index", shard.index}, {"count", shard.count}, {"assignment", kAssignment}, {"runs", runs}};
}

Shard ShardFromJson(const nlohmann::json& record) {
  if (record.is_null()) return Shard{};
  if (!record.is_object() || !record.contains("index") || !record.contains("count") ||
      !record["index"].is_number_integer() || !record["count"].is_number_integer())
    throw UsageError(fmt::format("meta.json: malformed shard record {}", record.dump()));
  return ParseShard(fmt::format("{}/{}", record["index"].get<int>(), record["count"].get<int>()));
}

}  // namespace gillab::experiments
