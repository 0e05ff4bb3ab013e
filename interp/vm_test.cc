// VM semantics: arithmetic, comparisons, strings, calls, natives, and the
// run-time bounds that turn a bad program into a VmError instead of a crash.
#include <gtest/gtest.h>

#include <climits>
#include <string>
#include <string_view>
#include <utility>

#include <fmt/core.h>

#include "interp/exec_model.h"
#include "interp/assembler.h"
#include "interp/program.h"
#include "interp/vm.h"

namespace gillab::interp {
namespace {

class VmTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = MakeExecModel("newgil");
    me_ = model_->Attach(gil::Role::kOther, "test");
    model_->Enter(*me_);
  }
  void TearDown() override { model_->Leave(*me_); }

  Value Run(const std::string& body, std::vector<Value> args = {}, VmOptions options = {}) {
    auto program = Assemble(body, "t.gasm");
    Vm vm(program, *model_, *me_, options);
    return vm.Call("main", args);
  }
  // Evaluates `expr` (instructions leaving one value) in a function main().
  Value Eval(const std::string& expr) { return Run("func main\n" + expr + "\n  ret\nend\n"); }
  std::string ErrorOf(const std::string& expr) {
    try {
      Eval(expr);
    } catch (const VmError& e) {
      return e.what();
    }
    return "no error";
  }

  std::unique_ptr<ExecModel> model_;
  std::unique_ptr<ExecThread> me_;
};

TEST_F(VmTest, IntegerArithmetic) {
  EXPECT_EQ(Eval("push 7\npush 5\nadd").as_int(), 12);
  EXPECT_EQ(Eval("push 7\npush 5\nsub").as_int(), 2);
  EXPECT_EQ(Eval("push 7\npush -5\nmul").as_int(), -35);
  EXPECT_EQ(Eval("push -7\npush 2\ndiv").as_int(), -3);  // truncates towards zero
  EXPECT_EQ(Eval("push -7\npush 2\nmod").as_int(), -1);  // sign of the dividend
  EXPECT_EQ(Eval("push 7\nneg").as_int(), -7);
  EXPECT_EQ(Eval("push 9223372036854775807\npush 1\nadd").as_int(), INT64_MIN);  // wraps
  EXPECT_EQ(Eval("push -9223372036854775808\npush -1\ndiv").as_int(), INT64_MIN);
  EXPECT_EQ(Eval("push -9223372036854775808\npush -1\nmod").as_int(), 0);
}

TEST_F(VmTest, DivisionByZeroIsAVmErrorNamingTheLine) {
  const std::string e = ErrorOf("push 1\npush 0\ndiv");
  EXPECT_NE(e.find("t.gasm:4:1: in function 'main', 'div': division by zero"), std::string::npos) << e;
  EXPECT_NE(ErrorOf("push 1\npush 0\nmod").find("modulo by zero"), std::string::npos);
}

TEST_F(VmTest, FusedArithmeticOfTwoLocalsMatchesTheUnfusedInstructions) {
  // `load a; load b; <op>` assembles to one *_ll instruction (opcodes.h).
  const std::string fn = "func main a b\n  load a\n  load b\n  {}\n  ret\nend\n";
  const std::pair<const char*, int64_t> cases[] = {{"add", 17 + 5}, {"sub", 17 - 5}, {"mul", 17 * 5}, {"div", 17 / 5}, {"mod", 17 % 5}};
  for (const auto& [op, want] : cases) {
    const std::string text = fmt::format(fmt::runtime(fn), op);
    EXPECT_EQ(Assemble(text, "t.gasm")->Find("main")->code.size(), 2u) << op;
    EXPECT_EQ(Run(text, {Value::Int(17), Value::Int(5)}).as_int(), want) << op;
    EXPECT_EQ(Run(text, {Value::Int(-17), Value::Int(-1)}).as_int(),
              std::string_view(op) == "add" ? -18 : std::string_view(op) == "sub" ? -16 : std::string_view(op) == "mod" ? 0 : 17)
        << op;
  }
  EXPECT_THROW(Run(fmt::format(fmt::runtime(fn), "div"), {Value::Int(1), Value::Int(0)}), VmError);
  EXPECT_THROW(Run(fmt::format(fmt::runtime(fn), "mod"), {Value::Int(1), Value::Int(0)}), VmError);
  try {
    Run(fmt::format(fmt::runtime(fn), "add"), {Value::Bytes("x"), Value::Int(1)});
    ADD_FAILURE() << "ran";
  } catch (const VmError& e) {
    EXPECT_NE(std::string(e.what()).find("'add_ll': expects two ints, got bytes and int"), std::string::npos) << e.what();
  }
}

