// experiment.cc — loading, validating, overriding and expanding experiment files.
#include "experiments/experiment.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <climits>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>

#include <fmt/core.h>
#include <fmt/ranges.h>
#include <toml++/toml.h>

#include "experiments/clients.h"
#include "gil/error.h"
#include "servers/engine_kinds.h"
#include "servers/server_kinds.h"
#include "servers/settings.h"

namespace gillab::experiments {
namespace {

using Type = SettingType;

// Keys allowed at the top level of an experiment file.
const std::vector<std::string> kTopLevelKeys = {"name",        "description", "repetitions", "warmup",
                                                "warmup_runs", "settings",    "sweep"};
// Settings that may also be written at the top level (the simulator's, design §13).
const std::vector<std::string> kTopLevelSettings = {"mode", "cores", "seed"};
constexpr std::string_view kVariant = "variant";
// A sweep larger than this is a mistake (each point is at least one fresh
// server and client), and expanding it would exhaust memory before saying so.
constexpr int64_t kMaxPoints = 10000;

std::vector<std::string> SettingNames() {
  std::vector<std::string> names;
  for (const auto& spec : SettingSpecs()) names.emplace_back(spec.name);
  return names;
}

std::string UnknownKeyMessage(std::string_view key, const std::vector<std::string>& valid) {
  std::string nearest = NearestName(key, valid);
  if (!nearest.empty()) return fmt::format("unknown key '{}' (did you mean '{}'?)", key, nearest);
  return fmt::format("unknown key '{}'", key);
}

std::string Join(const std::vector<std::string>& items, std::string_view sep) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += sep;
    out += items[i];
  }
  return out;
}

// Where a message points: "FILE:LINE" for a file, "-s ARG" for an override.
struct Where {
  std::string text;
  [[noreturn]] void Fail(const std::string& message) const { throw UsageError(text + ": " + message); }
};

Where At(const std::string& path, const toml::node& node) {
  const auto& begin = node.source().begin;
  if (begin.line == 0) return {path};
  return {fmt::format("{}:{}", path, begin.line)};
}

std::string FormatDouble(double value) { return fmt::format("{}", value); }

// Text of a TOML scalar for a setting of the given type, or nullopt when the type is wrong.
std::optional<std::string> NodeText(const SettingSpec& spec, const toml::node& node) {
  switch (spec.type) {
    case Type::kInt:
      if (auto v = node.as_integer()) return std::to_string(v->get());
      return std::nullopt;
    case Type::kDouble:
      if (auto v = node.as_integer()) return std::to_string(v->get());
      if (auto v = node.as_floating_point()) return FormatDouble(v->get());
      return std::nullopt;
    case Type::kBool:
      if (auto v = node.as_boolean()) return v->get() ? "true" : "false";
      return std::nullopt;
    case Type::kString:
      if (auto v = node.as_string()) return v->get();
      return std::nullopt;
    case Type::kPriorities: {
      if (auto v = node.as_string()) return v->get();
      const toml::table* table = node.as_table();
      if (!table) return std::nullopt;
      std::vector<std::string> parts;
      for (auto&& [role, value] : *table) {
        if (auto i = value.as_integer()) parts.push_back(fmt::format("{}={}", role.str(), i->get()));
        else if (auto s = value.as_string()) parts.push_back(fmt::format("{}={}", role.str(), s->get()));
        else return std::nullopt;
      }
      return Join(parts, ",");
    }
  }
  return std::nullopt;
}

std::string_view TypeName(Type type) {
  switch (type) {
    case Type::kInt: return "an integer";
    case Type::kDouble: return "a number";
    case Type::kBool: return "a boolean";
    case Type::kString: return "a string";
    case Type::kPriorities: return "a string like \"io=1,cpu=0\" or a table";
  }
  return "?";
}

std::string_view NodeTypeName(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a float";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::array: return "an array";
    case toml::node_type::table: return "a table";
    default: return "a date/time";
  }
}

