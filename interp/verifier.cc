#include "interp/verifier.h"

#include <vector>

#include <fmt/core.h>

#include "interp/asm_error.h"
#include "interp/natives.h"

namespace gillab::interp {
namespace {

// Far beyond any sane program; keeps nlocals + max_depth well inside int.
constexpr int kMaxDepth = 1 << 20;

class FunctionVerifier {
 public:
  FunctionVerifier(const Program& program, Function& f) : program_(program), f_(f) {}

  void Run() {
    const int n = static_cast<int>(f_.code.size());
    if (n == 0) Fail(-1, fmt::format("function '{}' is empty: expected at least 'ret'", f_.name));
    if (f_.nparams > f_.nlocals) Fail(-1, "more parameters than locals");
    depth_.assign(n, -1);
    std::vector<int> work{0};
    depth_[0] = 0;
    int max_depth = 0;
    while (!work.empty()) {
      const int pc = work.back();
      work.pop_back();
      const Instr ins = f_.code[pc];
      CheckOperands(pc, ins);
      const OpInfo& info = InfoOf(ins.op);
      const int pops = info.pops >= 0 ? info.pops : Arity(ins);
      const int depth = depth_[pc];
      if (depth < pops) {
        Fail(pc, fmt::format("stack underflow: '{}' needs {} value(s), the stack holds {}", info.mnemonic, pops,
                             depth));
      }
      const int after = depth - pops + info.pushes;
      if (after > kMaxDepth) Fail(pc, "operand stack deeper than 2^20 values");
      if (after > max_depth) max_depth = after;
      if (IsJump(ins.op)) {
        const int64_t target = int64_t{pc} + 1 + ins.b;
        if (target < 0 || target >= n) Fail(pc, "jump target outside the function");
        Flow(pc, static_cast<int>(target), after, work);
      }
      if (!EndsBlock(ins.op)) {
        if (pc + 1 == n) {
          Fail(pc, fmt::format("control falls off the end of function '{}': expected 'ret' or 'jmp'", f_.name));
        }
        Flow(pc, pc + 1, after, work);
      }
    }
    f_.max_depth = max_depth;
  }

 private:
  int Arity(const Instr& ins) const {
    if (ins.op == Op::CALL) return program_.functions[ins.a].nparams;
    return kNativeInfo[ins.a].arity;
  }

  void CheckOperands(int pc, const Instr& ins) const {
    if (static_cast<int>(ins.op) >= kOpCount) Fail(pc, fmt::format("unknown opcode {}", static_cast<int>(ins.op)));
    switch (InfoOf(ins.op).operand) {
      case Operand::kLocal:
      case Operand::kLocalInt:
        if (ins.a >= f_.nlocals) Fail(pc, fmt::format("local {} out of range ({} locals)", ins.a, f_.nlocals));
        break;
      case Operand::kFusedLI:
        if (ins.a >= f_.nlocals) Fail(pc, fmt::format("local {} out of range ({} locals)", ins.a, f_.nlocals));
        break;
      case Operand::kFusedLL:
      case Operand::kFusedPair:
        if (ins.a >= f_.nlocals || static_cast<uint8_t>(ins.c) >= f_.nlocals) {
          Fail(pc, fmt::format("local out of range ({} locals)", f_.nlocals));
        }
        break;
      case Operand::kConst:
        if (ins.a >= program_.constants.size()) Fail(pc, "constant index out of range");
        break;
      case Operand::kFunc:
        if (ins.a >= program_.functions.size()) Fail(pc, "function index out of range");
        break;
      case Operand::kNative:
        if (ins.a >= kNativeCount) Fail(pc, "native index out of range");
        break;
      case Operand::kGlobal:
        if (ins.a >= program_.globals.size()) Fail(pc, "global index out of range");
        break;
      default:
        break;
    }
  }

  void Flow(int from, int to, int depth, std::vector<int>& work) {
    if (depth_[to] == -1) {
      depth_[to] = depth;
      work.push_back(to);
    } else if (depth_[to] != depth) {
      Fail(from, fmt::format("stack depth {} here but {} on another path to the same instruction (line {})", depth,
                             depth_[to], f_.pos[to].line));
    }
  }

  [[noreturn]] void Fail(int pc, const std::string& message) const {
    const SourcePos p = pc >= 0 && pc < static_cast<int>(f_.pos.size()) ? f_.pos[pc] : f_.declared_at;
    throw AsmError(program_.source_name, p.line, p.col, message);
  }

  const Program& program_;
  Function& f_;
  std::vector<int> depth_;
};

}  // namespace

void Verify(Program& program) {
  for (Function& f : program.functions) FunctionVerifier(program, f).Run();
}

}  // namespace gillab::interp
