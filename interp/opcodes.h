// opcodes.h — the toy VM's instruction set: one X-macro list that the enum,
// the assembler, the verifier, the disassembler and the tests all expand.
//
// Instruction format: every instruction is one 64-bit word, so a jump can only
// land on an instruction boundary and a truncated program can never be decoded
// half-way through an operand.
//
//   63                      32 31            16 15      8 7       0
//  +--------------------------+----------------+---------+---------+
//  |         b (int32)        |    a (uint16)  | c (int8)| op (u8) |
//  +--------------------------+----------------+---------+---------+
//
//   a: a local slot, a constant index, a function index or a native index.
//   b: an immediate integer, or a jump offset relative to the NEXT
//      instruction (pc := pc + 1 + b, as in Lua's sJ).
//   c: only in superinstructions: a small immediate, or a second local.
//
// Superinstructions (the *_LI and *_LL jumps) are not written by hand: the
// assembler fuses `load a; push c; j<cc> L` and `load a; load c; j<cc> L`
// into one instruction when no jump lands inside the sequence, as CPython 3.11
// fuses LOAD_FAST pairs and Lua compares a register with an immediate (GTI).
// They turn a loop test from three dispatches into one. The *_LL arithmetic
// (`load a; load c; add` -> add_ll) does the same for an expression of two
// locals, as Lua's ADD reads two registers.
//
// Notation of the stack effects: `[x y -- z]` pops y (top) then x and pushes z;
// L[a] is local slot a of the current frame, K[a] constant a of the program,
// F[a] function a, N[a] native a; n is the callee's parameter count.
// Integers are int64 and wrap around on overflow (as in Lua); DIV truncates
// towards zero and MOD takes the sign of the dividend (as in C); DIV or MOD by
// zero is a VmError. Truth: the int 0 is false, every other int is true; a
// byte string or a table where an int is expected is a VmError.
//
// The shared heap (heap.h, design §8): G[a] is global a, shared by every VM
// thread of one Heap; tables are maps from int or bytes keys to values (a
// table key is a VmError). No heap opcode is a check point, so under an
// exclusive lock policy `gload c; push 1; add; gstore c` is atomic. Costs
// (the "cost:" notes): an int moves in one load or store; a bytes or table
// value loaded from the heap costs a box allocation and an atomic increment,
// stored into it an atomic increment (and the stack's box is dropped); when
// the heap is concurrent (policy `none`) every heap opcode also takes the
// cell's or the table's spin lock (an atomic exchange and a store).
// Check points (where the eval breaker is read, as in CPython 3.11): every
// jump whose target is at or before itself, CALL, and RET.
//
//   X(NAME, "mnemonic", operand kind, pops, pushes, "effect")
//   pops/pushes are -1 where they depend on the callee's arity (CALL, NATIVE).
#pragma once

#include <cstdint>
#include <string_view>