// One setting value from a TOML node, validated; errors point at the node.
std::string SettingFromNode(const std::string& path, const std::string& base_dir, const SettingSpec& spec,
                            const toml::node& node) {
  auto text = NodeText(spec, node);
  if (!text)
    At(path, node).Fail(fmt::format("'{}' must be {}, not {}", spec.name, TypeName(spec.type), NodeTypeName(node)));
  try {
    return servers::CheckSetting(spec, *text, base_dir);  // the setting's one rule
  } catch (const std::exception& e) {
    At(path, node).Fail(e.what());
  }
}

const SettingSpec& RequireSetting(const Where& where, std::string_view key) {
  const SettingSpec* spec = FindSetting(key);
  if (!spec) where.Fail(UnknownKeyMessage(key, SettingNames()));
  return *spec;
}

// Label of a variant without an explicit one: its values joined, "toy newgil".
std::string DefaultLabel(const Variant& v) {
  std::vector<std::string> parts;
  for (const auto& [key, value] : v.settings) {
    const SettingSpec* spec = FindSetting(key);
    bool word = spec && spec->type == Type::kString && !value.empty();
    parts.push_back(word ? value : fmt::format("{}={}", key, value));
  }
  return parts.empty() ? "default" : Join(parts, " ");
}

Variant VariantFromNode(const std::string& path, const std::string& base_dir, const toml::node& node) {
  const toml::table* table = node.as_table();
  if (!table) At(path, node).Fail(fmt::format("each 'variant' must be a table, not {}", NodeTypeName(node)));
  // Keep file order: toml++ tables iterate sorted by key.
  std::vector<std::pair<std::pair<uint32_t, uint32_t>, std::pair<std::string, const toml::node*>>> entries;
  for (auto&& [key, value] : *table)
    entries.push_back({{key.source().begin.line, key.source().begin.column}, {std::string(key.str()), &value}});
  std::sort(entries.begin(), entries.end(), [](auto& a, auto& b) { return a.first < b.first; });
  Variant variant;
  for (const auto& [column, entry] : entries) {
    const auto& [key, value] = entry;
    if (key == "label") {
      auto label = value->as_string();
      if (!label) At(path, *value).Fail("variant 'label' must be a string");
      variant.label = label->get();
      continue;
    }
    std::vector<std::string> valid = SettingNames();
    valid.push_back("label");
    const SettingSpec* spec = FindSetting(key);
    if (!spec) At(path, *value).Fail(UnknownKeyMessage(key, valid));
    variant.settings.push_back({key, SettingFromNode(path, base_dir, *spec, *value)});
  }
  if (variant.label.empty()) variant.label = DefaultLabel(variant);
  return variant;
}