TEST_F(VmTest, StackOps) {
  EXPECT_EQ(Eval("push 1\npush 2\nswap\nsub").as_int(), 1);
  EXPECT_EQ(Eval("push 3\ndup\nmul").as_int(), 9);
  EXPECT_EQ(Eval("push 3\npush 4\nover\nsub\nmul").as_int(), 3);
  EXPECT_EQ(Eval("push 3\npush 4\npop\nnop").as_int(), 3);
}

TEST_F(VmTest, Comparisons) {
  EXPECT_EQ(Eval("push 1\npush 2\nlt").as_int(), 1);
  EXPECT_EQ(Eval("push 2\npush 2\nle").as_int(), 1);
  EXPECT_EQ(Eval("push 1\npush 2\ngt").as_int(), 0);
  EXPECT_EQ(Eval("push 2\npush 2\nge").as_int(), 1);
  EXPECT_EQ(Eval("push 2\npush 2\neq").as_int(), 1);
  EXPECT_EQ(Eval("push 2\npush 3\nne").as_int(), 1);
  EXPECT_EQ(Eval("push \"ab\"\npush \"b\"\nlt").as_int(), 1);
  EXPECT_EQ(Eval("push \"ab\"\npush \"ab\"\neq").as_int(), 1);
  EXPECT_EQ(Eval("push \"1\"\npush 1\neq").as_int(), 0);  // an int never equals bytes
  EXPECT_EQ(Eval("push 0\nnot").as_int(), 1);
  EXPECT_EQ(Eval("push 5\nnot").as_int(), 0);
  EXPECT_NE(ErrorOf("push \"1\"\npush 1\nlt").find("cannot order bytes and int"), std::string::npos);
}

TEST_F(VmTest, ConditionalJumps) {
  // Each jump either skips `push 0; ret` (taken -> 1) or not (-> 0).
  auto taken = [&](const std::string& setup, const std::string& jump) {
    return Run("func main\n" + setup + "\n  " + jump + " yes\n  push 0\n  ret\nyes: push 1\n  ret\nend\n").as_int();
  };
  EXPECT_EQ(taken("push 0", "jz"), 1);
  EXPECT_EQ(taken("push 2", "jz"), 0);
  EXPECT_EQ(taken("push 2", "jnz"), 1);
  EXPECT_EQ(taken("push 1\npush 1", "jeq"), 1);
  EXPECT_EQ(taken("push \"x\"\npush \"x\"", "jeq"), 1);
  EXPECT_EQ(taken("push 1\npush 2", "jne"), 1);
  EXPECT_EQ(taken("push 1\npush 2", "jlt"), 1);
  EXPECT_EQ(taken("push 2\npush 1", "jlt"), 0);
  EXPECT_EQ(taken("push 2\npush 2", "jle"), 1);
  EXPECT_EQ(taken("push 3\npush 2", "jgt"), 1);
  EXPECT_EQ(taken("push 2\npush 2", "jge"), 1);
  EXPECT_EQ(taken("push 1\npush 2", "jge"), 0);
  EXPECT_THROW(taken("push \"a\"", "jz"), VmError);
}

