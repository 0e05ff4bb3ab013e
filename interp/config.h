// config.h — the toy VM's compile-time switches, each with the reason it exists.
#pragma once

// GILLAB_VM_COMPUTED_GOTO
// Dispatch with GCC/Clang's labels-as-values ("computed goto") instead of a
// switch: every handler ends in its own indirect jump, so the branch predictor
// learns per-opcode successors (the technique of CPython's and Lua's loops),
// and the bounds check a switch does on the opcode disappears. Our verifier
// already guarantees every opcode is valid. Set to 0 to get the portable
// switch loop (about 1.3x slower on the countdown benchmark).
#ifndef GILLAB_VM_COMPUTED_GOTO
#if defined(__GNUC__)
#define GILLAB_VM_COMPUTED_GOTO 1
#else
#define GILLAB_VM_COMPUTED_GOTO 0
#endif
#endif

namespace gillab::interp {

// Longest byte string CONCAT/ITOA may build. A runaway concatenation loop
// becomes a VmError instead of exhausting the machine's memory.
inline constexpr size_t kMaxStringBytes = size_t{256} << 20;

}  // namespace gillab::interp