std::string TomlQuote(std::string_view text) {
  std::string out = "\"";
  for (unsigned char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c == 0x7f) out += fmt::format("\\u{:04X}", c);
        else out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

std::string TomlValue(const std::string& key, const std::string& value) {
  const SettingSpec* spec = FindSetting(key);
  if (spec && (spec->type == Type::kInt || spec->type == Type::kDouble || spec->type == Type::kBool)) return value;
  return TomlQuote(value);
}

int EditDistance(std::string_view a, std::string_view b) {
  std::vector<int> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = static_cast<int>(j);
  for (size_t i = 1; i <= a.size(); ++i) {
    int diagonal = row[0];
    row[0] = static_cast<int>(i);
    for (size_t j = 1; j <= b.size(); ++j) {
      int next = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = row[j];
      row[j] = next;
    }
  }
  return row[b.size()];
}

// Cross-setting checks for one resolved point.
void ValidatePoint(const Experiment& e, const Point& p) {
  auto fail = [&](const std::string& message) {
    throw UsageError(fmt::format("{}: point {} ({}): {}", e.path, p.id, p.Describe(), message));
  };
  const auto& s = p.settings;
  const servers::EngineKind& engine = servers::RequireEngineKind(s.at("engine"));
  if (engine.has_lock && !engine.AcceptsPolicy(s.at("policy")))
    fail(fmt::format("{}; policy must be {} (got '{}')", engine.policy_note, fmt::join(engine.policies, " or "),
                     s.at("policy")));
  if (SettingDouble(s, "rate") > 0 && SettingInt(s, "think_us") > 0)
    fail("think_us (closed loop) and rate (open loop) exclude each other; set one of them to 0");
  // An outside server (server_command) is not a gillab server kind: the kind's
  // rules do not apply to it.
  const bool outside = !s.at("server_command").empty();
  const servers::ServerKind& server = servers::RequireServerKind(s.at("server"));
  if (!outside && server.one_connection_at_a_time && SettingInt(s, "connections") > 1)
    fail(fmt::format("the {} server serves one connection at a time; connections must be 1", server.name));
  const LoadClient* client = FindLoadClient(s.at("client"));
  if (client && client->http_only && !PointSpeaksHttp(s))
    fail(fmt::format("client {} speaks HTTP: set protocol = \"http\" or a server_command", client->name));
  if (SettingInt(s, "pipeline") > 1 && (s.at("client") != "gillab" || !PointSpeaksHttp(s)))
    fail("pipeline applies to the gillab client over http");
  if (SettingInt(s, "client_threads") > SettingInt(s, "connections") && s.at("client") == "wrk")
    fail("wrk needs at least as many connections as client_threads");
  // A simulated point is one `gillab simulate-serve` process: gillab's own
  // server and client in virtual time; nothing outside can run there.
  if (s.at("mode") == "simulate") {
    if (outside) fail("mode = \"simulate\" runs gillab's own servers; an outside server_command cannot be simulated");
    if (s.at("client") != "gillab")
      fail(fmt::format("mode = \"simulate\" drives the server with gillab load in virtual time; client {} cannot be "
                       "simulated (use client = \"gillab\")", s.at("client")));
  }
}

// cores and seed mean nothing to a real run: a value given to them where only
// real points would see it is refused instead of silently ignored. A swept
// axis is refused as soon as one point runs real (its real points would be
// the same run repeated); a fixed value when no point is simulated.
void CheckSimulateOnlySettings(const Experiment& e, const std::vector<Point>& points,
                               const std::map<std::string, uint32_t>& fixed_lines,
                               const std::map<std::string, uint32_t>& axis_lines) {
  const bool any_simulated =
      std::any_of(points.begin(), points.end(), [](const Point& p) { return p.settings.at("mode") == "simulate"; });
  auto where = [&](const std::map<std::string, uint32_t>& lines, const std::string& key) {
    auto it = lines.find(key);
    return it == lines.end() ? e.path : fmt::format("{}:{}", e.path, it->second);
  };
  for (const std::string key : {"cores", "seed"}) {
    const bool swept = std::any_of(e.axes.begin(), e.axes.end(), [&](const Axis& a) { return a.key == key; });
    for (const Point& p : points) {
      if (p.settings.at("mode") != "real") continue;
      if (swept)
        throw UsageError(fmt::format("{}: '{}' is swept but point {} ({}) runs real, which ignores it; sweep {} in "
                                     "a simulate-only experiment (mode = \"simulate\")",
                                     where(axis_lines, key), key, p.id, p.Describe(), key));
      for (const Axis& a : e.axes)
        for (const Variant& v : a.variants)
          if (v.label == p.variant)
            for (const auto& [k, value] : v.settings)
              if (k == key)
                throw UsageError(fmt::format("{}: variant '{}' sets '{}' but point {} ({}) runs real, which ignores it",
                                             where(axis_lines, std::string(kVariant)), v.label, key, p.id,
                                             p.Describe()));
    }
    if (!any_simulated && !swept && e.settings.at(key) != FindSetting(key)->default_value)
      throw UsageError(fmt::format("{}: '{}' applies to mode = \"simulate\" only, and every point runs real",
                                   where(fixed_lines, key), key));
  }
}

// Applies one `-s key=value` to the experiment.
void ApplyOverride(Experiment& e, const std::string& arg, const std::string& base_dir) {
  Where where{"-s " + arg};
  auto eq = arg.find('=');
  if (eq == std::string::npos || eq == 0) where.Fail("expected key=value");
  std::string key = arg.substr(0, eq);
  std::string text = arg.substr(eq + 1);

  // The value as TOML if it parses as one (numbers, booleans, arrays, quoted strings).
  toml::table parsed;
  const toml::node* node = nullptr;
  try {
    parsed = toml::parse("v = " + text);
    node = parsed.get("v");
  } catch (const toml::parse_error&) {
    node = nullptr;
  }
  const toml::array* array = node ? node->as_array() : nullptr;

  if (key == "repetitions" || key == "warmup" || key == "warmup_runs") {
    auto v = node ? node->as_integer() : nullptr;
    const int64_t min = key == "repetitions" ? 1 : 0;
    const int64_t max = key == "warmup" ? INT64_MAX : INT_MAX;
    if (!v || v->get() < min || v->get() > max) where.Fail(fmt::format("'{}' must be an integer from {} to {}", key, min, max));
    if (key == "repetitions") e.repetitions = static_cast<int>(v->get());
    else if (key == "warmup") e.warmup = v->get();
    else e.warmup_runs = static_cast<int>(v->get());
    return;
  }
  if (key == "name" || key == "description") {
    std::string value = node && node->as_string() ? node->as_string()->get() : text;
    (key == "name" ? e.name : e.description) = value;
    return;
  }
  auto axis = std::find_if(e.axes.begin(), e.axes.end(), [&](const Axis& a) { return a.key == key; });
  if (key == kVariant) {
    if (axis == e.axes.end()) where.Fail("this experiment has no 'variant' axis");
    std::vector<std::string> labels;
    if (array) {
      for (const auto& item : *array) {
        if (!item.as_string()) where.Fail("variant labels must be strings");
        labels.push_back(item.as_string()->get());
      }
    } else {
      labels.push_back(node && node->as_string() ? node->as_string()->get() : text);
    }
    std::vector<Variant> kept;
    for (const auto& label : labels) {
      auto it = std::find_if(axis->variants.begin(), axis->variants.end(), [&](const Variant& v) { return v.label == label; });
      if (it == axis->variants.end()) where.Fail(fmt::format("no variant labelled '{}' (have: {})", label, Join(axis->values, ", ")));
      kept.push_back(*it);
    }
    if (kept.empty()) where.Fail("empty sweep for 'variant'");
    axis->variants = kept;
    axis->values = labels;
    return;
  }

  const SettingSpec& spec = RequireSetting(where, key);
  auto one = [&](const toml::node* value_node) -> std::string {
    std::string raw;
    if (value_node) {
      auto nt = NodeText(spec, *value_node);
      // Strings may be written bare: -s server_cpus=0 is the text "0".
      if (!nt && (spec.type == Type::kString || spec.type == Type::kPriorities) && !array) nt = text;
      if (!nt) where.Fail(fmt::format("'{}' must be {}, not {}", key, TypeName(spec.type), NodeTypeName(*value_node)));
      raw = *nt;
    } else {
      raw = text;  // not TOML: a bare string
    }
    try {
      return servers::CheckSetting(spec, raw, base_dir);
    } catch (const std::exception& ex) {
      where.Fail(ex.what());
    }
  };
  if (array && spec.type != Type::kPriorities) {
    Axis replacement{key, {}, {}};
    for (const auto& item : *array) replacement.values.push_back(one(&item));
    if (replacement.values.empty()) where.Fail(fmt::format("empty sweep for '{}'", key));
    if (axis != e.axes.end()) *axis = replacement;
    else e.axes.push_back(replacement);
    return;
  }
  std::string value = one(node);
  if (axis != e.axes.end()) e.axes.erase(axis);
  e.settings[key] = value;
  // An override wins over a variant that sets the same key.
  for (auto& a : e.axes)
    for (auto& v : a.variants)
      for (auto& [k, val] : v.settings)
        if (k == key) val = value;
}

}  // namespace

