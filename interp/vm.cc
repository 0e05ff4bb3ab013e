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
//
// Coroutines (design §10): the loop runs on the stack and frames that
// stack_base/frames_base point at — the Vm's own for Call, a Coroutine's for
// Resume — and starts from saved registers (Regs). A blocking native whose
// model parks the coroutine sets park_pending; the NATIVE handler then saves
// the registers and returns, and the next Resume continues after it. A
// coroutine's stack and frames grow in CALL's slow path (Grow).
#include "interp/vm.h"

#include <time.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <new>

#include <fmt/core.h>

#include "interp/assembler.h"
#include "interp/config.h"
#include "interp/context_arena.h"
#include "interp/heap.h"
#include "interp/natives.h"
#include "interp/program.h"

namespace gillab::interp {
namespace {

struct Frame {
  const Function* fn;
  Slot* base;          // L[0]
  const Instr* pc;     // where this frame resumes once its callee returns
};

// Where the loop starts (a call's first instruction) or resumes (after the
// blocking native a coroutine parked in); L is fp->base.
struct Regs {
  const Instr* pc;
  Slot* sp;
  Frame* fp;
};

// Frame 0 of a call to `f` whose arguments are in place at base: the locals
// past them zeroed. Returns the registers of its first instruction.
Regs EnterFrame0(const Function* f, Slot* base, Frame* frames) {
  frames->fn = f;
  frames->base = base;
  frames->pc = nullptr;
  Slot* sp = base + f->nparams;
  for (; sp < base + f->nlocals; ++sp) *sp = Slot::Int(0);
  return {f->code.data(), sp, frames};
}

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

const char* TypeName(const Slot& s) { return s.is_int() ? "int" : s.is_table() ? "table" : "bytes"; }

// Ints by value, bytes bytewise, tables by identity; different kinds differ.
bool Equal(const Slot& x, const Slot& y) {
  if (x.is_int() || y.is_int()) return x.is_int() && y.is_int() && x.i == y.i;
  if (x.is_table() || y.is_table()) return x.str->table == y.str->table;
  return x.bytes() == y.bytes();
}

std::string Shorten(const std::string& s) {
  std::string out;
  for (char c : s.substr(0, 24)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  return s.size() > 24 ? out + "..." : out;
}

// A table key as an error message shows it.
std::string KeyText(const Slot& k) { return k.is_int() ? std::to_string(k.i) : "'" + Shorten(k.bytes()) + "'"; }

}  // namespace

// A coroutine's own stack and frames (malloc'd, grown by Vm::Impl::Grow) and
// its registers while it is not running.
struct Coroutine::State {
  Vm* vm = nullptr;  // the Vm that made it, the only one that may run it
  Slot* stack = nullptr;
  size_t stack_cap = 0;  // slots
  Frame* frames = nullptr;
  size_t frames_cap = 0;
  Regs regs{nullptr, nullptr, nullptr};  // sp: every slot below it is owned; null once nothing is
  ~State() {
    if (regs.sp != nullptr) {
      for (Slot* s = stack; s < regs.sp; ++s) DecRef(s->str);
    }
    std::free(stack);
    std::free(frames);
  }
};

struct Vm::Impl {
  Impl(std::shared_ptr<const Program> p, VmOptions o)
      : program(std::move(p)), options(o),
        stack(new Slot[std::max<size_t>(options.max_stack, 1)]),  // uninitialised: pages are touched on use
        frames(new Frame[std::max<size_t>(options.max_call_depth, 1)]) {
    DetachCoroutine();
  }

