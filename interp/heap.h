// heap.h — the shared heap of design §8: globals (named cells) and tables
// (mutable maps from int or byte-string keys to values) shared by every VM
// thread of one engine. It is what a GIL exists to protect.
//
// Values. On a VM's stack a value is a Slot (slot.h): an int, or a pointer to
// a thread-local box (Str) holding either immutable bytes or one counted
// reference to a Table. In the heap (a global cell, a table entry) a value is
// a HeapValue: an int, a shared_ptr to the bytes, or a counted Table*. Boxes
// never cross threads: loading a string or a table from the heap makes a new
// box on the loading thread (one allocation, one atomic increment), storing
// one takes a count on the bytes or the table (one atomic increment) and
// drops the stack's box. Ints are copied and never allocate.
//
// Ownership. A Table's count is atomic (threads drop references at any
// time); the Heap also keeps every live table on a list, so a cycle (a table
// holding itself, two tables holding each other) is not a crash but a leak
// until the Heap is destroyed, which then frees every table left. A Heap must
// outlive its Vms (each Vm holds a shared_ptr to it). Releasing a table is
// iterative: a long chain of nested tables does not recurse on the C++ stack.
//
// Atomicity. With HeapOptions::concurrent == false (every exclusive lock
// policy: one VM thread runs at a time and the lock orders every access)
// cells and tables are read and written plainly, and a bytecode sequence
// without a check point is atomic. With concurrent == true (policy `none`,
// later `stm`) every single operation (a cell load or store, a table get /
// set / delete / has / len / keys) takes that cell's or table's spin lock, as
// PEP 703 takes a per-object lock: each operation is atomic on its own,
// sequences race and lose updates, and the host never has a data race.
//
//   auto heap = std::make_shared<Heap>(HeapOptions{.concurrent = !gil->exclusive()});
//   Cell* c = heap->Global("counter");      // created holding 0 on first use
//   Slot v = heap->Load(*c);                // the caller owns v
//   heap->Store(*c, Slot::Int(1));          // consumes the slot's reference
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "interp/slot.h"

namespace gillab::interp {

// A one-byte-state test-and-test-and-set lock for the concurrent heap: held
// for a few dozen instructions only; a waiter spins briefly, then yields its
// core (the machines have 2 cores and a preempted holder must get to run).
class SpinLock {
 public:
  void lock() {
    while (locked_.exchange(true, std::memory_order_acquire)) WaitUnlocked();
  }
  void unlock() { locked_.store(false, std::memory_order_release); }

 private:
  void WaitUnlocked();
  std::atomic<bool> locked_{false};
};

struct Table;
class Heap;
class ContextArena;  // context_arena.h

// A value as the heap stores it: exactly one of int, bytes, table. A plain
// struct: moving one does not clear `table`, so code that moves a value out
// and then drops the source uses std::exchange(v, HeapValue{}).
struct HeapValue {
  int64_t i = 0;
  Table* table = nullptr;                    // a counted reference when non-null
  std::shared_ptr<const std::string> bytes = nullptr;  // non-null: bytes
  bool is_int() const { return table == nullptr && bytes == nullptr; }
};

// A table's array part: the values of keys 0..size()-1, in chunks of 256 so
// that growing never copies and a filled-then-freed table's memory returns
// to malloc's free lists instead of costing fresh pages (page faults) again.
class ArrayPart {
 public:
  static constexpr size_t kChunk = 256;
  size_t size() const { return size_; }
  HeapValue& operator[](size_t k) { return chunks_[k / kChunk][k % kChunk]; }
  const HeapValue& operator[](size_t k) const { return chunks_[k / kChunk][k % kChunk]; }
  void push_back(HeapValue v) {
    if (size_ == chunks_.size() * kChunk) chunks_.push_back(std::make_unique<HeapValue[]>(kChunk));
    (*this)[size_++] = std::move(v);
  }
  // Drops keys n..size()-1 without releasing what they hold (the caller moved it out).
  void Truncate(size_t n) {
    for (size_t k = n; k < size_; ++k) (*this)[k] = HeapValue{};
    size_ = n;
    chunks_.resize((n + kChunk - 1) / kChunk);
  }