std::string NearestName(std::string_view name, const std::vector<std::string>& candidates) {
  std::string best;
  int best_distance = std::max<int>(2, static_cast<int>(name.size()) / 3) + 1;
  for (const auto& c : candidates) {
    int d = EditDistance(name, c);
    // A prefix is a likely abbreviation: "think" for "think_us".
    if (name.size() >= 3 && c.rfind(name, 0) == 0) d = std::min(d, 1);
    if (d < best_distance) best_distance = d, best = c;
  }
  return best;
}

int64_t SettingInt(const Settings& settings, const std::string& name) {
  const std::string& text = settings.at(name);
  try {
    return std::stoll(text);
  } catch (const std::exception&) {
    throw UsageError(fmt::format("{} must be an integer (got '{}')", name, text));
  }
}

double SettingDouble(const Settings& settings, const std::string& name) {
  const std::string& text = settings.at(name);
  try {
    return std::stod(text);
  } catch (const std::exception&) {
    throw UsageError(fmt::format("{} must be a number (got '{}')", name, text));
  }
}

bool SettingBool(const Settings& settings, const std::string& name) { return settings.at(name) == "true"; }

std::string Point::Describe() const {
  std::vector<std::string> parts;
  for (const auto& [key, value] : swept) parts.push_back(fmt::format("{}={}", key, value));
  return parts.empty() ? "(single point)" : Join(parts, " ");
}