  template <bool kBreaker, bool kTicks>
  Slot RunLoop(Vm& vm, Regs start, const std::atomic<bool>* breaker, int64_t tick_interval);
  // One attempt at the unit: the loop chosen for these options and this model.
  Slot RunOnce(Vm& vm, Regs start);
  // The loop runs on a coroutine's stack and frames (Resume) or on the Vm's own (Call).
  void AttachCoroutine(Coroutine::State& co) {
    running_co = &co;
    stack_base = co.stack;
    stack_limit = co.stack + co.stack_cap;
    frames_base = co.frames;
    frames_end = co.frames + co.frames_cap;
  }
  void DetachCoroutine() {
    running_co = nullptr;
    stack_base = stack.get();
    stack_limit = stack.get() + options.max_stack;
    frames_base = frames.get();
    frames_end = frames.get() + std::max<size_t>(options.max_call_depth, 1);
  }
  // CALL's slow path: the callee's frame or its locals and stack do not fit.
  // A running coroutine's frames or stack grow (doubling, up to the options'
  // limits; the registers are moved along); otherwise, or at the limit, the
  // call fails as it always has.
  // Returns the registers, moved (by value: the loop's registers never have their address taken).
  [[gnu::noinline]] Regs Grow(Frame* fp, Slot* sp, const Instr* pc, const Function* f);
  // The check point's and the tick's slow paths: sp is recorded first, since
  // the model may abort the unit (UnitAborted) there.
  [[gnu::noinline]] void CheckPointSlow(Vm& vm, Slot* sp);
  [[gnu::noinline]] void TickSlow(Vm& vm, Slot* sp);
  // For the shared heap's opcodes: report an access when the model asked for
  // them (report_heap_accesses, read once per Call); sp recorded first, since
  // the model may abort the unit there.
  // A model that refuses the access (AccessRefused: a parallel context
  // writing a main-heap object, design §12) fails the instruction here.
  [[gnu::noinline]] void HeapAccessSlow(Vm& vm, Slot* sp, const Frame* fp, const Instr* pc, HeapAccess access);
  // Where pc (just past the instruction) is, for a model's reports.
  SourceSite SiteOf(const Frame* fp, const Instr* pc) const;
  [[gnu::noinline]] Slot CallNative(Vm& vm, NativeId id, Slot* args, Slot* sp, const Frame* fp, const Instr* pc);
  [[gnu::noinline]] int CompareSlow(Slot x, Slot y, Slot* sp, const Frame* fp, const Instr* pc);
  // LEN CONCAT BYTE_AT SLICE ITOA ATOI on the stack ending at sp; returns the new sp.
  [[gnu::noinline]] Slot* StringOp(Op op, Slot* sp, const Frame* fp, const Instr* pc);
  // TNEW TGET TSET TDEL THAS TKEYS on the stack ending at sp; returns the new sp.
  [[gnu::noinline]] Slot* TableOp(Op op, Slot* sp, const Frame* fp, const Instr* pc);
  Slot* TableOpUnchecked(Op op, Slot* sp, const Frame* fp, const Instr* pc);
  // GLOAD / GSTORE when the value is not an int or the heap is concurrent.
  [[gnu::noinline]] void LoadGlobal(Cell& cell, Slot* sp);
  [[gnu::noinline]] void StoreGlobal(Cell& cell, Slot* sp);
  [[noreturn]] void Fail(Slot* sp, const Frame* fp, const Instr* pc, const std::string& message);

