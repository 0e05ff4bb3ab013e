#include "interp/disassembler.h"

#include <fmt/core.h>

#include "interp/natives.h"

namespace gillab::interp {
namespace {

std::string Quote(const std::string& bytes) {
  std::string out = "\"";
  for (char c : bytes) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u >= 0x20 && u < 0x7f) {
      out += c;
    } else {
      out += fmt::format("\\x{:02x}", u);
    }
  }
  return out + "\"";
}

}  // namespace

std::string DisassembleInstr(const Program& program, const Function& f, size_t pc) {
  const Instr ins = f.code[pc];
  if (static_cast<int>(ins.op) >= kOpCount) return fmt::format("?{}", static_cast<int>(ins.op));
  const OpInfo& info = InfoOf(ins.op);
  auto local = [&](uint16_t a) {
    return a < f.local_names.size() ? fmt::format("{} ({})", a, f.local_names[a]) : std::to_string(a);
  };
  std::string operand;
  switch (info.operand) {
    case Operand::kNone: break;
    case Operand::kInt: operand = std::to_string(ins.b); break;
    case Operand::kConst:
      if (ins.a < program.constants.size()) {
        const Slot& k = program.constants[ins.a];
        operand = fmt::format("K[{}] = {}", ins.a, k.is_int() ? std::to_string(k.i) : Quote(k.bytes()));
      }
      break;
    case Operand::kLocal: operand = local(ins.a); break;
    case Operand::kLocalInt: operand = fmt::format("{} {}", local(ins.a), ins.b); break;
    case Operand::kLabel: operand = fmt::format("-> {:04}", static_cast<int64_t>(pc) + 1 + ins.b); break;
    case Operand::kFunc:
      operand = ins.a < program.functions.size() ? program.functions[ins.a].name : std::to_string(ins.a);
      break;
    case Operand::kFusedLI:
      operand = fmt::format("{} {} -> {:04}", local(ins.a), ins.c, static_cast<int64_t>(pc) + 1 + ins.b);
      break;
    case Operand::kFusedPair:
      operand = fmt::format("{} {}", local(ins.a), local(static_cast<uint8_t>(ins.c)));
      break;
    case Operand::kFusedLL:
      operand = fmt::format("{} {} -> {:04}", local(ins.a), local(static_cast<uint8_t>(ins.c)),
                            static_cast<int64_t>(pc) + 1 + ins.b);
      break;
    case Operand::kGlobal:
      operand = ins.a < program.globals.size() ? fmt::format("{} ({})", ins.a, program.globals[ins.a]) : std::to_string(ins.a);
      break;
    case Operand::kNative:
      operand = ins.a < kNativeCount ? std::string(kNativeInfo[ins.a].name) : std::to_string(ins.a);
      break;
  }
  return operand.empty() ? std::string(info.mnemonic) : fmt::format("{:<8} {}", info.mnemonic, operand);
}

std::string Disassemble(const Program& program) {
  std::string out;
  for (size_t g = 0; g < program.globals.size(); ++g) out += fmt::format("global {} ({})\n", program.globals[g], g);
  for (const Function& f : program.functions) {
    out += fmt::format("func {} ({} param(s), {} local(s), max depth {})\n", f.name, f.nparams, f.nlocals, f.max_depth);
    for (size_t pc = 0; pc < f.code.size(); ++pc) {
      out += fmt::format("  {:04}  line {:<4} {}\n", pc, pc < f.pos.size() ? f.pos[pc].line : 0,
                         DisassembleInstr(program, f, pc));
    }
  }
  return out;
}

}  // namespace gillab::interp