TEST_F(VmTest, FusedJumpsBehaveLikeTheSequenceTheyReplace) {
  // load a; push/load c; j<cc> — fused by the assembler — over ints and bytes.
  auto taken = [&](const std::string& jump, Value a, const std::string& second, Value b) {
    return Run("func main a b\n  load a\n  " + second + "\n  " + jump + " yes\n  push 0\n  ret\nyes: push 1\n  ret\nend\n",
               {a, b})
        .as_int();
  };
  const struct {
    const char* jump;
    int64_t a;
    int64_t b;
    int want;
  } cases[] = {{"jeq", 3, 3, 1}, {"jne", 3, 3, 0}, {"jlt", 2, 3, 1}, {"jle", 4, 3, 0},
               {"jgt", 4, 3, 1}, {"jge", 3, 3, 1}, {"jgt", -5, -5, 0}, {"jlt", -6, -5, 1}};
  for (const auto& c : cases) {
    SCOPED_TRACE(c.jump);
    EXPECT_EQ(taken(c.jump, Value::Int(c.a), "push " + std::to_string(c.b), Value::Int(0)), c.want);
    EXPECT_EQ(taken(c.jump, Value::Int(c.a), "load b", Value::Int(c.b)), c.want);
  }
  EXPECT_EQ(taken("jeq", Value::Bytes("x"), "load b", Value::Bytes("x")), 1);
  EXPECT_EQ(taken("jeq", Value::Bytes("3"), "push 3", Value::Int(0)), 0);
  EXPECT_EQ(taken("jlt", Value::Bytes("a"), "load b", Value::Bytes("b")), 1);
  EXPECT_THROW(taken("jgt", Value::Bytes("3"), "push 3", Value::Int(0)), VmError);
}

TEST_F(VmTest, LocalsAndLoops) {
  // sum of 1..100
  const char* text =
      "func main n\n  var sum\n  jmp test\nbody: load sum\n  load n\n  add\n  store sum\n  inc n -1\n"
      "test: load n\n  push 0\n  jgt body\n  load sum\n  ret\nend\n";
  EXPECT_EQ(Run(text, {Value::Int(100)}).as_int(), 5050);
  EXPECT_THROW(Run("func main s\n  inc s 1\n  push 0\n  ret\nend\n", {Value::Bytes("x")}), VmError);
}

TEST_F(VmTest, ByteStrings) {
  EXPECT_EQ(Eval("push \"hello\"\nlen").as_int(), 5);
  EXPECT_EQ(Eval("push \"ab\"\npush \"cd\"\nconcat").as_bytes(), "abcd");
  EXPECT_EQ(Eval("push \"AB\"\npush 1\nbyte_at").as_int(), 'B');
  EXPECT_EQ(Eval("push \"hello\"\npush 1\npush 3\nslice").as_bytes(), "el");
  EXPECT_EQ(Eval("push -42\nitoa").as_bytes(), "-42");
  EXPECT_EQ(Eval("push \"-42\"\natoi").as_int(), -42);
  EXPECT_EQ(Eval("push \"a\\x00b\"\nlen").as_int(), 3);
  EXPECT_NE(ErrorOf("push \"AB\"\npush 2\nbyte_at").find("index 2 out of range"), std::string::npos);
  EXPECT_NE(ErrorOf("push \"AB\"\npush 1\npush 3\nslice").find("out of range"), std::string::npos);
  EXPECT_NE(ErrorOf("push \"12x\"\natoi").find("not a decimal int64"), std::string::npos);
  EXPECT_NE(ErrorOf("push \"\"\natoi").find("not a decimal int64"), std::string::npos);
  EXPECT_NE(ErrorOf("push \"99999999999999999999\"\natoi").find("not a decimal int64"), std::string::npos);
  EXPECT_NE(ErrorOf("push 1\nlen").find("expects bytes"), std::string::npos);
  EXPECT_NE(ErrorOf("push 1\npush \"a\"\nconcat").find("expects two bytes"), std::string::npos);
  EXPECT_NE(ErrorOf("push 1\npush \"a\"\nadd").find("expects two ints, got int and bytes"), std::string::npos);
}

TEST_F(VmTest, CallsPassArgumentsAndReturnOneValue) {
  const char* fib =
      "func main n\n  load n\n  call fib\n  ret\nend\n"
      "func fib n\n  load n\n  push 2\n  jlt small\n"
      "  load n\n  push 1\n  sub\n  call fib\n  load n\n  push 2\n  sub\n  call fib\n  add\n  ret\n"
      "small: load n\n  ret\nend\n";
  EXPECT_EQ(Run(fib, {Value::Int(20)}).as_int(), 6765);
}

