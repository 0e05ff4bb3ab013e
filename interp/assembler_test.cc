// Assembler and verifier: every opcode assembles from its mnemonic, labels
// resolve, and every mistake is an AsmError at FILE:LINE:COL saying what was
// expected.
#include <gtest/gtest.h>

#include <string>

#include <fmt/core.h>

#include "interp/assembler.h"
#include "interp/disassembler.h"
#include "interp/natives.h"
#include "interp/opcodes.h"

namespace gillab::interp {
namespace {

// A function `f` that uses `op` once with a valid operand and enough values
// on the stack, then returns. g(x) and the native now_ns() are the call targets.
std::string ProgramUsing(Op op) {
  const OpInfo& info = InfoOf(op);
  std::string operand;
  switch (info.operand) {
    case Operand::kNone: break;
    case Operand::kInt: operand = "7"; break;
    case Operand::kConst: operand = "\"s\""; break;
    case Operand::kLocal: operand = "c"; break;
    case Operand::kLocalInt: operand = "c 1"; break;
    case Operand::kLabel: operand = "next"; break;
    case Operand::kFunc: operand = "g"; break;
    case Operand::kNative: operand = "now_ns"; break;
    case Operand::kGlobal: operand = "gv"; break;
    case Operand::kFusedPair:
      return "func f\n  var c\n  load c\n  load c\n  " + std::string(info.mnemonic.substr(0, info.mnemonic.size() - 3)) +
             "\n  ret\nend\n";
    case Operand::kFusedLI:
    case Operand::kFusedLL: {
      // Not written by hand: the assembler makes them from load, push/load, jump.
      const std::string jump(info.mnemonic.substr(0, info.mnemonic.size() - 3));
      const std::string second = info.operand == Operand::kFusedLI ? "push 3" : "load c";
      return "func f\n  var c\n  load c\n  " + second + "\n  " + jump + " next\n  push 1\n  ret\nnext:\n  push 2\n  ret\nend\n";
    }
  }
  int pops = info.pops;
  if (op == Op::CALL) pops = 1;
  if (op == Op::NATIVE) pops = 0;
  std::string text = "global gv\nfunc g x\n  load x\n  ret\nend\nfunc f\n  var c\n";
  for (int i = 0; i < pops; ++i) text += "  push 1\n";
  text += fmt::format("  {} {}\n", info.mnemonic, operand);
  const int depth = pops - (op == Op::CALL || op == Op::NATIVE ? pops : info.pops) + info.pushes;
  if (op != Op::RET) {
    text += "next:\n";
    if (depth == 0) text += "  push 0\n";
    text += "  ret\n";
  }
  return text + "end\n";
}

TEST(Assembler, EveryOpcodeAssemblesFromItsMnemonic) {
  for (int k = 0; k < kOpCount; ++k) {
    const Op op = static_cast<Op>(k);
    SCOPED_TRACE(std::string(InfoOf(op).mnemonic));
    const std::string text = ProgramUsing(op);
    std::shared_ptr<const Program> p;
    ASSERT_NO_THROW(p = Assemble(text, "op.gasm")) << text;
    const Function* f = p->Find("f");
    ASSERT_NE(f, nullptr);
    bool found = false;
    for (const Instr& ins : f->code) found = found || ins.op == op;
    EXPECT_TRUE(found) << text;
    EXPECT_NE(Disassemble(*p).find(InfoOf(op).mnemonic), std::string::npos);
  }
}

TEST(Assembler, SuperinstructionsAreNotWrittenByHand) {
  try {
    Assemble("func f\n  jgt_li 0 0 x\nend\n", "s.gasm");
    ADD_FAILURE() << "assembled";
  } catch (const AsmError& e) {
    EXPECT_NE(e.message.find("made by the assembler"), std::string::npos) << e.what();
  }
}

TEST(Assembler, NoFusionWhenAJumpLandsInsideTheSequence) {
  // `mid` is the push: fusing load/push/jgt would lose that entry point.
  auto p = Assemble("func f n\n  load n\nmid: push 0\n  jgt out\n  push 0\n  jmp mid\nout: push 1\n  ret\nend\n", "s.gasm");
  for (const Instr& ins : p->Find("f")->code) EXPECT_NE(ins.op, Op::JGT_LI);
  auto q = Assemble("func f n\ntop: load n\n  push 0\n  jgt out\n  inc n 1\n  jmp top\nout: push 1\n  ret\nend\n", "s.gasm");
  EXPECT_EQ(q->Find("f")->code[0].op, Op::JGT_LI);
  EXPECT_EQ(q->Find("f")->code.size(), 5u);
}

TEST(Assembler, ACallAfterAFusedJumpCallsTheFunctionItNames) {
  // Fusion shortens the function; the call resolved later must still be found.
  auto p = Assemble("func main n\n  load n\n  push 0\n  jgt pos\n  push 7\n  ret\npos:\n  load n\n  call g\n  ret\nend\n"
                    "func g x\n  load x\n  ret\nend\n",
                    "c.gasm");
  const auto& code = p->Find("main")->code;
  ASSERT_EQ(code.size(), 6u);
  EXPECT_EQ(code[4].op, Op::CALL);
  EXPECT_EQ(code[4].a, 1);  // g
  EXPECT_EQ(code[4].b, 0);
}

TEST(Assembler, PushOfAWideIntOrAStringBecomesAConstant) {
  auto p = Assemble("func f\n push 5000000000\n push \"a\\n\\x41\"\n pop\n ret\nend\n", "c.gasm");
  const Function& f = *p->Find("f");
  ASSERT_EQ(f.code[0].op, Op::CONST);
  EXPECT_EQ(p->constants[f.code[0].a].i, 5000000000);
  ASSERT_EQ(f.code[1].op, Op::CONST);
  EXPECT_EQ(p->constants[f.code[1].a].bytes(), "a\nA");
}

TEST(Assembler, LabelsResolveForwardAndBackward) {
  auto p = Assemble(
      "func f n\n"
      "top: load n\n"      // 0
      "  jz out\n"         // 1 -> 4
      "  inc n -1\n"       // 2
      "  jmp top\n"        // 3 -> 0
      "out: push 0\n"      // 4
      "  ret\n"
      "end\n",
      "l.gasm");
  const Function& f = *p->Find("f");
  EXPECT_EQ(f.code[1].b, 4 - 2);
  EXPECT_EQ(f.code[3].b, 0 - 4);
  EXPECT_EQ(f.max_depth, 1);
}

TEST(Assembler, CallResolvesFunctionsDefinedLaterThenNatives) {
  auto p = Assemble("func f\n call later\n call now_ns\n add\n ret\nend\nfunc later\n push 1\n ret\nend\n", "c.gasm");
  const Function& f = *p->Find("f");
  EXPECT_EQ(f.code[0].op, Op::CALL);
  EXPECT_EQ(f.code[1].op, Op::NATIVE);
  EXPECT_EQ(f.code[1].a, static_cast<uint16_t>(NativeId::NOW_NS));
}

// A fused compare-jump before a call shrinks the code; the call must still be
// the instruction its name is resolved into (it used to patch another one,
// and the verifier then rejected a valid program).
TEST(Assembler, CallAfterAFusedJumpResolvesToTheCall) {
  auto p = Assemble(
      "func f n\ntop: load n\n  push 3\n  jge out\n  push 7\n  call g\n  pop\n  inc n 1\n  jmp top\n"
      "out: push 1\n  ret\nend\nfunc g x\n  load x\n  ret\nend\n",
      "c.gasm");
  const Function& f = *p->Find("f");
  EXPECT_EQ(f.code[0].op, Op::JGE_LI);
  EXPECT_EQ(f.code[2].op, Op::CALL);
  EXPECT_EQ(f.code[2].a, 1);
  EXPECT_EQ(f.code[1].op, Op::PUSH);
}

struct BadCase {
  const char* text;
  int line;
  int col;
  const char* says;
};

TEST(Assembler, ErrorsNameFileLineColumnAndWhatWasExpected) {
  const BadCase cases[] = {
      {"func f\n  ad\nend\n", 2, 3, "unknown instruction 'ad'"},
      {"func f\n  push\n  ret\nend\n", 2, 8, "expected an integer or a string after 'push'"},
      {"func f\n  push 1 2\n  ret\nend\n", 2, 10, "unexpected integer 2"},
      {"func f\n  add 3\nend\n", 2, 7, "'add' takes no operand"},
      {"func f\n  push 1\n  ret\n", 4, 1, "expected 'end' to close function 'f'"},
      {"func f\n  push 1\n  ret", 3, 6, "expected 'end' to close function 'f'"},
      {"  push 1\n", 1, 3, "outside a function"},
      {"func f\n  jmp nowhere\nend\n", 2, 7, "label 'nowhere' is not defined"},
      {"func f\n  push \"abc\n  ret\nend\n", 2, 8, "unterminated string"},
      {"func f\n  push \"a\\q\"\n  ret\nend\n", 2, 10, "unknown escape"},
      {"func f\n  push 99999999999999999999\n  ret\nend\n", 2, 8, "out of the int64 range"},
      {"func f\n  load x\n  ret\nend\n", 2, 8, "unknown local 'x'"},
      {"func f a\n  load 3\n  ret\nend\n", 2, 8, "local index 3 out of range"},
      {"func f\n  add\n  ret\nend\n", 2, 3, "stack underflow: 'add' needs 2 value(s), the stack holds 0"},
      {"func f\n  push 1\nend\n", 2, 3, "control falls off the end"},
      {"func f\nend\n", 1, 1, "is empty"},
      {"func f\n  call g\n  ret\nend\n", 2, 8, "unknown function 'g'"},
      {"func f\n  native sleep\n  ret\nend\n", 2, 10, "unknown native 'sleep'"},
      {"func f\n  push 1\n  ret\nend\nfunc f\n  push 1\n  ret\nend\n", 5, 6, "function 'f' is already defined"},
      {"func f\nx:\nx: push 1\n  ret\nend\n", 3, 1, "label 'x' is already defined"},
      {"func f\n  push 1\nfunc g\n", 3, 1, "expected 'end' before 'func'"},
      {"func f\n  push 1\n  jnz l\n  push 2\nl: ret\nend\n", 4, 3, "stack depth"},
      {"func f\n  push 1 @\n", 2, 10, "unexpected '@'"},
      {"func f\n  inc x\n", 2, 7, "unknown local 'x'"},
      {"func f a\n  inc a\n", 2, 9, "expected an integer after 'inc a'"},
      {"func 3\n", 1, 6, "expected a function name after 'func'"},
      {"func f\n  push 12ab\n", 2, 10, "unexpected 'a' in a number"},
  };
  for (const BadCase& c : cases) {
    SCOPED_TRACE(c.text);
    try {
      Assemble(c.text, "bad.gasm");
      ADD_FAILURE() << "assembled";
    } catch (const AsmError& e) {
      EXPECT_EQ(e.file, "bad.gasm");
      EXPECT_EQ(e.line, c.line) << e.what();
      EXPECT_EQ(e.col, c.col) << e.what();
      EXPECT_NE(e.message.find(c.says), std::string::npos) << e.what();
      EXPECT_EQ(std::string(e.what()).rfind(fmt::format("bad.gasm:{}:{}: ", c.line, c.col), 0), 0u) << e.what();
    }
  }
}

TEST(Assembler, AsmErrorIsAUsageErrorSoTheCliExitsTwo) {
  EXPECT_THROW(Assemble("nonsense\n", "x.gasm"), UsageError);
}

TEST(Assembler, UnreadableFileIsAUsageError) {
  EXPECT_THROW(AssembleFile("/nonexistent/x.gasm"), UsageError);
  EXPECT_THROW(AssembleFile("/"), UsageError);
}

}  // namespace
}  // namespace gillab::interp