  std::shared_ptr<const Program> program;
  VmOptions options;
  std::unique_ptr<Slot[]> stack;   // the Vm's own, for Call
  std::unique_ptr<Frame[]> frames;
  // What the loop runs on: the Vm's own stack and frames, or a coroutine's.
  Slot* stack_base;
  Slot* stack_limit;
  Frame* frames_base;
  Frame* frames_end;
  Coroutine::State* running_co = nullptr;  // during Resume
  // A blocking native parked the running coroutine (its model's Block said
  // so): the NATIVE handler saves the registers in `parked` and leaves the loop.
  bool park_pending = false;
  BlockingWait park_wait;
  Regs parked{nullptr, nullptr, nullptr};
  Slot* sp_at_error = nullptr;
  bool running = false;
  bool report_heap_accesses = false;  // the model's traits().sees_heap_accesses, read once per Call
  gil::Histogram reacquire_wait_ns;
  std::shared_ptr<Heap> heap;
  std::vector<Cell*> globals;  // G[a]: the heap's cell of program->globals[a]
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
  if (!x.is_bytes() || !y.is_bytes()) Fail(sp, fp, pc, fmt::format("cannot order {} and {}", TypeName(x), TypeName(y)));
  const int c = x.bytes().compare(y.bytes());
  return c < 0 ? -1 : c > 0;
}

Slot Vm::Impl::CallNative(Vm& vm, NativeId id, Slot* args, Slot* sp, const Frame* fp, const Instr* pc) {
  sp_at_error = sp;
  const NativeInfo& info = kNativeInfo[static_cast<int>(id)];
  auto int_arg = [&](int k) {
    if (!args[k].is_int()) Fail(sp, fp, pc, fmt::format("native '{}' expects an int, got {}", info.name, TypeName(args[k])));
    return args[k].i;
  };
  switch (id) {
    case NativeId::SLEEP_US:
    case NativeId::BACKEND_US: {
      const int64_t us = int_arg(0);
      if (us < 0) Fail(sp, fp, pc, fmt::format("{} of a negative time ({})", info.name, us));
      const BlockingWait wait{.native = info.name,
                              .duration_us = us,
                              .kind = id == NativeId::SLEEP_US ? BlockingWait::Kind::kSleep : BlockingWait::Kind::kBackend,
                              .parkable = running_co != nullptr,
                              .site = SiteOf(fp, pc)};
      const BlockResult r = vm.model_.Block(vm.me_, wait);
      if (r.parked) {
        if (!wait.parkable) Fail(sp, fp, pc, fmt::format("the model parked a plain call at {}", info.name));
        park_pending = true;  // the NATIVE handler leaves the loop once the result is pushed
        park_wait = wait;
        return Slot::Int(0);
      }
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
      vm.model_.OnExternalEffectAt(vm.me_, info.name, SiteOf(fp, pc));
      return Slot::Int(gil::NowNs());
    case NativeId::TRANSACTION_TIME:  // the same clock, without the outside effect (PyPy's transaction.time())
      return Slot::Int(gil::NowNs());
    case NativeId::SHOULD_STOP:
      return Slot::Int(vm.stop_requested() ? 1 : 0);
    case NativeId::PRINT:
      vm.model_.OnExternalEffectAt(vm.me_, info.name, SiteOf(fp, pc));
      fmt::print("{}\n", args[0].is_int()     ? std::to_string(args[0].i)
                          : args[0].is_bytes() ? args[0].bytes()
                                               : fmt::format("table({})", heap->Len(*args[0].str->table)));
      std::fflush(stdout);
      return Slot::Int(0);
  }
  Fail(sp, fp, pc, "unknown native");
}

Slot* Vm::Impl::StringOp(Op op, Slot* sp, const Frame* fp, const Instr* pc) {
  sp_at_error = sp;  // every failure below, and any allocation failure, leaves the stack as it is
  // The allocation hook: a new string goes to the parallel context's arena
  // when this thread runs one (context_arena.h), past its limit a VmError.
  auto NewBytes = [&](std::string bytes) {
    try {
      return Slot::NewStr(MakeBytes(std::move(bytes)));
    } catch (const AccessRefused& e) {
      Fail(sp, fp, pc, e.what());
    }
  };
  switch (op) {
    case Op::LEN: {
      Slot* s = sp - 1;
      if (s->is_int()) Fail(sp, fp, pc, "expects bytes or a table, got int");
      const auto n = s->is_table() ? heap->Len(*s->str->table) : static_cast<int64_t>(s->bytes().size());
      DecRef(s->str);
      *s = Slot::Int(n);
      return sp;
    }
    case Op::CONCAT: {
      Slot* x = sp - 2;
      Slot* y = sp - 1;
      if (!x->is_bytes() || !y->is_bytes()) {
        Fail(sp, fp, pc, fmt::format("expects two bytes, got {} and {}", TypeName(*x), TypeName(*y)));
      }
      if (x->bytes().size() + y->bytes().size() > kMaxStringBytes) {
        Fail(sp, fp, pc, fmt::format("result longer than {} bytes", kMaxStringBytes));
      }
      const Slot r = NewBytes(x->bytes() + y->bytes());
      DecRef(x->str);
      DecRef(y->str);
      *x = r;
      return sp - 1;
    }
    case Op::BYTE_AT: {
      Slot* s = sp - 2;
      const Slot* i = sp - 1;
      if (!s->is_bytes() || !i->is_int()) {
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
      if (!s->is_bytes() || !i->is_int() || !j->is_int()) {
        Fail(sp, fp, pc, fmt::format("expects bytes, int, int, got {}, {}, {}", TypeName(*s), TypeName(*i), TypeName(*j)));
      }
      const auto n = static_cast<int64_t>(s->bytes().size());
      if (i->i < 0 || i->i > j->i || j->i > n) {
        Fail(sp, fp, pc, fmt::format("slice [{}, {}) out of range for {} bytes", i->i, j->i, n));
      }
      const Slot r = NewBytes(s->bytes().substr(static_cast<size_t>(i->i), static_cast<size_t>(j->i - i->i)));
      DecRef(s->str);
      *s = r;
      return sp - 2;
    }
    case Op::ITOA: {
      Slot* s = sp - 1;
      if (!s->is_int()) Fail(sp, fp, pc, fmt::format("expects an int, got {}", TypeName(*s)));
      char digits[24];
      const auto res = std::to_chars(digits, digits + sizeof(digits), s->i);
      *s = NewBytes(std::string(digits, res.ptr));
      return sp;
    }
    case Op::ATOI: {
      Slot* s = sp - 1;
      if (!s->is_bytes()) Fail(sp, fp, pc, fmt::format("expects bytes, got {}", TypeName(*s)));
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

Regs Vm::Impl::Grow(Frame* fp, Slot* sp, const Instr* pc, const Function* f) {
  sp_at_error = sp;
  Coroutine::State* co = running_co;
  if (fp + 1 == frames_end) {
    const size_t depth_limit = std::max<size_t>(options.max_call_depth, 1);
    if (co == nullptr || co->frames_cap >= depth_limit) {
      Fail(sp, fp, pc, fmt::format("call depth exceeds max_call_depth ({}) calling '{}'", options.max_call_depth, f->name));
    }
    const size_t cap = std::min(depth_limit, co->frames_cap * 2);
    auto* grown = static_cast<Frame*>(std::realloc(co->frames, cap * sizeof(Frame)));
    if (grown == nullptr) throw std::bad_alloc();
    fp = grown + (fp - co->frames);
    co->frames = grown;
    co->frames_cap = cap;
    frames_base = grown;
    frames_end = grown + cap;
  }
  const size_t callee_base = static_cast<size_t>(sp - stack_base) - static_cast<size_t>(f->nparams);
  const size_t need = callee_base + static_cast<size_t>(f->nlocals + f->max_depth);
  if (need > static_cast<size_t>(stack_limit - stack_base)) {
    if (co == nullptr || need > options.max_stack) {
      Fail(sp, fp, pc, fmt::format("stack overflow calling '{}': max_stack is {} values", f->name, options.max_stack));
    }
    const size_t cap = std::min(options.max_stack, std::max(need, co->stack_cap * 2));
    // Slots are plain pairs (a pointer and an int): moving them is a copy.
    auto* grown = static_cast<Slot*>(std::realloc(static_cast<void*>(co->stack), cap * sizeof(Slot)));
    if (grown == nullptr) throw std::bad_alloc();
    const auto sp_at = sp - stack_base;
    for (Frame* fr = frames_base; fr <= fp; ++fr) fr->base = grown + (fr->base - stack_base);
    co->stack = grown;
    co->stack_cap = cap;
    stack_base = grown;
    stack_limit = grown + cap;
    sp = grown + sp_at;
    sp_at_error = sp;
  }
  return {pc, sp, fp};
}

void Vm::Impl::CheckPointSlow(Vm& vm, Slot* sp) {
  sp_at_error = sp;
  vm.model_.OnCheckPoint(vm.me_);
}

void Vm::Impl::TickSlow(Vm& vm, Slot* sp) {
  sp_at_error = sp;
  vm.model_.OnTick(vm.me_);
}

void Vm::Impl::HeapAccessSlow(Vm& vm, Slot* sp, const Frame* fp, const Instr* pc, HeapAccess access) {
  sp_at_error = sp;
  access.site = SiteOf(fp, pc);
  try {
    vm.model_.OnHeapAccess(vm.me_, access);
  } catch (const AccessRefused& e) {
    const Instr& in = pc[-1];
    const bool global = in.op == Op::GLOAD || in.op == Op::GSTORE;
    Fail(sp, fp, pc, fmt::format("{}: {}", e.what(),
                                 global ? fmt::format("global '{}'", program->globals[static_cast<size_t>(in.a)])
                                        : std::string("a main-heap table")));
  }
}

SourceSite Vm::Impl::SiteOf(const Frame* fp, const Instr* pc) const {
  const Function& f = *fp->fn;
  const auto index = static_cast<size_t>(pc - f.code.data()) - 1;  // pc has moved past the instruction
  const SourcePos p = index < f.pos.size() ? f.pos[index] : f.declared_at;
  return {.program = program->source_name, .function = f.name, .line = p.line};
}

void Vm::Impl::LoadGlobal(Cell& cell, Slot* sp) {
  sp_at_error = sp;
  *sp = heap->Load(cell);
}

void Vm::Impl::StoreGlobal(Cell& cell, Slot* sp) {
  sp_at_error = sp;  // sp[0], the value, is consumed by Store
  heap->Store(cell, *sp);
}

Slot* Vm::Impl::TableOp(Op op, Slot* sp, const Frame* fp, const Instr* pc) {
  try {
    return TableOpUnchecked(op, sp, fp, pc);
  } catch (const AccessRefused& e) {  // a parallel context's table past its arena's limit
    Fail(sp_at_error, fp, pc, e.what());
  }
}

Slot* Vm::Impl::TableOpUnchecked(Op op, Slot* sp, const Frame* fp, const Instr* pc) {
  sp_at_error = sp;  // every failure below leaves the stack as it is
  auto table_at = [&](const Slot* s) -> Table& {
    if (!s->is_table()) Fail(sp, fp, pc, fmt::format("expects a table, got {}", TypeName(*s)));
    return *s->str->table;
  };
  auto check_key = [&](const Slot* k) {
    if (k->is_table()) Fail(sp, fp, pc, "a table cannot be a key: keys are ints or bytes");
  };
  switch (op) {
    case Op::TNEW:
      *sp = heap->NewTable();
      return sp + 1;
    case Op::TGET: {
      Slot* t = sp - 2;
      Slot* k = sp - 1;
      Table& table = table_at(t);
      check_key(k);
      Slot v;
      if (!heap->Get(table, *k, &v)) Fail(sp, fp, pc, fmt::format("no key {} in the table", KeyText(*k)));
      DecRef(k->str);
      DecRef(t->str);
      *t = v;
      return sp - 1;
    }
    case Op::TSET: {
      Slot* t = sp - 3;
      Slot* k = sp - 2;
      Table& table = table_at(t);
      check_key(k);
      sp_at_error = sp - 1;  // Set consumes the value
      heap->Set(table, *k, sp[-1]);
      DecRef(k->str);
      DecRef(t->str);
      return sp - 3;
    }
    case Op::TDEL:
    case Op::THAS: {
      Slot* t = sp - 2;
      Slot* k = sp - 1;
      Table& table = table_at(t);
      check_key(k);
      const bool r = op == Op::TDEL ? heap->Del(table, *k) : heap->Has(table, *k);
      DecRef(k->str);
      DecRef(t->str);
      if (op == Op::TDEL) return sp - 2;
      *t = Slot::Int(r);
      return sp - 1;
    }
    case Op::TKEYS: {
      Slot* t = sp - 1;
      const Slot keys = heap->Keys(table_at(t));
      DecRef(t->str);
      *t = keys;
      return sp;
    }
    default:
      Fail(sp, fp, pc, "not a table operation");
  }
}

template <bool kBreaker, bool kTicks>
Slot Vm::Impl::RunLoop(Vm& vm, Regs start, const std::atomic<bool>* breaker, int64_t tick_interval) {
  const Slot* const K = program->constants.data();
  const Function* const F = program->functions.data();
  Cell* const* const G = globals.data();
  const bool concurrent_heap = heap->concurrent();
  // Models that must see heap accesses (traits().sees_heap_accesses, e.g. an
  // STM's barriers) get each one reported before it happens; for every other
  // model this is one predictable branch on a register.
  const bool report_heap = report_heap_accesses;
  // kTicks: count instructions, for the model's ticks (tick_interval > 0)
  // and/or for the max_instructions budget.
  [[maybe_unused]] const bool yield_on_tick = kBreaker && tick_interval > 0;
  [[maybe_unused]] const int64_t tick_period = yield_on_tick ? tick_interval : 1024;
  [[maybe_unused]] int64_t ticks = tick_period;
  // A tick's Yield waits for the next check point: a sequence without one
  // (`gload c; push 1; add; gstore c`) stays atomic under `mutex` too (§8).
  [[maybe_unused]] bool tick_yield_due = false;
  [[maybe_unused]] const bool budgeted = options.max_instructions > 0;
  [[maybe_unused]] uint64_t budget_left = options.max_instructions;

  Frame* fp = start.fp;
  Slot* L = fp->base;
  Slot* sp = start.sp;
  const Instr* pc = start.pc;
  // Operands are read from the instruction just dispatched, only by the
  // handlers that use them: decoding eagerly costs registers the loop needs.
#define OP_A (pc[-1].a)
#define OP_B (pc[-1].b)
#define OP_C (pc[-1].c)

#define FAIL(...) Fail(sp, fp, pc, fmt::format(__VA_ARGS__))
#define REPORT_HEAP_AT(kind, object, target)                                                       \
  do {                                                                                             \
    if (report_heap) [[unlikely]] {                                                                \
      HeapAccessSlow(vm, sp, fp, pc, HeapAccess{HeapAccess::Kind::kind, (object), HeapAccess::Target::target}); \
    }                                                                                              \
  } while (0)
#define REPORT_HEAP(kind, object) REPORT_HEAP_AT(kind, object, kTable)
  // The table a table opcode names, for the report (nullptr: not a table; the op fails).
#define TABLE_AT(slot) ((slot)->is_table() ? static_cast<const void*>((slot)->str->table) : nullptr)
  // A check point: a single relaxed load of the model's eval breaker; and a
  // tick that came due since the last check point is served here, so that a
  // sequence without a check point (`gload c; push 1; add; gstore c`) stays
  // atomic under `mutex` too (design §8).
#define CHECK_POINT()                                                                   \
  do {                                                                                  \
    if constexpr (kBreaker) {                                                           \
      if (breaker->load(std::memory_order_relaxed)) [[unlikely]] CheckPointSlow(vm, sp); \
    }                                                                                   \
    if constexpr (kTicks) {                                                             \
      if (tick_yield_due) [[unlikely]] {                                                \
        tick_yield_due = false;                                                         \
        TickSlow(vm, sp);                                                               \
      }                                                                                 \
    }                                                                                   \
  } while (0)
  // The model's ticks: every tick_interval instructions (CPython 2's ticks
  // under `mutex`: let the OS pick a holder), served at the next check point.
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
        if (yield_on_tick) tick_yield_due = true; \
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
    if (!l.is_int()) [[unlikely]] FAIL("cannot add an int to {}", TypeName(l));
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
    if (!sp[-1].is_int()) [[unlikely]] FAIL("cannot negate {}", TypeName(sp[-1]));
    sp[-1].i = WrapSub(0, sp[-1].i);
    NEXT();
  }
  CASE(NOT) {
    if (!sp[-1].is_int()) [[unlikely]] FAIL("expects an int, got {}", TypeName(sp[-1]));
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
    if (!sp[-1].is_int()) [[unlikely]] FAIL("expects an int condition, got {}", TypeName(sp[-1]));
    --sp;
    JUMP_IF(sp->i == 0);
    NEXT();
  }
  CASE(JNZ) {
    if (!sp[-1].is_int()) [[unlikely]] FAIL("expects an int condition, got {}", TypeName(sp[-1]));
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
  // `load a; load c; <arith>` as one instruction: L[a] <op> L[c] pushed.
#define ARITH_LL(name, expr)                                                                 \
  CASE(name) {                                                                              \
    const Slot* x = &L[OP_A];                                                               \
    const Slot* y = &L[static_cast<uint8_t>(OP_C)];                                          \
    if ((x->str != nullptr) | (y->str != nullptr)) [[unlikely]]                             \
      FAIL("expects two ints, got {} and {}", TypeName(*x), TypeName(*y));                  \
    [[maybe_unused]] const int64_t a = x->i;                                                \
    [[maybe_unused]] const int64_t b = y->i;                                                \
    sp->str = nullptr;                                                                      \
    sp->i = (expr);                                                                         \
    ++sp;                                                                                   \
    NEXT();                                                                                 \
  }
  ARITH_LL(ADD_LL, WrapAdd(a, b))
  ARITH_LL(SUB_LL, WrapSub(a, b))
  ARITH_LL(MUL_LL, WrapMul(a, b))
  ARITH_LL(DIV_LL, (b == 0 ? (FAIL("division by zero"), 0) : b == -1 ? WrapSub(0, a) : a / b))
  ARITH_LL(MOD_LL, (b == 0 ? (FAIL("modulo by zero"), 0) : b == -1 ? 0 : a % b))
#undef ARITH_LL

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
    if (fp + 1 == frames_end || stack_limit - callee_base < f->nlocals + f->max_depth) [[unlikely]] {
      const Regs moved = Grow(fp, sp, pc, f);  // a coroutine's stack grows; else FAILs
      fp = moved.fp;
      sp = moved.sp;
      callee_base = sp - f->nparams;  // L is set from it below; the caller's L is fp->base again on RET
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
    if (fp == frames_base) return result;
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
    if (park_pending) [[unlikely]] {  // a coroutine parked in a blocking native: resume after it
      parked = {pc, sp, fp};
      return Slot::Int(0);
    }
    NEXT();
  }

  // The byte-string operations: out of line, off the hot path.
  CASE(LEN) {
    REPORT_HEAP(kRead, TABLE_AT(sp - 1));  // a table's length reads it; nothing for bytes
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

  // The shared heap (heap.h). An int in a non-concurrent heap (every
  // exclusive lock policy) is one plain load or store; in a concurrent one
  // (`none`) the same under the cell's spin lock, inline; the rest (bytes,
  // tables) is out of line.
  CASE(GLOAD) {
    Cell* const c = G[OP_A];
    REPORT_HEAP_AT(kRead, c, kCell);
    if (!concurrent_heap) {
      if (c->value.is_int()) [[likely]] {
        *sp++ = Slot::Int(c->value.i);
        NEXT();
      }
    } else {
      c->lock.lock();
      const bool is_int = c->value.is_int();
      const int64_t value = c->value.i;
      c->lock.unlock();
      if (is_int) [[likely]] {
        *sp++ = Slot::Int(value);
        NEXT();
      }
    }
    LoadGlobal(*c, sp);
    ++sp;
    NEXT();
  }
  CASE(GSTORE) {
    Cell* const c = G[OP_A];
    REPORT_HEAP_AT(kWrite, c, kCell);
    --sp;
    if (sp->is_int()) [[likely]] {
      if (!concurrent_heap) {
        if (c->value.is_int()) [[likely]] {
          c->value.i = sp->i;
          NEXT();
        }
      } else {
        c->lock.lock();
        const bool was_int = c->value.is_int();
        if (was_int) c->value.i = sp->i;
        c->lock.unlock();
        if (was_int) [[likely]] NEXT();
      }
    }
    StoreGlobal(*c, sp);
    NEXT();
  }
  // Tables: an int key of the array part holding an int, in a non-concurrent
  // heap, is read or written inline (Lua's fast path for t[i]); the rest,
  // and every access to a concurrent heap, goes through Heap under its lock.
  CASE(TGET) {
    Slot* const t = sp - 2;
    const Slot* const k = sp - 1;
    REPORT_HEAP(kRead, TABLE_AT(t));
    if (!concurrent_heap && k->str == nullptr && t->is_table()) [[likely]] {
      const Table* const table = t->str->table;
      if (static_cast<uint64_t>(k->i) < table->array.size()) {
        const HeapValue& v = table->array[static_cast<size_t>(k->i)];
        if (v.is_int()) [[likely]] {
          const int64_t value = v.i;
          DecRef(t->str);
          *t = Slot::Int(value);
          --sp;
          NEXT();
        }
      }
    }
    sp = TableOp(Op::TGET, sp, fp, pc);
    NEXT();
  }
  CASE(TSET) {
    Slot* const t = sp - 3;
    const Slot* const k = sp - 2;
    const Slot* const v = sp - 1;
    REPORT_HEAP(kWrite, TABLE_AT(t));
    if (!concurrent_heap && ((k->str == nullptr) & (v->str == nullptr)) && t->is_table()) [[likely]] {
      Table* const table = t->str->table;
      const auto key = static_cast<uint64_t>(k->i);
      const size_t size = table->array.size();
      if (key < size && table->array[key].is_int()) [[likely]] {
        table->array[key].i = v->i;
        DecRef(t->str);
        sp -= 3;
        NEXT();
      }
      if (key == size && table->ints.empty()) {
        sp_at_error = sp;  // an allocation failure leaves the stack as it is
        table->array.push_back(HeapValue{.i = v->i, .table = nullptr, .bytes = nullptr});
        DecRef(t->str);
        sp -= 3;
        NEXT();
      }
    }
    sp = TableOp(Op::TSET, sp, fp, pc);
    NEXT();
  }
#define TABLE_OP(name, kind, depth)                     \
  CASE(name) {                                          \
    REPORT_HEAP(kind, TABLE_AT(sp - (depth)));          \
    sp = TableOp(Op::name, sp, fp, pc);                 \
    NEXT();                                             \
  }
  CASE(TNEW) {
    sp = TableOp(Op::TNEW, sp, fp, pc);  // a new table: nobody else can see it yet
    REPORT_HEAP(kCreate, sp[-1].str->table);
    NEXT();
  }
  TABLE_OP(TDEL, kWrite, 2)
  TABLE_OP(THAS, kRead, 2)
  TABLE_OP(TKEYS, kRead, 1)
#undef TABLE_OP

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
#undef REPORT_HEAP
#undef REPORT_HEAP_AT
#undef TABLE_AT
}

Vm::Vm(std::shared_ptr<const Program> program, ExecModel& model, ExecThread& me, VmOptions options)
    : impl_(std::make_unique<Impl>(std::move(program), options)), model_(model), me_(me) {
  if (impl_->program == nullptr) throw VmError("Vm needs a program");
  Impl& m = *impl_;
  m.heap = m.options.heap != nullptr ? m.options.heap : std::make_shared<Heap>(HeapOptions{.concurrent = !model.traits().exclusive});
  m.options.heap = nullptr;  // the Impl's own shared_ptr keeps it alive
  for (const std::string& name : m.program->globals) m.globals.push_back(m.heap->Global(name));
}

Heap& Vm::heap() { return *impl_->heap; }

Vm::~Vm() = default;

const gil::Histogram& Vm::reacquire_wait_ns() const { return impl_->reacquire_wait_ns; }

Slot Vm::Impl::RunOnce(Vm& vm, Regs start) {
  // Read once per attempt: the breaker's address and the tick interval.
  const int64_t tick_interval = options.eval_breaker ? vm.model_.TickInterval() : 0;
  const std::atomic<bool>* breaker = &vm.model_.EvalBreaker(vm.me_);
  report_heap_accesses = vm.model_.traits().sees_heap_accesses;
  const bool ticks = options.max_instructions > 0 || tick_interval > 0;
  if (!options.eval_breaker) {
    return ticks ? RunLoop<false, true>(vm, start, breaker, 0) : RunLoop<false, false>(vm, start, breaker, 0);
  }
  return ticks ? RunLoop<true, true>(vm, start, breaker, tick_interval)
               : RunLoop<true, false>(vm, start, breaker, tick_interval);
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
      result = m.RunOnce(*this, EnterFrame0(f, base, m.frames_base));
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
  if (result.is_table()) {
    DecRef(result.str);
    throw VmError(fmt::format("{}: function '{}' returned a table: return an int or bytes", program.source_name, function));
  }
  Value out = Value::SharedBytes(result.str->bytes);
  DecRef(result.str);
  return out;
}

Coroutine::Coroutine(std::unique_ptr<State> state) : state_(std::move(state)) {}
Coroutine::~Coroutine() = default;

size_t Coroutine::bytes() const {
  return sizeof(Coroutine) + sizeof(State) + state_->stack_cap * sizeof(Slot) + state_->frames_cap * sizeof(Frame);
}

std::unique_ptr<Coroutine> Vm::Start(std::string_view function, const std::vector<Value>& args) {
  Impl& m = *impl_;
  const Program& program = *m.program;
  if (model_.traits().units_may_abort) {
    throw VmError(fmt::format("{}: policy '{}' may abort a unit, which cannot span a coroutine's suspensions",
                              program.source_name, model_.name()));
  }
  const Function* f = program.Find(function);
  if (f == nullptr) throw VmError(fmt::format("{}: no function '{}'", program.source_name, function));
  if (args.size() != static_cast<size_t>(f->nparams)) {
    throw VmError(fmt::format("{}: function '{}' takes {} argument(s), got {}", program.source_name, function,
                              f->nparams, args.size()));
  }
  const auto need = static_cast<size_t>(f->nlocals + f->max_depth);
  if (need > m.options.max_stack) {
    throw VmError(fmt::format("{}: stack overflow calling '{}': max_stack is {} values", program.source_name, function,
                              m.options.max_stack));
  }
  // Small to start: the entry function's needs (a callee grows it, Impl::Grow).
  constexpr size_t kInitialFrames = 4;
  auto state = std::make_unique<Coroutine::State>();
  state->vm = this;
  state->stack_cap = std::max<size_t>(need, 1);
  state->stack = static_cast<Slot*>(std::malloc(state->stack_cap * sizeof(Slot)));
  state->frames_cap = std::min<size_t>(kInitialFrames, std::max<size_t>(m.options.max_call_depth, 1));
  state->frames = static_cast<Frame*>(std::malloc(state->frames_cap * sizeof(Frame)));
  if (state->stack == nullptr || state->frames == nullptr) throw std::bad_alloc();
  Slot* sp = state->stack;
  for (const Value& v : args) {
    *sp++ = v.is_int() ? Slot::Int(v.as_int()) : Slot::NewStr(v.shared_bytes());
    state->regs.sp = sp;  // owned so far, should the next allocation fail
  }
  state->regs = EnterFrame0(f, state->stack, state->frames);
  return std::unique_ptr<Coroutine>(new Coroutine(std::move(state)));
}

Coroutine::Status Vm::Resume(Coroutine& co, Value* result) {
  using Status = Coroutine::Status;
  Impl& m = *impl_;
  Coroutine::State& s = *co.state_;
  if (m.running) throw VmError("Vm::Resume is not re-entrant");
  if (s.vm != this) throw VmError("Vm::Resume of a coroutine made by another Vm");
  if (co.status_ == Status::kDone || co.status_ == Status::kFailed) throw VmError("Vm::Resume of a finished coroutine");
  const Function& entry = *s.frames[0].fn;
  if (co.status_ == Status::kReady) {
    model_.BeginUnit(me_);  // the unit spans every Resume until the end
  }
  m.AttachCoroutine(s);
  m.running = true;
  m.park_pending = false;
  m.sp_at_error = nullptr;
  Slot out;
  try {
    out = m.RunOnce(*this, s.regs);
  } catch (...) {
    // As Call: release what the stack owned where it ended; nothing to resume.
    if (m.sp_at_error != nullptr) {
      for (Slot* p = m.stack_base; p < m.sp_at_error; ++p) DecRef(p->str);
    }
    s.regs.sp = nullptr;
    m.DetachCoroutine();
    m.running = false;
    co.status_ = Status::kFailed;
    model_.EndUnit(me_, UnitEnd::kFailed);
    throw;
  }
  m.DetachCoroutine();
  m.running = false;
  if (m.park_pending) {
    m.park_pending = false;
    s.regs = m.parked;
    co.wait_ = m.park_wait;
    co.status_ = Status::kSuspended;
    return Status::kSuspended;
  }
  s.regs.sp = nullptr;  // RET of frame 0 released the stack
  co.status_ = Status::kFailed;
  const std::string& source = m.program->source_name;
  if (model_.EndUnit(me_, UnitEnd::kCommitted) == UnitVerdict::kRetry) {
    DecRef(out.str);
    throw VmError(fmt::format("{}: function '{}': a coroutine's unit cannot be re-run", source, entry.name));
  }
  if (out.is_table()) {
    DecRef(out.str);
    throw VmError(fmt::format("{}: function '{}' returned a table: return an int or bytes", source, entry.name));
  }
  co.status_ = Status::kDone;
  if (result != nullptr) *result = out.is_int() ? Value::Int(out.i) : Value::SharedBytes(out.str->bytes);
  DecRef(out.str);
  return Status::kDone;
}

std::string Vm::Where(const Coroutine& co) const {
  const Coroutine::State& s = *co.state_;
  const Function& entry = *s.frames[0].fn;
  if (co.status() != Coroutine::Status::kSuspended || s.regs.fp == nullptr) {
    return fmt::format("{}:{} ({})", impl_->program->source_name, entry.declared_at.line, entry.name);
  }
  const Function& f = *s.regs.fp->fn;
  const auto index = static_cast<size_t>(s.regs.pc - f.code.data()) - 1;  // the native, just run
  const SourcePos p = index < f.pos.size() ? f.pos[index] : f.declared_at;
  return fmt::format("{}:{} ({})", impl_->program->source_name, p.line, f.name);
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