TEST_F(VmTest, BytesInAndOutAreSharedNotCopied) {
  auto request = std::make_shared<const std::string>("payload");
  const Value out = Run("func main r\n  load r\n  ret\nend\n", {Value::SharedBytes(request)});
  EXPECT_EQ(out.shared_bytes().get(), request.get());
}

TEST_F(VmTest, RunawayRecursionIsAVmError) {
  const char* text = "func main\n  call main\n  ret\nend\n";
  try {
    Run(text, {}, VmOptions{.max_call_depth = 50});
    ADD_FAILURE() << "no error";
  } catch (const VmError& e) {
    EXPECT_NE(std::string(e.what()).find("max_call_depth (50)"), std::string::npos) << e.what();
  }
}

TEST_F(VmTest, StackLimitIsAVmError) {
  // Each frame keeps 1 local + 1 value; 100 frames need 200 slots.
  const char* text = "func main n\n  load n\n  jz done\n  load n\n  push 1\n  sub\n  call main\n  ret\n"
                     "done: push 0\n  ret\nend\n";
  EXPECT_EQ(Run(text, {Value::Int(10)}, VmOptions{.max_stack = 1000}).as_int(), 0);
  try {
    Run(text, {Value::Int(100)}, VmOptions{.max_stack = 100});
    ADD_FAILURE() << "no error";
  } catch (const VmError& e) {
    EXPECT_NE(std::string(e.what()).find("stack overflow"), std::string::npos) << e.what();
  }
}

TEST_F(VmTest, InstructionBudgetStopsAnEndlessLoop) {
  EXPECT_THROW(Run("func main\ntop: jmp top\nend\n", {}, VmOptions{.max_instructions = 100000}), VmError);
}

TEST_F(VmTest, ErrorsLeaveTheVmReusableAndReleaseStrings) {
  auto program = Assemble(
      "func main x\n  push \"a\"\n  load x\n  concat\n  push \"b\"\n  load x\n  add\n  ret\nend\n", "t.gasm");
  Vm vm(program, *model_, *me_);
  for (int i = 0; i < 3; ++i) EXPECT_THROW(vm.Call("main", {Value::Bytes("x")}), VmError);
  EXPECT_THROW(vm.Call("main", {Value::Int(1)}), VmError);  // concat of bytes and int
  // ASan's leak checker verifies the strings were released.
}

TEST_F(VmTest, CallChecksNameAndArity) {
  auto program = Assemble("func main a b\n  load a\n  ret\nend\n", "t.gasm");
  Vm vm(program, *model_, *me_);
  EXPECT_THROW(vm.Call("nope", {}), VmError);
  EXPECT_THROW(vm.Call("main", {Value::Int(1)}), VmError);
  EXPECT_EQ(vm.Call("main", {Value::Int(1), Value::Int(2)}).as_int(), 1);
}

TEST_F(VmTest, Natives) {
  EXPECT_GT(Eval("native now_ns").as_int(), 0);
  EXPECT_EQ(Eval("native should_stop").as_int(), 0);
  EXPECT_EQ(Eval("push 7\nnative set_priority").as_int(), 0);
  EXPECT_EQ(me_->lock_state()->lock_priority(), 7);
  EXPECT_NE(ErrorOf("push -1\nnative sleep_us").find("negative"), std::string::npos);
  EXPECT_NE(ErrorOf("push \"x\"\nnative spin_holding_us").find("expects an int"), std::string::npos);
  auto program = Assemble("func main\n  call should_stop\n  ret\nend\n", "t.gasm");
  Vm vm(program, *model_, *me_);
  vm.RequestStop();
  EXPECT_EQ(vm.Call("main", {}).as_int(), 1);
}

TEST_F(VmTest, SleepReleasesAndRecordsTheReacquireWait) {
  auto program = Assemble("func main\n  push 100\n  call sleep_us\n  ret\nend\n", "t.gasm");
  Vm vm(program, *model_, *me_);
  const uint64_t releases = me_->lock_state()->stats().voluntary_releases;
  vm.Call("main", {});
  EXPECT_EQ(me_->lock_state()->stats().voluntary_releases, releases + 1);
  EXPECT_EQ(vm.reacquire_wait_ns().count(), 1u);
  EXPECT_TRUE(model_->Inside(*me_));
}

}  // namespace
}  // namespace gillab::interp
