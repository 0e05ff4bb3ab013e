// framework.cc — see framework.h.
#include "interp/framework.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "gil/error.h"
#include "interp/assembler.h"
#include "interp/vm.h"

namespace gillab::interp {
namespace {

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsageError(fmt::format("cannot read {}", path.string()));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// Where LoadProgram would look for `handler` (vm.cc's rule: a path when it has
// a '/' or ends in .gasm, else a shipped name).
std::filesystem::path HandlerPath(const std::string& handler) {
  if (handler.empty()) throw UsageError("empty program name");
  if (handler.find('/') != std::string::npos || handler.ends_with(".gasm")) return handler;
  return std::filesystem::path(ProgramsDir()) / (handler + ".gasm");
}

}  // namespace

const std::vector<std::string>& FrameworkClockNames() {
  static const std::vector<std::string> names = {"now_ns", "transaction_time", "none"};
  return names;
}

std::string FrameworkEntry(const std::string& clock) {
  const auto& names = FrameworkClockNames();
  if (std::find(names.begin(), names.end(), clock) == names.end()) {
    throw UsageError(fmt::format("unknown framework clock '{}' (choose from {})", clock, fmt::join(names, ", ")));
  }
  return "framework_" + clock;
}

std::shared_ptr<const Program> LoadProgramWithFramework(const std::string& handler) {
  const std::filesystem::path prelude = std::filesystem::path(ProgramsDir()) / "lib" / "framework.gasm";
  const std::filesystem::path path = HandlerPath(handler);
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    throw UsageError(fmt::format("no program '{}': not a .gasm path and not in {}", handler, ProgramsDir()));
  }
  std::string text = ReadFile(prelude);
  if (!text.ends_with('\n')) text += '\n';
  text += ReadFile(path);
  return Assemble(text, fmt::format("framework.gasm+{}", path.filename().string()));
}

}  // namespace gillab::interp
