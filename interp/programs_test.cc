// The shipped programs against the expectations written inside them
// (`; expect: FUNC(ARGS) -> RESULT`, clox style), and the promise that no
// malformed or truncated program crashes the VM: each one is an AsmError at
// load or a VmError at run time.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>

#include "interp/exec_model.h"
#include "interp/assembler.h"
#include "interp/program.h"
#include "interp/vm.h"

namespace gillab::interp {
namespace {

namespace fs = std::filesystem;

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<fs::path> GasmFiles(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() == ".gasm") out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// A literal of an expect line: an int, or a "string" with the assembler's escapes.
Value ParseLiteral(const std::string& text) {
  if (!text.empty() && text[0] == '"') {
    auto p = Assemble("func f\n push " + text + "\n ret\nend\n", "literal");
    const Slot& k = p->constants.at(0);
    return Value::Bytes(k.bytes());
  }
  return Value::Int(std::stoll(text));
}

std::vector<std::string> SplitArgs(const std::string& text) {
  std::vector<std::string> out;
  std::string cur;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string && c == '\\' && i + 1 < text.size()) {
      cur += c;
      cur += text[++i];
      continue;
    }
    if (c == '"') in_string = !in_string;
    if (c == ',' && !in_string) {
      out.push_back(cur);
      cur.clear();
    } else if (c != ' ' || in_string) {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

class ProgramsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = MakeExecModel("none");
    me_ = model_->Attach(gil::Role::kOther, "test");
    model_->Enter(*me_);
  }
  void TearDown() override { model_->Leave(*me_); }

  // Runs every function of `program` with small arguments of both kinds and a
  // bounded budget: anything but a result or a VmError is a failure.
  void RunEveryFunction(const std::shared_ptr<const Program>& program) {
    VmOptions options;
    options.max_instructions = 50000;
    options.max_call_depth = 64;
    options.max_stack = 4096;
    for (const Function& f : program->functions) {
      for (int kind = 0; kind < 2; ++kind) {
        std::vector<Value> args;
        for (int i = 0; i < f.nparams; ++i) args.push_back(kind == 0 ? Value::Int(3) : Value::Bytes("7"));
        Vm vm(program, *model_, *me_, options);
        vm.RequestStop();  // cpu_spin-like loops end at once
        try {
          vm.Call(f.name, args);
        } catch (const VmError&) {
        }
      }
    }
  }

