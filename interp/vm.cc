// vm.cc — the dispatch loop, the natives, and program loading.
//
// Registers of the loop: pc (next instruction), sp (next free stack slot), L
// (the frame's locals, L[0..nlocals)), fp (the frame record). Every slot below
// sp is a valid, owned Slot; slow paths that may throw first record sp in
// sp_at_error_ so Call() can release what the stack owns. The verifier
// (verifier.h) guarantees operand indices, jump targets and stack depths, so
// the handlers do no bounds checks; each call checks once that the callee's
// locals plus its max_depth fit below the stack limit.
//
// The loop is instantiated per (kBreaker, kTicks): kBreaker reads the eval
// breaker at check points (off for VmOptions::eval_breaker = false, the
// benchmark's baseline); kTicks counts instructions, for the model's ticks
// (ExecModel::TickInterval: the `mutex` policy's periodic Yield, CPython 2)
// and for VmOptions::max_instructions. The choice is made once per Call, so a
// loop pays nothing for what it does not use. The loop reaches the execution
// model (exec_model.h) only on slow paths: a check point is one relaxed load
// of the flag the model gave for this Call.
#include "interp/vm.h"

#include <time.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include <fmt/core.h>

#include "interp/assembler.h"
#include "interp/config.h"
#include "interp/natives.h"
#include "interp/program.h"

namespace gillab::interp {
namespace {

struct Frame {
  const Function* fn;
  Slot* base;          // L[0]
  const Instr* pc;     // where this frame resumes once its callee returns
};

inline int64_t WrapAdd(int64_t a, int64_t b) {
  return static_cast<int64_t>(static_cast<uint64_t>(a) + static_cast<uint64_t>(b));
}
inline int64_t WrapSub(int64_t a, int64_t b) {
  return static_cast<int64_t>(static_cast<uint64_t>(a) - static_cast<uint64_t>(b));
}
inline int64_t WrapMul(int64_t a, int64_t b) {
  return static_cast<int64_t>(static_cast<uint64_t>(a) * static_cast<uint64_t>(b));
}

// Field by field, never as one 16-byte move: the loop writes a slot's int
// with an 8-byte store (INC, arithmetic) and a 16-byte load of it right after
// cannot be store-forwarded; the stall cost 10+ cycles per LOAD.
inline void CopySlot(Slot* dst, const Slot* src) {
  Str* const str = src->str;
  const int64_t i = src->i;
  dst->str = str;
  dst->i = i;
}

const char* TypeName(const Slot& s) { return s.is_int() ? "int" : "bytes"; }

bool Equal(const Slot& x, const Slot& y) {
  if (x.is_int() != y.is_int()) return false;
  return x.is_int() ? x.i == y.i : x.bytes() == y.bytes();
}

std::string Shorten(const std::string& s) {
  std::string out;
  for (char c : s.substr(0, 24)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  return s.size() > 24 ? out + "..." : out;
}

}  // namespace

struct Vm::Impl {
  Impl(std::shared_ptr<const Program> p, VmOptions o)
      : program(std::move(p)), options(o),
        stack(new Slot[std::max<size_t>(options.max_stack, 1)]),  // uninitialised: pages are touched on use
        stack_limit(stack.get() + options.max_stack),
        frames(new Frame[std::max<size_t>(options.max_call_depth, 1)]),
        frames_end(frames.get() + std::max<size_t>(options.max_call_depth, 1)) {}

