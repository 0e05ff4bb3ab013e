// slot.h — how the VM holds a value internally: a 16-byte Slot that is either
// an int64 (str == nullptr) or a reference-counted immutable byte string.
//
// Why not vm.h's Value: its std::variant + shared_ptr makes every push and pop
// of an int pay for a visitor and an atomic count. A Slot copy of an int is
// two register moves; the hot loop tests `str == nullptr` and nothing else.
//
// Ownership: a Str made at run time belongs to exactly one Vm (one thread), so
// its count is a plain integer. Program constants are shared by the Vms of
// every thread; they are immortal (refs < 0, as in CPython 3.12) and their
// count is never written. The bytes themselves sit behind a shared_ptr so a
// request enters and a reply leaves the VM without a copy.
//
//   Slot s = Slot::Int(42);                 // no allocation
//   Slot t = Slot::NewStr("abc");           // refs == 1, owned by the caller
//   IncRef(t.str); ... DecRef(t.str);       // each copy on the stack holds one
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace gillab::interp {

struct Str {
  int64_t refs;  // < 0: immortal (a program constant)
  std::shared_ptr<const std::string> bytes;
};

struct Slot {
  Str* str;   // nullptr: the value is the int i
  int64_t i;

  static Slot Int(int64_t v) { return Slot{nullptr, v}; }
  static Slot NewStr(std::shared_ptr<const std::string> bytes) { return Slot{new Str{1, std::move(bytes)}, 0}; }
  static Slot NewStr(std::string bytes) { return NewStr(std::make_shared<const std::string>(std::move(bytes))); }
  bool is_int() const { return str == nullptr; }
  const std::string& bytes() const { return *str->bytes; }
};

inline void IncRef(Str* s) {
  if (s != nullptr && s->refs >= 0) ++s->refs;
}
// Out of line: freeing drops a shared_ptr (an atomic decrement and a call),
// code the dispatch loop should not carry in every handler.
[[gnu::noinline]] inline void FreeStr(Str* s) { delete s; }
inline void DecRef(Str* s) {
  if (s != nullptr && s->refs > 0 && --s->refs == 0) FreeStr(s);
}

}  // namespace gillab::interp
