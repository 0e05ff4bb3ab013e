// verifier.h — the load-time check that lets the dispatch loop run without
// bounds checks: indices in range, jumps inside the function, a consistent
// and non-negative operand-stack depth on every path, no fall-through off the
// end. It also computes each function's max_depth, which the VM checks once
// per call against VmOptions::max_stack (see program.h for the invariants).
//
//   Program p = ...;  Verify(p);  // throws AsmError at the offending instruction
#pragma once

#include "interp/program.h"

namespace gillab::interp {

void Verify(Program& program);

}  // namespace gillab::interp
