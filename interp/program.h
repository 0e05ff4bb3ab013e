// program.h — an assembled program: functions of verified bytecode and a
// constant pool, built once by the assembler and then shared read-only by the
// Vms of any number of threads.
//
// Invariants after Assemble() (verifier.h checks them; the VM relies on them
// and does no bounds checks of its own in the dispatch loop):
//   - every opcode is known; every local, constant, function and native index
//     is in range; every jump lands inside its function;
//   - the operand-stack depth at each instruction is the same along every
//     path, never negative, and at most max_depth; control never falls off the
//     end of a function;
//   - string constants are immortal (slot.h) and live as long as the Program.
//
//   auto program = Assemble(text, "x.gasm");
//   const Function* f = program->Find("main");   // nullptr if absent
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "interp/opcodes.h"
#include "interp/slot.h"

namespace gillab::interp {

struct SourcePos {
  int line = 0;  // 1-based
  int col = 0;   // 1-based, in bytes
};

struct Function {
  std::string name;
  int nparams = 0;
  int nlocals = 0;    // parameters included: L[0..nparams) are the arguments
  int max_depth = 0;  // operand-stack values above the locals, set by Verify
  std::vector<std::string> local_names;
  std::vector<Instr> code;
  std::vector<SourcePos> pos;  // pos[pc]: where code[pc] was written
  SourcePos declared_at;
};

struct Program {
  Program() = default;
  Program(const Program&) = delete;
  Program& operator=(const Program&) = delete;
  ~Program() {
    for (Str* s : const_strings) delete s;
  }

  std::string source_name;  // the file, for error messages
  std::vector<Function> functions;
  std::vector<Slot> constants;         // K[a]
  std::vector<Str*> const_strings;     // owned, immortal
  std::vector<std::string> globals;    // G[a]: names declared with `global`; cells live in a Heap (heap.h)

  const Function* Find(std::string_view name) const {
    for (const Function& f : functions) {
      if (f.name == name) return &f;
    }
    return nullptr;
  }
};

}  // namespace gillab::interp