std::vector<Point> Experiment::Points() const {
  std::vector<Point> points;
  std::vector<size_t> index(axes.size(), 0);
  for (;;) {
    Point p;
    p.id = static_cast<int>(points.size());
    p.settings = settings;
    for (size_t a = 0; a < axes.size(); ++a) {
      const Axis& axis = axes[a];
      p.swept.push_back({axis.key, axis.values[index[a]]});
      if (axis.key == kVariant) {
        const Variant& v = axis.variants[index[a]];
        p.variant = v.label;
        for (const auto& [key, value] : v.settings) p.settings[key] = value;
      } else {
        p.settings[axis.key] = axis.values[index[a]];
      }
    }
    points.push_back(std::move(p));
    // Odometer: the last axis varies fastest.
    size_t a = axes.size();
    while (a > 0) {
      --a;
      if (++index[a] < axes[a].values.size()) break;
      index[a] = 0;
      if (a == 0) return points;
    }
    if (axes.empty()) return points;
  }
}

std::string Experiment::ToToml() const {
  std::string out = fmt::format("# The resolved experiment, written by gillab run from {}.\n", path);
  if (!overrides.empty()) {
    out += "# Overrides applied:";
    for (const auto& o : overrides) out += " -s " + o;
    out += "\n";
  }
  out += "# `gillab run` on this file runs the same points in the same order.\n";
  out += fmt::format("name = {}\ndescription = {}\nrepetitions = {}\nwarmup = {}\nwarmup_runs = {}\n\n",
                     TomlQuote(name), TomlQuote(description), repetitions, warmup, warmup_runs);
  std::set<std::string> swept;
  for (const auto& a : axes) swept.insert(a.key);
  out += "[settings]\n";
  for (const auto& spec : SettingSpecs()) {
    std::string key(spec.name);
    if (swept.count(key)) continue;
    out += fmt::format("{} = {}\n", key, TomlValue(key, settings.at(key)));
  }
  out += "\n[sweep]\n";
  for (const auto& a : axes) {
    if (a.key == kVariant) {
      out += "variant = [\n";
      for (const auto& v : a.variants) {
        out += "  { label = " + TomlQuote(v.label);
        for (const auto& [key, value] : v.settings) out += fmt::format(", {} = {}", key, TomlValue(key, value));
        out += " },\n";
      }
      out += "]\n";
      continue;
    }
    std::vector<std::string> values;
    for (const auto& v : a.values) values.push_back(TomlValue(a.key, v));
    out += fmt::format("{} = [{}]\n", a.key, Join(values, ", "));
  }
  return out;
}

std::string Experiment::Describe() const {
  std::string out = fmt::format("experiment {} ({})\n", name, path);
  if (!description.empty()) out += "  " + description + "\n";
  std::set<std::string> swept;
  for (const auto& a : axes) swept.insert(a.key);
  out += "fixed settings:\n";
  for (const auto& spec : SettingSpecs()) {
    std::string key(spec.name);
    if (swept.count(key)) continue;
    const std::string& value = settings.at(key);
    out += fmt::format("  {:<20} {}{}\n", key, value.empty() ? "(none)" : value,
                       value == spec.default_value ? "" : "  *");
  }
  out += "sweep (last axis fastest):\n";
  if (axes.empty()) out += "  (none: a single point)\n";
  for (const auto& a : axes) {
    out += fmt::format("  {:<20} {}\n", a.key, Join(a.values, " | "));
    for (const auto& v : a.variants) {
      std::vector<std::string> parts;
      for (const auto& [k, val] : v.settings) parts.push_back(k + "=" + val);
      out += fmt::format("  {:<20}   {}: {}\n", "", v.label, Join(parts, " "));
    }
  }
  out += fmt::format("{} points x {} repetitions = {} runs (+{} warm-up run{}), {} warm-up requests per run\n",
                     Points().size(), repetitions, RunCount(), warmup_runs, warmup_runs == 1 ? "" : "s", warmup);
  return out;
}

