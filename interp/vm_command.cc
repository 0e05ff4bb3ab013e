// vm_command.cc — `gillab vm FILE.gasm [ARGS]`: run one function of a toy
// program on this thread and print its result.
//
// Convention: ARGS are passed to `main` (or --function NAME); an argument that
// parses as a decimal int64 is an int, anything else is bytes. The result is
// printed as Value::ToString(): ints in decimal, bytes as they are.
// Negative numbers go after `--`:  gillab vm countdown -- -5
#include <charconv>
#include <cstdio>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/core.h>
#include <fmt/ranges.h>

#include "gil/error.h"
#include "interp/commands.h"
#include "interp/disassembler.h"
#include "interp/program.h"
#include "interp/vm.h"

namespace gillab::interp {
namespace {

struct VmCommandOptions {
  std::string file;
  std::vector<std::string> args;
  std::string function = "main";
  std::string policy = "newgil";
  bool disassemble = false;
  bool time = false;
};

Value ParseArg(const std::string& text) {
  int64_t v = 0;
  const char* end = text.data() + text.size();
  const auto res = std::from_chars(text.data(), end, v);
  if (!text.empty() && res.ec == std::errc() && res.ptr == end) return Value::Int(v);
  return Value::Bytes(text);
}

void RunVm(const VmCommandOptions& o) {
  auto program = LoadProgram(o.file);
  if (o.disassemble) {
    fmt::print("{}", Disassemble(*program));
    return;
  }
  const Function* f = program->Find(o.function);
  if (f == nullptr) throw UsageError(fmt::format("{}: no function '{}'", program->source_name, o.function));
  if (static_cast<size_t>(f->nparams) != o.args.size()) {
    throw UsageError(fmt::format("{}: function '{}' takes {} argument(s) ({}), got {}", program->source_name,
                                 o.function, f->nparams,
                                 fmt::join(f->local_names.begin(), f->local_names.begin() + f->nparams, ", "),
                                 o.args.size()));
  }
  std::vector<Value> args;
  for (const std::string& a : o.args) args.push_back(ParseArg(a));
  auto model = MakeExecModel(o.policy);
  auto me = model->Attach(gil::Role::kOther, "vm");
  Vm vm(program, *model, *me);
  model->Enter(*me);
  const int64_t t0 = gil::NowNs();
  Value result;
  try {
    result = vm.Call(o.function, args);
  } catch (...) {
    model->Leave(*me);
    throw;
  }
  const int64_t elapsed_ns = gil::NowNs() - t0;
  model->Leave(*me);
  fmt::print("{}\n", result.ToString());
  if (o.time) fmt::print(stderr, "vm: {} ns in {}\n", elapsed_ns, o.function);
}

}  // namespace

void AddVmCommand(CLI::App& app) {
  auto o = std::make_shared<VmCommandOptions>();
  CLI::App* cmd = app.add_subcommand("vm", "Run a toy program (FILE.gasm or a shipped name) and print its result");
  cmd->add_option("file", o->file, "A .gasm file, or a shipped program: cpu_spin, echo, primes, countdown, io_step")
      ->required();
  cmd->add_option("args", o->args, "Arguments of the function: decimal ints, anything else is bytes (use -- before negative numbers)");
  cmd->add_option("--function", o->function, "The function to call")->capture_default_str();
  cmd->add_option("--policy", o->policy, "The lock policy the single VM thread holds")->capture_default_str();
  cmd->add_flag("--disassemble", o->disassemble, "Print the assembled bytecode instead of running it");
  cmd->add_flag("--time", o->time, "Print the time spent in the call on stderr");
  cmd->callback([o] { RunVm(*o); });
}

}  // namespace gillab::interp
