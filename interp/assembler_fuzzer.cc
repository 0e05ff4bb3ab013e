// assembler_fuzzer.cc — libFuzzer target for the .gasm assembler, the
// verifier and the disassembler, built with GILLAB_FUZZ=ON (scripts/fuzz).
//
// The input is .gasm text. Assembling it either throws AsmError or returns a
// Program the verifier accepted (Assemble verifies). A Program is then
// written back as .gasm (superinstructions expanded, a label on every jump
// target) and assembled again: the two Programs must be the same code,
// constants, locals and stack depths, and disassemble to the same text.
// Finally its first function runs in a Vm with small stack, call-depth and
// instruction budgets; it returns or throws VmError, nothing else. Programs
// the budgets cannot bound are not run: those calling the natives that sleep,
// spin or print, and those whose CONCATs could double a string unboundedly
// (a CONCAT plus a backward jump or a call, or more than kMaxConcats).
//
//   build-fuzz/interp/assembler_fuzzer interp/fuzz_corpus/assembler
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include <fmt/core.h>

#include "gil/gil.h"
#include "interp/assembler.h"
#include "interp/disassembler.h"
#include "interp/natives.h"
#include "interp/program.h"
#include "interp/vm.h"

namespace gillab::interp {
namespace {

constexpr int kMaxConcats = 8;

void Check(bool ok, const std::string& what) {
  if (ok) return;
  std::fprintf(stderr, "assembler_fuzzer: check failed: %s\n", what.c_str());
  std::abort();
}

std::string Literal(const Slot& k) {
  if (k.is_int()) return std::to_string(k.i);
  std::string out = "\"";
  for (char c : k.bytes()) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') out += fmt::format("\\{}", c);
    else if (u >= 0x20 && u < 0x7f) out += c;
    else out += fmt::format("\\x{:02x}", u);
  }
  return out + "\"";
}

std::string_view JumpOf(Op fused) {
  const bool immediate = fused >= Op::JEQ_LI && fused <= Op::JGE_LI;
  const int k = static_cast<int>(fused) - static_cast<int>(immediate ? Op::JEQ_LI : Op::JEQ_LL);
  return InfoOf(static_cast<Op>(static_cast<int>(Op::JEQ) + k)).mnemonic;
}

// The Program as .gasm text that assembles to the same code.
std::string ToGasm(const Program& p) {
  std::string out;
  for (const std::string& g : p.globals) out += "global " + g + "\n";
  for (const Function& f : p.functions) {
    out += "func " + f.name;
    for (int i = 0; i < f.nparams; ++i) out += " " + f.local_names[i];
    out += "\n";
    if (f.nlocals > f.nparams) {
      out += "  var";
      for (int i = f.nparams; i < f.nlocals; ++i) out += " " + f.local_names[i];
      out += "\n";
    }
    std::vector<bool> is_target(f.code.size(), false);
    for (size_t pc = 0; pc < f.code.size(); ++pc) {
      if (IsJump(f.code[pc].op)) is_target[pc + 1 + f.code[pc].b] = true;  // in range: verified
    }
    for (size_t pc = 0; pc < f.code.size(); ++pc) {
      const Instr ins = f.code[pc];
      const OpInfo& info = InfoOf(ins.op);
      auto label = [&] { return fmt::format("L{}", static_cast<int64_t>(pc) + 1 + ins.b); };
      auto local = [&](size_t a) { return f.local_names[a]; };
      if (is_target[pc]) out += fmt::format("L{}:", pc);
      out += "  ";
      switch (info.operand) {
        case Operand::kNone: out += info.mnemonic; break;
        case Operand::kInt: out += fmt::format("push {}", ins.b); break;
        case Operand::kConst: out += "const " + Literal(p.constants[ins.a]); break;
        case Operand::kLocal: out += fmt::format("{} {}", info.mnemonic, local(ins.a)); break;
        case Operand::kLocalInt: out += fmt::format("inc {} {}", local(ins.a), ins.b); break;
        case Operand::kLabel: out += fmt::format("{} {}", info.mnemonic, label()); break;
        case Operand::kFunc: out += "call " + p.functions[ins.a].name; break;
        case Operand::kNative: out += fmt::format("native {}", kNativeInfo[ins.a].name); break;
        case Operand::kGlobal: out += fmt::format("{} {}", info.mnemonic, p.globals[ins.a]); break;
        case Operand::kFusedLI:
          out += fmt::format("load {}\n  push {}\n  {} {}", local(ins.a), ins.c, JumpOf(ins.op), label());
          break;
        case Operand::kFusedPair:
          out += fmt::format("load {}\n  load {}\n  {}", local(ins.a), local(static_cast<uint8_t>(ins.c)),
                             info.mnemonic.substr(0, info.mnemonic.size() - 3));
          break;
        case Operand::kFusedLL:
          out += fmt::format("load {}\n  load {}\n  {} {}", local(ins.a), local(static_cast<uint8_t>(ins.c)),
                             JumpOf(ins.op), label());
          break;
      }
      out += "\n";
    }
    out += "end\n";
  }
  return out;
}

void CheckSame(const Program& a, const Program& b) {
  Check(a.functions.size() == b.functions.size(), "function count");
  Check(a.constants.size() == b.constants.size(), "constant count");
  Check(a.globals == b.globals, "globals");
  for (size_t k = 0; k < a.constants.size(); ++k) Check(Literal(a.constants[k]) == Literal(b.constants[k]), "constant");
  for (size_t i = 0; i < a.functions.size(); ++i) {
    const Function& f = a.functions[i];
    const Function& g = b.functions[i];
    Check(f.name == g.name && f.nparams == g.nparams && f.nlocals == g.nlocals && f.local_names == g.local_names,
          "function header of " + f.name);
    Check(f.max_depth == g.max_depth, "max_depth of " + f.name);
    Check(f.code.size() == g.code.size() && f.pos.size() == f.code.size(), "code length of " + f.name);
    for (size_t pc = 0; pc < f.code.size(); ++pc) {
      const Instr x = f.code[pc];
      const Instr y = g.code[pc];
      Check(x.op == y.op && x.a == y.a && x.b == y.b && x.c == y.c,
            fmt::format("{} at {}: {} vs {}", f.name, pc, DisassembleInstr(a, f, pc), DisassembleInstr(b, g, pc)));
    }
  }
}

// True when the budgets of VmOptions bound the program's time and memory.
bool Bounded(const Program& p) {
  int concats = 0;
  bool loops_or_calls = false;
  for (const Function& f : p.functions) {
    for (const Instr& ins : f.code) {
      if (ins.op == Op::CONCAT) ++concats;
      if (ins.op == Op::CALL || (IsJump(ins.op) && ins.b < 0)) loops_or_calls = true;
      if (ins.op == Op::NATIVE) {
        const auto id = static_cast<NativeId>(ins.a);
        if (id == NativeId::SLEEP_US || id == NativeId::BACKEND_US || id == NativeId::SPIN_HOLDING_US || id == NativeId::PRINT) return false;
      }
    }
  }
  return concats == 0 || (!loops_or_calls && concats <= kMaxConcats);
}

void RunFirstFunction(const std::shared_ptr<const Program>& program) {
  static const auto model = MakeExecModel("mutex");
  static const auto me = model->Attach(gil::Role::kOther, "fuzz");
  const Function& f = program->functions.front();
  std::vector<Value> args;
  for (int i = 0; i < f.nparams; ++i) args.push_back(i % 2 ? Value::Bytes("12") : Value::Int(i + 3));
  VmOptions options;
  options.max_stack = 1024;
  options.max_call_depth = 64;
  options.max_instructions = 20000;
  model->Enter(*me);
  try {
    Vm vm(program, *model, *me, options);
    vm.Call(f.name, args);
  } catch (const VmError&) {
    // A program's run-time error: the expected outcome for most inputs.
  }
  model->Leave(*me);
}

void Run(std::string_view source) {
  std::shared_ptr<const Program> program;
  try {
    program = Assemble(source, "fuzz.gasm");
  } catch (const AsmError&) {
    return;
  }
  const std::string text = ToGasm(*program);
  std::shared_ptr<const Program> again;
  try {
    again = Assemble(text, "again.gasm");
  } catch (const AsmError& e) {
    Check(false, fmt::format("re-assembly failed: {}\n--- written back:\n{}", e.what(), text));
  }
  CheckSame(*program, *again);
  // Same code and constants: the listings differ at most in their source lines.
  auto without_lines = [](std::string listing) {
    for (size_t at = 0; (at = listing.find(" line ", at)) != std::string::npos;) {
      const size_t end = listing.find_first_not_of(" 0123456789", at + 6);
      listing.erase(at, end - at);
    }
    return listing;
  };
  Check(without_lines(Disassemble(*program)) == without_lines(Disassemble(*again)), "listings differ");
  if (!program->functions.empty() && Bounded(*program)) RunFirstFunction(program);
}

}  // namespace
}  // namespace gillab::interp

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  gillab::interp::Run(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