Experiment ParseExperiment(std::string_view text, const std::string& path, const std::vector<std::string>& overrides) {
  toml::table root;
  try {
    root = toml::parse(text, path);
  } catch (const toml::parse_error& e) {
    throw UsageError(fmt::format("{}:{}: {}", path, e.source().begin.line, e.description()));
  }
  std::string base_dir = std::filesystem::path(path).parent_path().string();
  Experiment e;
  e.path = path;
  e.name = std::filesystem::path(path).stem().string();
  for (const auto& spec : SettingSpecs()) e.settings[std::string(spec.name)] = std::string(spec.default_value);

  auto integer = [&](const toml::node& node, std::string_view key, int64_t min, int64_t max) {
    auto v = node.as_integer();
    if (!v) At(path, node).Fail(fmt::format("'{}' must be an integer, not {}", key, NodeTypeName(node)));
    if (v->get() < min) At(path, node).Fail(fmt::format("'{}' must be at least {}", key, min));
    if (v->get() > max) At(path, node).Fail(fmt::format("'{}' must be at most {}", key, max));
    return v->get();
  };
  auto string = [&](const toml::node& node, std::string_view key) {
    auto v = node.as_string();
    if (!v) At(path, node).Fail(fmt::format("'{}' must be a string, not {}", key, NodeTypeName(node)));
    return v->get();
  };
  const toml::table* settings = nullptr;
  const toml::table* sweep = nullptr;
  // The simulator's keys may also stand at the top level, as the issue spells
  // them (`mode = "simulate"`, `cores = [2, 4]`): a value is a [settings] entry,
  // an array a [sweep] axis. One representation: the resolved file has them there.
  struct Entry {
    std::string key;
    uint32_t line;
    const toml::node* node;
  };
  std::vector<Entry> top_level_settings;
  for (auto&& [key_node, node] : root) {
    std::string key(key_node.str());
    if (key == "name") e.name = string(node, key);
    else if (key == "description") e.description = string(node, key);
    else if (key == "repetitions") e.repetitions = static_cast<int>(integer(node, key, 1, INT_MAX));
    else if (key == "warmup") e.warmup = integer(node, key, 0, INT64_MAX);
    else if (key == "warmup_runs") e.warmup_runs = static_cast<int>(integer(node, key, 0, INT_MAX));
    else if (key == "settings" || key == "sweep") {
      if (!node.is_table()) At(path, node).Fail(fmt::format("'{}' must be a table ([{}])", key, key));
      (key == "settings" ? settings : sweep) = node.as_table();
    } else if (std::find(kTopLevelSettings.begin(), kTopLevelSettings.end(), key) != kTopLevelSettings.end()) {
      top_level_settings.push_back({key, key_node.source().begin.line, &node});
    } else {
      std::vector<std::string> valid = kTopLevelKeys;
      valid.insert(valid.end(), kTopLevelSettings.begin(), kTopLevelSettings.end());
      std::string message = UnknownKeyMessage(key, valid);
      if (FindSetting(key)) message = fmt::format("'{}' belongs under [settings] or [sweep]", key);
      Where{fmt::format("{}:{}", path, key_node.source().begin.line)}.Fail(message);
    }
  }
  std::vector<Entry> fixed_entries, swept_entries;
  for (const Entry& entry : top_level_settings)
    (entry.node->is_array() ? swept_entries : fixed_entries).push_back(entry);
  if (settings) {
    for (auto&& [key_node, node] : *settings) {
      std::string key(key_node.str());
      Where where{fmt::format("{}:{}", path, key_node.source().begin.line)};
      if (node.is_array()) {
        RequireSetting(where, key);
        where.Fail(fmt::format("'{}' in [settings] is an array; sweep it under [sweep]", key));
      }
      fixed_entries.push_back({key, key_node.source().begin.line, &node});
    }
  }
  if (sweep)
    for (auto&& [key_node, node] : *sweep) swept_entries.push_back({std::string(key_node.str()), key_node.source().begin.line, &node});
  std::map<std::string, uint32_t> fixed_lines;
  for (const Entry& entry : fixed_entries) {
    Where where{fmt::format("{}:{}", path, entry.line)};
    const SettingSpec& spec = RequireSetting(where, entry.key);
    if (!fixed_lines.emplace(entry.key, entry.line).second)
      where.Fail(fmt::format("'{}' is set twice (at the top level and in [settings])", entry.key));
    e.settings[entry.key] = SettingFromNode(path, base_dir, spec, *entry.node);
  }
  std::map<std::string, uint32_t> axis_lines;
  {
    std::vector<std::pair<uint32_t, Axis>> axes;
    for (const Entry& entry : swept_entries) {
      const std::string& key = entry.key;
      const toml::node& node = *entry.node;
      Where where{fmt::format("{}:{}", path, entry.line)};
      if (key != kVariant) RequireSetting(where, key);
      const toml::array* array = node.as_array();
      if (!array) where.Fail(fmt::format("sweep axis '{}' must be an array, not {}", key, NodeTypeName(node)));
      if (array->empty()) where.Fail(fmt::format("empty sweep for '{}'", key));
      if (fixed_lines.count(key))
        where.Fail(fmt::format("'{}' is both fixed in [settings] and swept in [sweep]", key));
      if (!axis_lines.emplace(key, entry.line).second)
        where.Fail(fmt::format("'{}' is swept twice (at the top level and in [sweep])", key));
      Axis axis{key, {}, {}};
      std::set<std::string> seen;
      for (const auto& item : *array) {
        std::string value;
        if (key == kVariant) {
          axis.variants.push_back(VariantFromNode(path, base_dir, item));
          value = axis.variants.back().label;
        } else {
          value = SettingFromNode(path, base_dir, *FindSetting(key), item);
        }
        if (!seen.insert(value).second) At(path, item).Fail(fmt::format("'{}' appears twice in the sweep of '{}'", value, key));
        axis.values.push_back(value);
      }
      axes.push_back({entry.line, std::move(axis)});
    }
    std::stable_sort(axes.begin(), axes.end(), [](auto& a, auto& b) { return a.first < b.first; });
    for (auto& [line, axis] : axes) e.axes.push_back(std::move(axis));
  }
  // A key may be set by a variant or swept as an axis, not both.
  for (const auto& a : e.axes)
    for (const auto& v : a.variants)
      for (const auto& [key, value] : v.settings)
        for (const auto& b : e.axes)
          if (b.key == key)
            throw UsageError(fmt::format("{}: '{}' is both swept and set by variant '{}'", path, key, v.label));
  for (const auto& o : overrides) {
    ApplyOverride(e, o, "");
    e.overrides.push_back(o);
  }
  if (e.name.empty()) throw UsageError(fmt::format("{}: 'name' must not be empty", path));
  int64_t point_count = 1;
  for (const auto& a : e.axes) {
    point_count *= static_cast<int64_t>(a.values.size());
    if (point_count > kMaxPoints)
      throw UsageError(fmt::format("{}: the sweep has more than {} points; split it into several experiments", path,
                                   kMaxPoints));
  }
  const std::vector<Point> points = e.Points();
  for (const auto& p : points) ValidatePoint(e, p);
  CheckSimulateOnlySettings(e, points, fixed_lines, axis_lines);
  return e;
}

Experiment LoadExperiment(const std::string& path, const std::vector<std::string>& overrides) {
  std::ifstream in(path);
  if (!in) throw UsageError(fmt::format("cannot read experiment file {}: {}", path, std::strerror(errno)));
  std::stringstream buffer;
  buffer << in.rdbuf();
  return ParseExperiment(buffer.str(), path, overrides);
}

}  // namespace gillab::experiments