  template <bool kBreaker, bool kTicks>
  Slot RunLoop(Vm& vm, const Function* entry, Slot* base, const std::atomic<bool>* breaker, int64_t tick_interval);
  // One attempt at the unit: the loop chosen for these options and this model.
  Slot RunOnce(Vm& vm, const Function* entry, Slot* base);
  // The check point's and the tick's slow paths: sp is recorded first, since
  // the model may abort the unit (UnitAborted) there.
  [[gnu::noinline]] void CheckPointSlow(Vm& vm, Slot* sp);
  [[gnu::noinline]] void TickSlow(Vm& vm, Slot* sp);
  // For the shared heap's opcodes: report an access when the model asked for
  // them (report_heap_accesses, read once per Call); sp recorded first, since
  // the model may abort the unit there.
  [[gnu::noinline]] void HeapAccessSlow(Vm& vm, Slot* sp, const HeapAccess& access);
  [[gnu::noinline]] Slot CallNative(Vm& vm, NativeId id, Slot* args, Slot* sp, const Frame* fp, const Instr* pc);
  [[gnu::noinline]] int CompareSlow(Slot x, Slot y, Slot* sp, const Frame* fp, const Instr* pc);
  // LEN CONCAT BYTE_AT SLICE ITOA ATOI on the stack ending at sp; returns the new sp.
  [[gnu::noinline]] Slot* StringOp(Op op, Slot* sp, const Frame* fp, const Instr* pc);
  [[noreturn]] void Fail(Slot* sp, const Frame* fp, const Instr* pc, const std::string& message);