namespace gillab::interp {

// Operand kinds: what the assembler parses after the mnemonic.
enum class Operand : uint8_t {
  kNone,      // no operand
  kInt,       // b: an int32 immediate
  kConst,     // a: a literal (int64 or "string") put in the constant pool
  kLocal,     // a: a local, by name or index
  kLocalInt,  // a: a local, then b: an int32 immediate
  kLabel,     // b: a label of the same function
  kFunc,      // a: a function of the program
  kNative,    // a: a native (natives.h)
  kFusedLI,   // a: a local, c: an int8 immediate, b: a label (made by the assembler only)
  kFusedLL,   // a: a local, c: a local below 256, b: a label (made by the assembler only)
  kGlobal,    // a: a global declared with `global NAME` (Program::globals)
  kFusedPair, // a: a local, c: a local below 256, no jump (made by the assembler only)
};

#define GILLAB_OPCODES(X)                                                                     \
  X(NOP, "nop", kNone, 0, 0, "[ -- ]")                                                        \
  X(PUSH, "push", kInt, 0, 1, "[ -- b ]  (push with a literal beyond int32 assembles to CONST)") \
  X(CONST, "const", kConst, 0, 1, "[ -- K[a] ]")                                              \
  X(POP, "pop", kNone, 1, 0, "[ x -- ]")                                                      \
  X(DUP, "dup", kNone, 1, 2, "[ x -- x x ]")                                                  \
  X(SWAP, "swap", kNone, 2, 2, "[ x y -- y x ]")                                              \
  X(OVER, "over", kNone, 2, 3, "[ x y -- x y x ]")                                            \
  X(LOAD, "load", kLocal, 0, 1, "[ -- L[a] ]")                                                \
  X(STORE, "store", kLocal, 1, 0, "[ x -- ]  L[a] := x")                                      \
  X(INC, "inc", kLocalInt, 0, 0, "[ -- ]  L[a] := L[a] + b")                                  \
  X(ADD, "add", kNone, 2, 1, "[ x y -- x+y ]")                                                \
  X(SUB, "sub", kNone, 2, 1, "[ x y -- x-y ]")                                                \
  X(MUL, "mul", kNone, 2, 1, "[ x y -- x*y ]")                                                \
  X(DIV, "div", kNone, 2, 1, "[ x y -- x/y ]  (y == 0: VmError)")                             \
  X(MOD, "mod", kNone, 2, 1, "[ x y -- x%y ]  (y == 0: VmError)")                             \
  X(NEG, "neg", kNone, 1, 1, "[ x -- -x ]")                                                   \
  X(EQ, "eq", kNone, 2, 1, "[ x y -- x==y ]  (ints or strings; an int never equals a string)") \
  X(NE, "ne", kNone, 2, 1, "[ x y -- x!=y ]")                                                 \
  X(LT, "lt", kNone, 2, 1, "[ x y -- x<y ]  (two ints, or two strings bytewise)")             \
  X(LE, "le", kNone, 2, 1, "[ x y -- x<=y ]")                                                 \
  X(GT, "gt", kNone, 2, 1, "[ x y -- x>y ]")                                                  \
  X(GE, "ge", kNone, 2, 1, "[ x y -- x>=y ]")                                                 \
  X(NOT, "not", kNone, 1, 1, "[ x -- x==0 ]")                                                 \
  X(JMP, "jmp", kLabel, 0, 0, "[ -- ]  pc += b")                                              \
  X(JZ, "jz", kLabel, 1, 0, "[ x -- ]  if x == 0: pc += b")                                   \
  X(JNZ, "jnz", kLabel, 1, 0, "[ x -- ]  if x != 0: pc += b")                                 \
  X(JEQ, "jeq", kLabel, 2, 0, "[ x y -- ]  if x == y: pc += b")                               \
  X(JNE, "jne", kLabel, 2, 0, "[ x y -- ]  if x != y: pc += b")                               \
  X(JLT, "jlt", kLabel, 2, 0, "[ x y -- ]  if x < y: pc += b")                                \
  X(JLE, "jle", kLabel, 2, 0, "[ x y -- ]  if x <= y: pc += b")                               \
  X(JGT, "jgt", kLabel, 2, 0, "[ x y -- ]  if x > y: pc += b")                                \
  X(JGE, "jge", kLabel, 2, 0, "[ x y -- ]  if x >= y: pc += b")                               \
  X(JEQ_LI, "jeq_li", kFusedLI, 0, 0, "[ -- ]  if L[a] == c: pc += b  (load a; push c; jeq)") \
  X(JNE_LI, "jne_li", kFusedLI, 0, 0, "[ -- ]  if L[a] != c: pc += b  (load a; push c; jne)") \
  X(JLT_LI, "jlt_li", kFusedLI, 0, 0, "[ -- ]  if L[a] < c: pc += b  (load a; push c; jlt)") \
  X(JLE_LI, "jle_li", kFusedLI, 0, 0, "[ -- ]  if L[a] <= c: pc += b  (load a; push c; jle)") \
  X(JGT_LI, "jgt_li", kFusedLI, 0, 0, "[ -- ]  if L[a] > c: pc += b  (load a; push c; jgt)") \
  X(JGE_LI, "jge_li", kFusedLI, 0, 0, "[ -- ]  if L[a] >= c: pc += b  (load a; push c; jge)") \
  X(JEQ_LL, "jeq_ll", kFusedLL, 0, 0, "[ -- ]  if L[a] == L[c]: pc += b  (load a; load c; jeq)") \
  X(JNE_LL, "jne_ll", kFusedLL, 0, 0, "[ -- ]  if L[a] != L[c]: pc += b  (load a; load c; jne)") \
  X(JLT_LL, "jlt_ll", kFusedLL, 0, 0, "[ -- ]  if L[a] < L[c]: pc += b  (load a; load c; jlt)") \
  X(JLE_LL, "jle_ll", kFusedLL, 0, 0, "[ -- ]  if L[a] <= L[c]: pc += b  (load a; load c; jle)") \
  X(JGT_LL, "jgt_ll", kFusedLL, 0, 0, "[ -- ]  if L[a] > L[c]: pc += b  (load a; load c; jgt)") \
  X(JGE_LL, "jge_ll", kFusedLL, 0, 0, "[ -- ]  if L[a] >= L[c]: pc += b  (load a; load c; jge)") \
  X(ADD_LL, "add_ll", kFusedPair, 0, 1, "[ -- L[a]+L[c] ]  (load a; load c; add)")                \
  X(SUB_LL, "sub_ll", kFusedPair, 0, 1, "[ -- L[a]-L[c] ]  (load a; load c; sub)")                \
  X(MUL_LL, "mul_ll", kFusedPair, 0, 1, "[ -- L[a]*L[c] ]  (load a; load c; mul)")                \
  X(DIV_LL, "div_ll", kFusedPair, 0, 1, "[ -- L[a]/L[c] ]  (load a; load c; div)")                \
  X(MOD_LL, "mod_ll", kFusedPair, 0, 1, "[ -- L[a]%L[c] ]  (load a; load c; mod)")                \
  X(CALL, "call", kFunc, -1, 1, "[ x1..xn -- F[a](x1..xn) ]")                                 \
  X(NATIVE, "native", kNative, -1, 1, "[ x1..xn -- N[a](x1..xn) ]")                           \
  X(RET, "ret", kNone, 1, 0, "[ x -- ]  return x to the caller, dropping the frame")          \
  X(LEN, "len", kNone, 1, 1, "[ s -- #s ]  (bytes: its length; table: its number of keys)")                                                   \
  X(CONCAT, "concat", kNone, 2, 1, "[ s t -- s..t ]")                                         \
  X(BYTE_AT, "byte_at", kNone, 2, 1, "[ s i -- s[i] ]  (0 <= i < #s, else VmError)")          \
  X(SLICE, "slice", kNone, 3, 1, "[ s i j -- s[i..j) ]  (0 <= i <= j <= #s, else VmError)")   \
  X(ITOA, "itoa", kNone, 1, 1, "[ i -- decimal(i) ]")                                         \
  X(ATOI, "atoi", kNone, 1, 1, "[ s -- int(s) ]  (optional '-' then digits, in int64 range, else VmError)") \
  X(GLOAD, "gload", kGlobal, 0, 1, "[ -- G[a] ]  (cost: int one load; bytes/table a box + an atomic inc)") \
  X(GSTORE, "gstore", kGlobal, 1, 0, "[ x -- ]  G[a] := x  (cost: int one store; bytes/table an atomic inc, the old value's count dropped)") \
  X(TNEW, "tnew", kNone, 0, 1, "[ -- t ]  a new empty table  (cost: two allocations + the heap's table-list mutex)") \
  X(TGET, "tget", kNone, 2, 1, "[ t k -- t[k] ]  (missing key: VmError, test with thas; cost: int keys 0..n-1 an index, others a hash lookup; value as gload)") \
  X(TSET, "tset", kNone, 3, 0, "[ t k v -- ]  t[k] := v  (cost: as tget; setting key #array appends to the array part; value as gstore)") \
  X(TDEL, "tdel", kNone, 2, 0, "[ t k -- ]  remove key k  (absent: nothing; deleting inside the array part moves its tail to the hash part)") \
  X(THAS, "thas", kNone, 2, 1, "[ t k -- 1 if t has key k, else 0 ]") \
  X(TKEYS, "tkeys", kNone, 1, 1, "[ t -- u ]  u = {0: k0, 1: k1, ...}: t's keys at this instant, ints ascending then bytes bytewise (cost: a copy and a sort; iterate u with len and tget)")

enum class Op : uint8_t {
#define GILLAB_X(name, mnemonic, operand, pops, pushes, doc) name,
  GILLAB_OPCODES(GILLAB_X)
#undef GILLAB_X
};

struct OpInfo {
  std::string_view mnemonic;
  Operand operand;
  int pops;    // -1: the callee's arity
  int pushes;
  std::string_view effect;
};

inline constexpr OpInfo kOpInfo[] = {
#define GILLAB_X(name, mnemonic, operand, pops, pushes, doc) {mnemonic, Operand::operand, pops, pushes, doc},
    GILLAB_OPCODES(GILLAB_X)
#undef GILLAB_X
};
inline constexpr int kOpCount = static_cast<int>(sizeof(kOpInfo) / sizeof(kOpInfo[0]));

inline const OpInfo& InfoOf(Op op) { return kOpInfo[static_cast<int>(op)]; }
inline bool IsJump(Op op) {
  const Operand k = InfoOf(op).operand;
  return k == Operand::kLabel || k == Operand::kFusedLI || k == Operand::kFusedLL;
}
// Instructions after which control never reaches pc + 1.
inline bool EndsBlock(Op op) { return op == Op::JMP || op == Op::RET; }

// One instruction (see the diagram above).
struct Instr {
  Op op;
  int8_t c = 0;
  uint16_t a = 0;
  int32_t b = 0;
};
static_assert(sizeof(Instr) == 8);

}  // namespace gillab::interp