  std::unique_ptr<ExecModel> model_;
  std::unique_ptr<ExecThread> me_;
};

TEST_F(ProgramsTest, ShippedProgramsProduceTheOutputTheirCommentsExpect) {
  const std::regex expect_line(R"(^;\s*expect:\s*(\w+)\((.*)\)\s*->\s*(.+?)\s*$)");
  int files = 0;
  for (const fs::path& path : GasmFiles(GILLAB_PROGRAMS_DIR)) {
    SCOPED_TRACE(path.string());
    ++files;
    auto program = AssembleFile(path.string());
    std::istringstream lines(ReadFile(path));
    std::string line;
    int checks = 0;
    while (std::getline(lines, line)) {
      std::smatch m;
      if (!std::regex_match(line, m, expect_line)) continue;
      std::vector<Value> args;
      for (const std::string& a : SplitArgs(m[2])) args.push_back(ParseLiteral(a));
      Vm vm(program, *model_, *me_);
      EXPECT_EQ(vm.Call(m[1].str(), args), ParseLiteral(m[3])) << line;
      ++checks;
    }
    EXPECT_GT(checks, 0) << "no '; expect:' line";
  }
  EXPECT_GE(files, 4);
}

TEST_F(ProgramsTest, LoadProgramFindsShippedNames) {
  EXPECT_NE(LoadProgram("primes")->Find("handle"), nullptr);
  EXPECT_NE(LoadProgram("echo")->Find("handle"), nullptr);
  EXPECT_NE(LoadProgram("cpu_spin")->Find("main"), nullptr);
  EXPECT_THROW(LoadProgram("no_such_program"), UsageError);
  EXPECT_THROW(LoadProgram("/no/such/file.gasm"), UsageError);
}

TEST_F(ProgramsTest, PrimesCountsPrimesUpToTenThousand) {
  Vm vm(LoadProgram("primes"), *model_, *me_);
  EXPECT_EQ(vm.Call("handle", {Value::Bytes("10000"), Value::Int(0)}).as_bytes(), "1229");
}

TEST_F(ProgramsTest, EveryTruncationOfAShippedProgramFailsCleanly) {
  int assembled = 0;
  int rejected = 0;
  for (const fs::path& path : GasmFiles(GILLAB_PROGRAMS_DIR)) {
    const std::string text = ReadFile(path);
    for (size_t n = 0; n < text.size(); ++n) {
      std::shared_ptr<const Program> program;
      try {
        program = Assemble(std::string_view(text).substr(0, n), path.filename().string());
      } catch (const AsmError&) {
        ++rejected;
        continue;
      }
      ++assembled;
      RunEveryFunction(program);
    }
  }
  EXPECT_GT(rejected, 0);
  EXPECT_GT(assembled, 0);  // the prefixes that end after a complete function
}

TEST_F(ProgramsTest, DeletingAnyLineOrCorruptingAnyByteFailsCleanly) {
  for (const fs::path& path : GasmFiles(GILLAB_PROGRAMS_DIR)) {
    const std::string text = ReadFile(path);
    std::vector<size_t> line_starts{0};
    for (size_t i = 0; i < text.size(); ++i) {
      if (text[i] == '\n') line_starts.push_back(i + 1);
    }
    std::vector<std::string> variants;
    for (size_t k = 0; k + 1 < line_starts.size(); ++k) {
      variants.push_back(text.substr(0, line_starts[k]) + text.substr(line_starts[k + 1]));
    }
    // Corrupt each byte of the code (not the comments) with a few replacements.
    const char replacements[] = {'\0', '"', '9', 'x', ':', '-', '\n'};
    for (size_t i = 0; i < text.size(); i += 3) {
      std::string v = text;
      v[i] = replacements[i % sizeof(replacements)];
      variants.push_back(std::move(v));
    }
    for (const std::string& v : variants) {
      std::shared_ptr<const Program> program;
      try {
        program = Assemble(v, path.filename().string());
      } catch (const AsmError&) {
        continue;
      }
      RunEveryFunction(program);
    }
  }
}

TEST_F(ProgramsTest, BrokenProgramCorpusIsRejectedOrFailsWithAVmError) {
  int files = 0;
  for (const fs::path& path : GasmFiles(fs::path(GILLAB_INTERP_TESTDATA) / "bad")) {
    SCOPED_TRACE(path.string());
    ++files;
    const std::string text = ReadFile(path);
    // Each file states which way it fails: `; fails: asm LINE:COL` or `; fails: vm TEXT`.
    const std::regex fails(R"(;\s*fails:\s*(asm|vm)\s+(.+?)\s*(\n|$))");
    std::smatch m;
    ASSERT_TRUE(std::regex_search(text, m, fails)) << "no '; fails:' line";
    if (m[1] == "asm") {
      try {
        Assemble(text, path.filename().string());
        ADD_FAILURE() << "assembled";
      } catch (const AsmError& e) {
        EXPECT_EQ(fmt::format("{}:{}", e.line, e.col), m[2].str()) << e.what();
      }
    } else {
      auto program = Assemble(text, path.filename().string());
      Vm vm(program, *model_, *me_, VmOptions{.max_stack = 4096, .max_call_depth = 64, .max_instructions = 1000000});
      try {
        vm.Call("main", {});
        ADD_FAILURE() << "ran";
      } catch (const VmError& e) {
        EXPECT_NE(std::string(e.what()).find(m[2].str()), std::string::npos) << e.what();
      }
    }
  }
  EXPECT_GE(files, 8);
}

}  // namespace
}  // namespace gillab::interp
