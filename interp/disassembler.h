// disassembler.h — a Program back to readable text, one instruction a line
// with its index, source line and resolved operand (`gillab vm --disassemble`).
//
//   std::cout << Disassemble(*LoadProgram("primes"));
#pragma once

#include <string>

#include "interp/program.h"

namespace gillab::interp {

std::string Disassemble(const Program& program);
std::string DisassembleInstr(const Program& program, const Function& f, size_t pc);

}  // namespace gillab::interp