  std::shared_ptr<const Program> program;
  VmOptions options;
  std::unique_ptr<Slot[]> stack;
  Slot* stack_limit;
  std::unique_ptr<Frame[]> frames;
  Frame* frames_end;
  Slot* sp_at_error = nullptr;
  bool running = false;
  bool report_heap_accesses = false;  // the model's traits().sees_heap_accesses, read once per Call
  gil::Histogram reacquire_wait_ns;
};

void Vm::Impl::Fail(Slot* sp, const Frame* fp, const Instr* pc, const std::string& message) {
  sp_at_error = sp;
  const Function& f = *fp->fn;
  const auto index = static_cast<size_t>(pc - f.code.data()) - 1;  // pc has moved past the instruction
  const SourcePos p = index < f.pos.size() ? f.pos[index] : f.declared_at;
  const std::string_view what = index < f.code.size() ? InfoOf(f.code[index].op).mnemonic : "?";
  throw VmError(fmt::format("{}:{}:{}: in function '{}', '{}': {}", program->source_name, p.line, p.col, f.name, what,
                            message));
}

int Vm::Impl::CompareSlow(Slot x, Slot y, Slot* sp, const Frame* fp, const Instr* pc) {
  if (x.is_int() && y.is_int()) return x.i < y.i ? -1 : x.i > y.i;
  if (x.is_int() || y.is_int()) Fail(sp, fp, pc, fmt::format("cannot order {} and {}", TypeName(x), TypeName(y)));
  const int c = x.bytes().compare(y.bytes());
  return c < 0 ? -1 : c > 0;
}

Slot Vm::Impl::CallNative(Vm& vm, NativeId id, Slot* args, Slot* sp, const Frame* fp, const Instr* pc) {
  sp_at_error = sp;
  const NativeInfo& info = kNativeInfo[static_cast<int>(id)];
  auto int_arg = [&](int k) {
    if (!args[k].is_int()) Fail(sp, fp, pc, fmt::format("native '{}' expects an int, got bytes", info.name));
    return args[k].i;
  };
  switch (id) {
    case NativeId::SLEEP_US: {
      const int64_t us = int_arg(0);
      if (us < 0) Fail(sp, fp, pc, fmt::format("sleep_us of a negative time ({})", us));
      const BlockResult r = vm.model_.Block(vm.me_, {.native = info.name, .duration_us = us});
      reacquire_wait_ns.Record(r.resume_wait_ns);
      return Slot::Int(0);
    }
    case NativeId::SPIN_HOLDING_US: {
      const int64_t us = int_arg(0);
      if (us < 0) Fail(sp, fp, pc, fmt::format("spin_holding_us of a negative time ({})", us));
      const int64_t deadline_ns = gil::NowNs() + std::min<int64_t>(us, INT64_MAX / 2000) * 1000;
      // Keeps the lock throughout, but ends early once the run is asked to
      // stop (Vm::RequestStop): a program stuck here must not outlive its run.
      while (gil::NowNs() < deadline_ns && !vm.stop_requested()) {
      }
      return Slot::Int(0);
    }
    case NativeId::SET_PRIORITY: {
      const int64_t p = std::clamp<int64_t>(int_arg(0), INT_MIN, INT_MAX);
      vm.model_.SetPriority(vm.me_, static_cast<int>(p));
      return Slot::Int(0);
    }
    case NativeId::NOW_NS:
      vm.model_.OnExternalEffect(vm.me_, info.name);
      return Slot::Int(gil::NowNs());
    case NativeId::SHOULD_STOP:
      return Slot::Int(vm.stop_requested() ? 1 : 0);
    case NativeId::PRINT:
      vm.model_.OnExternalEffect(vm.me_, info.name);
      fmt::print("{}\n", args[0].is_int() ? std::to_string(args[0].i) : args[0].bytes());
      std::fflush(stdout);
      return Slot::Int(0);
  }
  Fail(sp, fp, pc, "unknown native");
}

Slot* Vm::Impl::StringOp(Op op, Slot* sp, const Frame* fp, const Instr* pc) {
  sp_at_error = sp;  // every failure below, and any allocation failure, leaves the stack as it is
  switch (op) {
    case Op::LEN: {
      Slot* s = sp - 1;
      if (s->is_int()) Fail(sp, fp, pc, "expects bytes, got int");
      const auto n = static_cast<int64_t>(s->bytes().size());
      DecRef(s->str);
      *s = Slot::Int(n);
      return sp;
    }
    case Op::CONCAT: {
      Slot* x = sp - 2;
      Slot* y = sp - 1;
      if (x->is_int() || y->is_int()) {
        Fail(sp, fp, pc, fmt::format("expects two bytes, got {} and {}", TypeName(*x), TypeName(*y)));
      }
      if (x->bytes().size() + y->bytes().size() > kMaxStringBytes) {
        Fail(sp, fp, pc, fmt::format("result longer than {} bytes", kMaxStringBytes));
      }
      const Slot r = Slot::NewStr(x->bytes() + y->bytes());
      DecRef(x->str);
      DecRef(y->str);
      *x = r;
      return sp - 1;
    }
    case Op::BYTE_AT: {
      Slot* s = sp - 2;
      const Slot* i = sp - 1;
      if (s->is_int() || !i->is_int()) {
        Fail(sp, fp, pc, fmt::format("expects bytes and an int, got {} and {}", TypeName(*s), TypeName(*i)));
      }
      if (i->i < 0 || static_cast<uint64_t>(i->i) >= s->bytes().size()) {
        Fail(sp, fp, pc, fmt::format("index {} out of range for {} bytes", i->i, s->bytes().size()));
      }
      const auto byte = static_cast<unsigned char>(s->bytes()[static_cast<size_t>(i->i)]);
      DecRef(s->str);
      *s = Slot::Int(byte);
      return sp - 1;
    }
    case Op::SLICE: {
      Slot* s = sp - 3;
      const Slot* i = sp - 2;
      const Slot* j = sp - 1;
      if (s->is_int() || !i->is_int() || !j->is_int()) {
        Fail(sp, fp, pc, fmt::format("expects bytes, int, int, got {}, {}, {}", TypeName(*s), TypeName(*i), TypeName(*j)));
      }
      const auto n = static_cast<int64_t>(s->bytes().size());
      if (i->i < 0 || i->i > j->i || j->i > n) {
        Fail(sp, fp, pc, fmt::format("slice [{}, {}) out of range for {} bytes", i->i, j->i, n));
      }
      const Slot r = Slot::NewStr(s->bytes().substr(static_cast<size_t>(i->i), static_cast<size_t>(j->i - i->i)));
      DecRef(s->str);
      *s = r;
      return sp - 2;
    }
    case Op::ITOA: {
      Slot* s = sp - 1;
      if (!s->is_int()) Fail(sp, fp, pc, "expects an int, got bytes");
      char digits[24];
      const auto res = std::to_chars(digits, digits + sizeof(digits), s->i);
      *s = Slot::NewStr(std::string(digits, res.ptr));
      return sp;
    }
    case Op::ATOI: {
      Slot* s = sp - 1;
      if (s->is_int()) Fail(sp, fp, pc, "expects bytes, got int");
      const std::string& text = s->bytes();
      int64_t value = 0;
      const char* last = text.data() + text.size();
      const auto res = std::from_chars(text.data(), last, value);
      if (text.empty() || res.ec != std::errc() || res.ptr != last) {
        Fail(sp, fp, pc, fmt::format("'{}' is not a decimal int64", Shorten(text)));
      }
      DecRef(s->str);
      *s = Slot::Int(value);
      return sp;
    }
    default:
      Fail(sp, fp, pc, "not a string operation");
  }
}

void Vm::Impl::CheckPointSlow(Vm& vm, Slot* sp) {
  sp_at_error = sp;
  vm.model_.OnCheckPoint(vm.me_);
}

void Vm::Impl::TickSlow(Vm& vm, Slot* sp) {
  sp_at_error = sp;
  vm.model_.OnTick(vm.me_);
}

void Vm::Impl::HeapAccessSlow(Vm& vm, Slot* sp, const HeapAccess& access) {
  sp_at_error = sp;
  vm.model_.OnHeapAccess(vm.me_, access);
}

template <bool kBreaker, bool kTicks>
Slot Vm::Impl::RunLoop(Vm& vm, const Function* entry, Slot* base, const std::atomic<bool>* breaker,
                       int64_t tick_interval) {
  const Slot* const K = program->constants.data();
  const Function* const F = program->functions.data();
  // kTicks: count instructions, for the model's ticks (tick_interval > 0)
  // and/or for the max_instructions budget.
  [[maybe_unused]] const bool yield_on_tick = kBreaker && tick_interval > 0;
  [[maybe_unused]] const int64_t tick_period = yield_on_tick ? tick_interval : 1024;
  [[maybe_unused]] int64_t ticks = tick_period;
  [[maybe_unused]] const bool budgeted = options.max_instructions > 0;
  [[maybe_unused]] uint64_t budget_left = options.max_instructions;

  Frame* fp = frames.get();
  fp->fn = entry;
  fp->base = base;
  fp->pc = nullptr;
  Slot* L = base;
  Slot* sp = base + entry->nparams;  // the arguments are in place
  for (; sp < base + entry->nlocals; ++sp) *sp = Slot::Int(0);
  const Instr* pc = entry->code.data();
  // Operands are read from the instruction just dispatched, only by the
  // handlers that use them: decoding eagerly costs registers the loop needs.
#define OP_A (pc[-1].a)
#define OP_B (pc[-1].b)
#define OP_C (pc[-1].c)

#define FAIL(...) Fail(sp, fp, pc, fmt::format(__VA_ARGS__))
  // A check point: a single relaxed load of the model's eval breaker.
#define CHECK_POINT()                                                                   \
  do {                                                                                  \
    if constexpr (kBreaker) {                                                           \
      if (breaker->load(std::memory_order_relaxed)) [[unlikely]] CheckPointSlow(vm, sp); \
    }                                                                                   \
  } while (0)
  // The model's ticks: every tick_interval instructions (CPython 2's ticks
  // under `mutex`: let the OS pick a holder).
#define TICK()                             \
  do {                                     \
    if constexpr (kTicks) {                \
      if (--ticks <= 0) [[unlikely]] {     \
        ticks = tick_period;               \
        if (budgeted) {                    \
          if (budget_left <= static_cast<uint64_t>(tick_period)) \
            FAIL("instruction budget of {} exhausted", options.max_instructions); \
          budget_left -= tick_period;      \
        }                                  \
        if (yield_on_tick) TickSlow(vm, sp); \
      }                                    \
    }                                      \
  } while (0)
  // A jump to itself or backwards is a check point (the loop's back edge).
#define JUMP_IF(cond)                \
  if (cond) {                        \
    const int32_t offset = OP_B;     \
    pc += offset;                    \
    if (offset < 0) CHECK_POINT();   \
  }

#if GILLAB_VM_COMPUTED_GOTO
  static const void* const kDispatch[] = {
#define GILLAB_X(name, mnemonic, operand, pops, pushes, doc) &&op_##name,
      GILLAB_OPCODES(GILLAB_X)
#undef GILLAB_X
  };
#define NEXT()                                           \
  do {                                                   \
    TICK();                                              \
    goto* kDispatch[static_cast<uint16_t>((pc++)->op)];  \
  } while (0)
#define CASE(name) op_##name:
  NEXT();
  {
#else
#define NEXT() continue
#define CASE(name) case Op::name:
  for (;;) {
    TICK();
    switch ((pc++)->op) {
#endif

  CASE(NOP) NEXT();
  CASE(PUSH) {
    *sp++ = Slot::Int(OP_B);
    NEXT();
  }
  CASE(CONST) {
    CopySlot(sp++, &K[OP_A]);  // immortal: no count to take
    NEXT();
  }
  CASE(POP) {
    --sp;
    DecRef(sp->str);
    NEXT();
  }
  CASE(DUP) {
    CopySlot(sp, sp - 1);
    IncRef(sp->str);
    ++sp;
    NEXT();
  }
  CASE(SWAP) {
    const Slot top{sp[-1].str, sp[-1].i};
    CopySlot(sp - 1, sp - 2);
    CopySlot(sp - 2, &top);
    NEXT();
  }
  CASE(OVER) {
    CopySlot(sp, sp - 2);
    IncRef(sp->str);
    ++sp;
    NEXT();
  }
  CASE(LOAD) {
    CopySlot(sp, &L[OP_A]);
    IncRef(sp->str);
    ++sp;
    NEXT();
  }
  CASE(STORE) {
    --sp;
    DecRef(L[OP_A].str);
    CopySlot(&L[OP_A], sp);  // the reference moves from the stack to the local
    NEXT();
  }
  CASE(INC) {
    Slot& l = L[OP_A];
    if (!l.is_int()) [[unlikely]] FAIL("cannot add an int to bytes");
    l.i = WrapAdd(l.i, OP_B);
    NEXT();
  }

#define INT_BINARY(name, expr)                                                              \
  CASE(name) {                                                                              \
    Slot* x = sp - 2;                                                                       \
    const Slot* y = sp - 1;                                                                 \
    if ((x->str != nullptr) | (y->str != nullptr)) [[unlikely]]                             \
      FAIL("expects two ints, got {} and {}", TypeName(*x), TypeName(*y));                  \
    [[maybe_unused]] const int64_t a = x->i;                                                \
    [[maybe_unused]] const int64_t b = y->i;                                                \
    x->i = (expr);                                                                          \
    --sp;                                                                                   \
    NEXT();                                                                                 \
  }
  INT_BINARY(ADD, WrapAdd(a, b))
  INT_BINARY(SUB, WrapSub(a, b))
  INT_BINARY(MUL, WrapMul(a, b))
  INT_BINARY(DIV, (b == 0 ? (FAIL("division by zero"), 0) : b == -1 ? WrapSub(0, a) : a / b))
  INT_BINARY(MOD, (b == 0 ? (FAIL("modulo by zero"), 0) : b == -1 ? 0 : a % b))
#undef INT_BINARY

  CASE(NEG) {
    if (!sp[-1].is_int()) [[unlikely]] FAIL("cannot negate bytes");
    sp[-1].i = WrapSub(0, sp[-1].i);
    NEXT();
  }
  CASE(NOT) {
    if (!sp[-1].is_int()) [[unlikely]] FAIL("expects an int, got bytes");
    sp[-1].i = sp[-1].i == 0;
    NEXT();
  }

#define EQUALITY(name, want)                     \
  CASE(name) {                                   \
    Slot* x = sp - 2;                            \
    Slot* y = sp - 1;                            \
    const bool r = Equal(*x, *y) == (want);      \
    DecRef(x->str);                              \
    DecRef(y->str);                              \
    *x = Slot::Int(r);                           \
    --sp;                                        \
    NEXT();                                      \
  }
  EQUALITY(EQ, true)
  EQUALITY(NE, false)
#undef EQUALITY

#define ORDER(name, op)                                                      \
  CASE(name) {                                                               \
    Slot* x = sp - 2;                                                        \
    Slot* y = sp - 1;                                                        \
    bool r;                                                                  \
    if ((x->str == nullptr) & (y->str == nullptr)) [[likely]] {              \
      r = x->i op y->i;                                                      \
    } else {                                                                 \
      r = CompareSlow(*x, *y, sp, fp, pc) op 0;                              \
      DecRef(x->str);                                                        \
      DecRef(y->str);                                                        \
    }                                                                        \
    *x = Slot::Int(r);                                                       \
    --sp;                                                                    \
    NEXT();                                                                  \
  }
  ORDER(LT, <)
  ORDER(LE, <=)
  ORDER(GT, >)
  ORDER(GE, >=)
#undef ORDER

  CASE(JMP) {
    JUMP_IF(true);
    NEXT();
  }
  CASE(JZ) {
    if (!sp[-1].is_int()) [[unlikely]] FAIL("expects an int condition, got bytes");
    --sp;
    JUMP_IF(sp->i == 0);
    NEXT();
  }
  CASE(JNZ) {
    if (!sp[-1].is_int()) [[unlikely]] FAIL("expects an int condition, got bytes");
    --sp;
    JUMP_IF(sp->i != 0);
    NEXT();
  }

#define EQUALITY_JUMP(name, want)                 \
  CASE(name) {                                    \
    Slot* x = sp - 2;                             \
    Slot* y = sp - 1;                             \
    const bool r = Equal(*x, *y) == (want);       \
    DecRef(x->str);                               \
    DecRef(y->str);                               \
    sp -= 2;                                      \
    JUMP_IF(r);                                   \
    NEXT();                                       \
  }
  EQUALITY_JUMP(JEQ, true)
  EQUALITY_JUMP(JNE, false)
#undef EQUALITY_JUMP

#define ORDER_JUMP(name, op)                                                 \
  CASE(name) {                                                               \
    Slot* x = sp - 2;                                                        \
    Slot* y = sp - 1;                                                        \
    bool r;                                                                  \
    if ((x->str == nullptr) & (y->str == nullptr)) [[likely]] {              \
      r = x->i op y->i;                                                      \
    } else {                                                                 \
      r = CompareSlow(*x, *y, sp, fp, pc) op 0;                              \
      DecRef(x->str);                                                        \
      DecRef(y->str);                                                        \
    }                                                                        \
    sp -= 2;                                                                 \
    JUMP_IF(r);                                                              \
    NEXT();                                                                  \
  }
  ORDER_JUMP(JLT, <)
  ORDER_JUMP(JLE, <=)
  ORDER_JUMP(JGT, >)
  ORDER_JUMP(JGE, >=)
#undef ORDER_JUMP

  // Superinstructions: the same jumps with operands L[a] and c or L[c] (opcodes.h).
#define FUSED_EQUALITY_JUMP(name, want, rhs)      \
  CASE(name) {                                    \
    const Slot* x = &L[OP_A];                     \
    const Slot y = rhs;                           \
    JUMP_IF(Equal(*x, y) == (want));              \
    NEXT();                                       \
  }
#define FUSED_ORDER_JUMP(name, op, rhs)                                      \
  CASE(name) {                                                               \
    const Slot* x = &L[OP_A];                                                \
    const Slot y = rhs;                                                      \
    bool r;                                                                  \
    if ((x->str == nullptr) & (y.str == nullptr)) [[likely]] {               \
      r = x->i op y.i;                                                       \
    } else {                                                                 \
      r = CompareSlow(*x, y, sp, fp, pc) op 0;                               \
    }                                                                        \
    JUMP_IF(r);                                                              \
    NEXT();                                                                  \
  }
#define IMM Slot::Int(OP_C)
#define LOC Slot{L[static_cast<uint8_t>(OP_C)].str, L[static_cast<uint8_t>(OP_C)].i}
  FUSED_EQUALITY_JUMP(JEQ_LI, true, IMM)
  FUSED_EQUALITY_JUMP(JNE_LI, false, IMM)
  FUSED_ORDER_JUMP(JLT_LI, <, IMM)
  FUSED_ORDER_JUMP(JLE_LI, <=, IMM)
  FUSED_ORDER_JUMP(JGT_LI, >, IMM)
  FUSED_ORDER_JUMP(JGE_LI, >=, IMM)
  FUSED_EQUALITY_JUMP(JEQ_LL, true, LOC)
  FUSED_EQUALITY_JUMP(JNE_LL, false, LOC)
  FUSED_ORDER_JUMP(JLT_LL, <, LOC)
  FUSED_ORDER_JUMP(JLE_LL, <=, LOC)
  FUSED_ORDER_JUMP(JGT_LL, >, LOC)
  FUSED_ORDER_JUMP(JGE_LL, >=, LOC)
#undef IMM
#undef LOC
#undef FUSED_EQUALITY_JUMP
#undef FUSED_ORDER_JUMP

  CASE(CALL) {
    const Function* f = F + OP_A;
    Slot* callee_base = sp - f->nparams;
    if (fp + 1 == frames_end) [[unlikely]] {
      FAIL("call depth exceeds max_call_depth ({}) calling '{}'", options.max_call_depth, f->name);
    }
    if (stack_limit - callee_base < f->nlocals + f->max_depth) [[unlikely]] {
      FAIL("stack overflow calling '{}': max_stack is {} values", f->name, options.max_stack);
    }
    fp->pc = pc;
    ++fp;
    fp->fn = f;
    fp->base = callee_base;
    L = callee_base;
    for (Slot* end = callee_base + f->nlocals; sp < end; ++sp) *sp = Slot::Int(0);
    pc = f->code.data();
    CHECK_POINT();
    NEXT();
  }
  CASE(RET) {
    --sp;
    const Slot result{sp->str, sp->i};  // the reference moves to result
    while (sp > L) {
      --sp;
      DecRef(sp->str);
    }
    if (fp == frames.get()) return result;
    --fp;
    pc = fp->pc;
    L = fp->base;
    CopySlot(sp++, &result);
    CHECK_POINT();
    NEXT();
  }
  CASE(NATIVE) {
    const int arity = kNativeInfo[OP_A].arity;
    const Slot result = CallNative(vm, static_cast<NativeId>(OP_A), sp - arity, sp, fp, pc);
    for (int k = 0; k < arity; ++k) {
      --sp;
      DecRef(sp->str);
    }
    *sp++ = result;
    NEXT();
  }

  // The byte-string operations: out of line, off the hot path.
  CASE(LEN) {
    sp = StringOp(Op::LEN, sp, fp, pc);
    NEXT();
  }
  CASE(CONCAT) {
    sp = StringOp(Op::CONCAT, sp, fp, pc);
    NEXT();
  }
  CASE(BYTE_AT) {
    sp = StringOp(Op::BYTE_AT, sp, fp, pc);
    NEXT();
  }
  CASE(SLICE) {
    sp = StringOp(Op::SLICE, sp, fp, pc);
    NEXT();
  }
  CASE(ITOA) {
    sp = StringOp(Op::ITOA, sp, fp, pc);
    NEXT();
  }
  CASE(ATOI) {
    sp = StringOp(Op::ATOI, sp, fp, pc);
    NEXT();
  }

#if GILLAB_VM_COMPUTED_GOTO
  }
#else
    }
  }
#endif
  __builtin_unreachable();  // every handler ends in NEXT() or returns
#undef CASE
#undef OP_A
#undef OP_B
#undef OP_C
#undef NEXT
#undef JUMP_IF
#undef TICK
#undef CHECK_POINT
#undef FAIL
}

Vm::Vm(std::shared_ptr<const Program> program, ExecModel& model, ExecThread& me, VmOptions options)
    : impl_(std::make_unique<Impl>(std::move(program), options)), model_(model), me_(me) {
  if (impl_->program == nullptr) throw VmError("Vm needs a program");
}

Vm::~Vm() = default;

const gil::Histogram& Vm::reacquire_wait_ns() const { return impl_->reacquire_wait_ns; }

Slot Vm::Impl::RunOnce(Vm& vm, const Function* f, Slot* base) {
  // Read once per attempt: the breaker's address and the tick interval.
  const int64_t tick_interval = options.eval_breaker ? vm.model_.TickInterval() : 0;
  const std::atomic<bool>* breaker = &vm.model_.EvalBreaker(vm.me_);
  report_heap_accesses = vm.model_.traits().sees_heap_accesses;
  const bool ticks = options.max_instructions > 0 || tick_interval > 0;
  if (!options.eval_breaker) {
    return ticks ? RunLoop<false, true>(vm, f, base, breaker, 0) : RunLoop<false, false>(vm, f, base, breaker, 0);
  }
  return ticks ? RunLoop<true, true>(vm, f, base, breaker, tick_interval)
               : RunLoop<true, false>(vm, f, base, breaker, tick_interval);
}

Value Vm::Call(std::string_view function, const std::vector<Value>& args) {
  Impl& m = *impl_;
  const Program& program = *m.program;
  if (m.running) throw VmError("Vm::Call is not re-entrant");
  const Function* f = program.Find(function);
  if (f == nullptr) throw VmError(fmt::format("{}: no function '{}'", program.source_name, function));
  if (args.size() != static_cast<size_t>(f->nparams)) {
    throw VmError(fmt::format("{}: function '{}' takes {} argument(s), got {}", program.source_name, function,
                              f->nparams, args.size()));
  }
  if (static_cast<size_t>(f->nlocals + f->max_depth) > m.options.max_stack) {
    throw VmError(fmt::format("{}: stack overflow calling '{}': max_stack is {} values", program.source_name, function,
                              m.options.max_stack));
  }
  Slot* base = m.stack.get();
  // A VmError (or an allocation failure, or an aborted unit) recorded where
  // the stack ended; release what it owns. Without a record the strings leak
  // rather than risk a double free.
  auto release_stack = [&] {
    if (m.sp_at_error != nullptr) {
      for (Slot* s = base; s < m.sp_at_error; ++s) DecRef(s->str);
    }
  };
  m.running = true;
  Slot result;
  for (int attempt = 0;; ++attempt) {
    try {
      model_.BeginUnit(me_);
    } catch (...) {
      m.running = false;
      throw;
    }
    Slot* sp = base;
    for (const Value& v : args) *sp++ = v.is_int() ? Slot::Int(v.as_int()) : Slot::NewStr(v.shared_bytes());
    m.sp_at_error = nullptr;
    try {
      result = m.RunOnce(*this, f, base);
    } catch (const UnitAborted& e) {
      release_stack();
      try {
        model_.EndUnit(me_, UnitEnd::kAborted);
      } catch (...) {
        m.running = false;
        throw;
      }
      if (attempt >= m.options.max_unit_retries) {
        m.running = false;
        throw VmError(fmt::format("{}: function '{}': atomic unit aborted {} times (last: {})", program.source_name,
                                  function, attempt + 1, e.what()));
      }
      continue;
    } catch (...) {
      release_stack();
      m.running = false;
      model_.EndUnit(me_, UnitEnd::kFailed);
      throw;
    }
    UnitVerdict verdict;
    try {
      verdict = model_.EndUnit(me_, UnitEnd::kCommitted);
    } catch (...) {
      DecRef(result.str);
      m.running = false;
      throw;
    }
    if (verdict == UnitVerdict::kDone) break;
    DecRef(result.str);  // a refused commit: the result is discarded with the unit
    if (attempt >= m.options.max_unit_retries) {
      m.running = false;
      throw VmError(fmt::format("{}: function '{}': atomic unit refused {} times", program.source_name, function,
                                attempt + 1));
    }
  }
  m.running = false;
  if (result.is_int()) return Value::Int(result.i);
  Value out = Value::SharedBytes(result.str->bytes);
  DecRef(result.str);
  return out;
}

std::string ProgramsDir() {
  const char* env = std::getenv("GILLAB_PROGRAMS");
  if (env != nullptr && *env != '\0') return env;
  return GILLAB_PROGRAMS_DIR;
}

std::shared_ptr<const Program> LoadProgram(const std::string& path_or_name) {
  if (path_or_name.empty()) throw UsageError("empty program name");
  const bool is_path = path_or_name.find('/') != std::string::npos || path_or_name.ends_with(".gasm");
  if (is_path) return AssembleFile(path_or_name);
  const std::filesystem::path shipped = std::filesystem::path(ProgramsDir()) / (path_or_name + ".gasm");
  std::error_code ec;
  if (!std::filesystem::exists(shipped, ec)) {
    throw UsageError(fmt::format("no program '{}': not a .gasm path and not in {}", path_or_name, ProgramsDir()));
  }
  return AssembleFile(shipped.string());
}

}  // namespace gillab::interp
