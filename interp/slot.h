// slot.h — how the VM holds a value internally: a 16-byte Slot that is either
// an int64 (str == nullptr) or a pointer to a reference-counted box (Str)
// holding an immutable byte string or one reference to a heap table (heap.h).
//
// Why not vm.h's Value: its std::variant + shared_ptr makes every push and pop
// of an int pay for a visitor and an atomic count. A Slot copy of an int is
// two register moves; the hot loop tests `str == nullptr` and nothing else.
//
// Ownership: a Str made at run time belongs to exactly one Vm (one thread), so
// its count is a plain integer; what crosses threads is the shared bytes or
// the Table behind it, whose count is atomic (heap.h). Program constants are shared by the Vms of
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

struct Table;  // heap.h
// Drops one reference to a table, freeing it (and what it alone holds) at zero.
void ReleaseTable(Table* t);

// A box: bytes (table == nullptr) or a table reference (bytes unused).
struct Str {
  int64_t refs;  // < 0: immortal (a program constant)
  std::shared_ptr<const std::string> bytes;
  Table* table = nullptr;  // non-null: the box holds one counted reference to this table
};

struct Slot {
  Str* str;   // nullptr: the value is the int i
  int64_t i;

  static Slot Int(int64_t v) { return Slot{nullptr, v}; }
  static Slot NewStr(std::shared_ptr<const std::string> bytes) { return Slot{new Str{1, std::move(bytes)}, 0}; }
  static Slot NewStr(std::string bytes) { return NewStr(std::make_shared<const std::string>(std::move(bytes))); }
  static Slot NewTableRef(Table* t) { return Slot{new Str{1, nullptr, t}, 0}; }  // takes over one reference
  bool is_int() const { return str == nullptr; }
  bool is_table() const { return str != nullptr && str->table != nullptr; }
  bool is_bytes() const { return str != nullptr && str->table == nullptr; }
  const std::string& bytes() const { return *str->bytes; }  // is_bytes() only
};

inline void IncRef(Str* s) {
  if (s != nullptr && s->refs >= 0) ++s->refs;
}
// Out of line: freeing drops a shared_ptr (an atomic decrement and a call),
// code the dispatch loop should not carry in every handler.
[[gnu::noinline]] inline void FreeStr(Str* s) {
  if (s->table != nullptr) ReleaseTable(s->table);
  delete s;
}
inline void DecRef(Str* s) {
  if (s != nullptr && s->refs > 0 && --s->refs == 0) FreeStr(s);
}

}  // namespace gillab::interp