 private:
  std::vector<std::unique_ptr<HeapValue[]>> chunks_;
  size_t size_ = 0;
};

// An STM's ownership record of one cell or table (interp/stm_model.h): who
// reads or writes it in a running atomic unit, and where the last owner
// touched it (an interned site id, for the conflict report). Untouched by
// every other model.
struct StmWord {
  std::atomic<uint64_t> owners{0};
  std::atomic<int32_t> site{-1};
};

// A global: one named cell of the heap.
struct Cell {
  SpinLock lock;  // concurrent heap only
  HeapValue value;
  StmWord stm;    // the stm model only
};

// A table: keys 0..array.size()-1 in a dense array part (Lua's idea: a
// fill-by-index loop never hashes), other int keys and byte-string keys in
// hash maps. Every key in `array` is present.
struct Table {
  std::atomic<int64_t> refs{1};
  Heap* heap = nullptr;
  SpinLock lock;  // concurrent heap only
  ArrayPart array;
  std::unordered_map<int64_t, HeapValue> ints;
  std::unordered_map<std::string, HeapValue> strings;
  Table* prev = nullptr;  // the heap's list of live tables
  Table* next = nullptr;
  StmWord stm;  // the stm model only
  // Non-null: made by a parallel context (context_arena.h), placed in that
  // arena and not on the heap's list; destroyed when the arena is Reset.
  ContextArena* arena = nullptr;
};

// A table's entries copied out, as an STM's undo log keeps them: the copy
// holds its own counts on the bytes and tables it names.
struct TableContents {
  std::vector<HeapValue> array;
  std::unordered_map<int64_t, HeapValue> ints;
  std::unordered_map<std::string, HeapValue> strings;
};

// Undo logging for an STM (stm_model.h). Each takes the object's spin lock.
// Copy* take counts; Restore* put the copy back and drop what the object held
// (freeing tables that only it held); Drop* release a copy not put back.
HeapValue CopyCellValue(Cell& cell);
void RestoreCellValue(Cell& cell, HeapValue saved);
void DropHeapValue(HeapValue& value);
TableContents CopyTableContents(Table& table);
void RestoreTableContents(Table& table, TableContents saved);
void DropTableContents(TableContents& contents);
// One more counted reference to a table (an STM holds the tables of its read
// and write sets); ReleaseTable (slot.h) drops it.
void RetainTable(Table* table);

struct HeapOptions {
  // True when VM threads may run at the same time (policy `none`, `stm`):
  // every heap operation then locks. False under every exclusive lock policy.
  bool concurrent = false;
};

class Heap {
 public:
  explicit Heap(HeapOptions options = {});
  ~Heap();
  Heap(const Heap&) = delete;
  Heap& operator=(const Heap&) = delete;

  bool concurrent() const { return concurrent_; }

  // The cell named `name`, created holding 0 on first use; the address is
  // stable for the Heap's life. Thread-safe (a mutex: call it when a Vm is
  // built, not per instruction).
  Cell* Global(std::string_view name);
  // Which globals exist and what they hold (tests, `gillab race`): ints in
  // decimal, bytes as they are, a table as "table(N)".
  std::map<std::string, std::string> Dump();

  // A value read from the heap, as a new slot the caller owns.
  Slot Load(Cell& cell);
  // Consumes `value`'s reference (the stack's box is dropped).
  void Store(Cell& cell, Slot value);

  // Tables. `key` must be an int or bytes slot (the VM checks it first).
  // NewTable on a thread running a parallel context (ContextArena::Current())
  // places the table in that arena (may throw AccessRefused past its limit).
  Slot NewTable();                                         // a box holding a new, empty table
  bool Get(Table& t, const Slot& key, Slot* out);          // false: no such key
  void Set(Table& t, const Slot& key, Slot value);         // consumes value
  bool Del(Table& t, const Slot& key);                     // false: there was no such key
  bool Has(Table& t, const Slot& key);
  int64_t Len(Table& t);
  Slot Keys(Table& t);  // a new table {0: k0, 1: k1, ...}: int keys ascending, then bytes bytewise

  // Tables alive now (cycles included): for leak tests.
  int64_t live_tables();

  // Converting between the two representations (see the header comment).
  static HeapValue ToHeap(Slot value);  // consumes value
  static Slot FromHeap(const HeapValue& v);
  // Internal: takes a table whose count reached zero off the list of live tables.
  void Unlink(Table* t);

 private:

  const bool concurrent_;
  std::mutex mu_;  // cells_ / names_ / the table list
  std::deque<Cell> cells_;
  std::unordered_map<std::string, Cell*> names_;
  Table* tables_ = nullptr;
  int64_t live_tables_ = 0;
};

}  // namespace gillab::interp
