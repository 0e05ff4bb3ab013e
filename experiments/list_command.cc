// list_command.cc — `gillab list`: what can be named in a command or an experiment file.
#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/core.h>
#include <toml++/toml.h>

#include "experiments/clients.h"
#include "experiments/commands.h"
#include "experiments/experiment.h"
#include "experiments/sysinfo.h"
#include "gil/gil.h"
#include "interp/vm.h"
#include "servers/engine_kinds.h"
#include "servers/server_kinds.h"

namespace gillab::experiments {
namespace {

namespace fs = std::filesystem;

std::vector<fs::path> Sorted(const fs::path& dir, const std::string& extension) {
  std::vector<fs::path> files;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec))
    if (entry.is_regular_file() && entry.path().extension() == extension) files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  return files;
}

std::string FirstSentence(std::string text) {
  std::replace(text.begin(), text.end(), '\n', ' ');
  size_t end = text.find(". ");
  if (end != std::string::npos) text.resize(end + 1);
  return text.size() > 110 ? text.substr(0, 107) + "..." : text;
}

}  // namespace

void AddListCommand(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand("list", "List policies, servers, engines, shipped programs and experiments");
  cmd->callback([] {
    fmt::print("policies (--policy):\n");
    for (const auto& name : gil::PolicyNames()) fmt::print("  {:<16} {}\n", name, gil::PolicySummary(name));
    fmt::print("  {:<16} {}\n", "stm", "software transactional memory: units run at once, conflicts abort and re-run (interp/stm_model.h)");
    fmt::print("servers (--server):\n");
    for (const auto& kind : servers::ServerKindTable())
      fmt::print("  {:<16} {} ({} transport)\n", kind.name, kind.summary, servers::TransportName(kind.transport));
    fmt::print("engines (--engine):\n");
    for (const auto& engine : servers::EngineKindTable()) fmt::print("  {:<16} {}\n", engine.name, engine.summary);
    fmt::print("load clients (experiment setting client):\n");
    for (const auto& client : LoadClients()) fmt::print("  {:<16} {}\n", client.name, client.help);
    fmt::print("programs (--handler, gillab vm) in {}:\n", interp::ProgramsDir());
    for (const auto& file : Sorted(interp::ProgramsDir(), ".gasm")) fmt::print("  {}\n", file.stem().string());
    fs::path experiments = fs::path(SourceDir()) / "experiments";
    fmt::print("experiments (gillab run FILE) in {}:\n", experiments.string());
    for (const auto& file : Sorted(experiments, ".toml")) {
      std::string description;
      try {
        description = toml::parse_file(file.string())["description"].value_or(std::string());
      } catch (const std::exception& e) {
        description = "(does not parse)";
      }
      fmt::print("  {:<24} {}\n", file.filename().string(), FirstSentence(description));
    }
    fmt::print("settings (experiment [settings]/[sweep], gillab run -s KEY=VALUE):\n");
    for (const auto& spec : SettingSpecs())
      fmt::print("  {:<20} {:<10} {}\n", spec.name, spec.default_value.empty() ? "\"\"" : spec.default_value, spec.help);
  });
}

}  // namespace gillab::experiments
