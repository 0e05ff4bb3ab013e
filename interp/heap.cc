#include "interp/heap.h"

#include <algorithm>
#include <new>
#include <thread>
#include <utility>

#include <fmt/core.h>

#include "interp/context_arena.h"

namespace gillab::interp {
namespace {

// Locks a cell's or a table's spin lock only when the heap is concurrent.
class MaybeLock {
 public:
  MaybeLock(SpinLock& lock, bool on) : lock_(on ? &lock : nullptr) {
    if (lock_ != nullptr) lock_->lock();
  }
  ~MaybeLock() {
    if (lock_ != nullptr) lock_->unlock();
  }
  MaybeLock(const MaybeLock&) = delete;
  MaybeLock& operator=(const MaybeLock&) = delete;

 private:
  SpinLock* lock_;
};

void TakeRef(Table* t) { t->refs.fetch_add(1, std::memory_order_relaxed); }

// Drops what a value holds; a table whose count reaches zero goes on `dead`.
void DropValue(HeapValue& v, std::vector<Table*>& dead) {
  if (v.table != nullptr && v.table->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) dead.push_back(v.table);
  v.table = nullptr;
  v.bytes.reset();
}

// Frees dead tables and, iteratively, every table only they held.
void FreeTables(std::vector<Table*> dead) {
  while (!dead.empty()) {
    Table* t = dead.back();
    dead.pop_back();
    if (t->arena == nullptr) t->heap->Unlink(t);
    for (size_t k = 0; k < t->array.size(); ++k) DropValue(t->array[k], dead);
    for (auto& [k, v] : t->ints) DropValue(v, dead);
    for (auto& [k, v] : t->strings) DropValue(v, dead);
    if (t->arena == nullptr) delete t;  // an arena's table, emptied, is destroyed by its Reset
  }
}

// The hash-map part a non-array key lives in.
HeapValue* Find(Table& t, const Slot& key) {
  if (key.is_int()) {
    if (key.i >= 0 && static_cast<uint64_t>(key.i) < t.array.size()) return &t.array[static_cast<size_t>(key.i)];
    auto it = t.ints.find(key.i);
    return it == t.ints.end() ? nullptr : &it->second;
  }
  auto it = t.strings.find(key.bytes());
  return it == t.strings.end() ? nullptr : &it->second;
}

}  // namespace

void SpinLock::WaitUnlocked() {
  for (int n = 0; locked_.load(std::memory_order_relaxed); ++n) {
    if (n < 64) {
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    } else {
      std::this_thread::yield();
    }
  }
}

void ReleaseTable(Table* t) {
  if (t->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) FreeTables({t});
}

Heap::Heap(HeapOptions options) : concurrent_(options.concurrent) {}

Heap::~Heap() {
  // Globals first: what they alone hold is freed the ordinary way.
  std::vector<Table*> dead;
  for (Cell& c : cells_) DropValue(c.value, dead);
  FreeTables(std::move(dead));
  // What is left is held only by cycles: free it without following counts.
  while (tables_ != nullptr) {
    Table* t = tables_;
    tables_ = t->next;
    delete t;  // its entries' table pointers are dropped uncounted; bytes are released
  }
}

Cell* Heap::Global(std::string_view name) {
  std::lock_guard lock(mu_);
  auto it = names_.find(std::string(name));
  if (it != names_.end()) return it->second;
  Cell* c = &cells_.emplace_back();
  names_.emplace(std::string(name), c);
  return c;
}

std::map<std::string, std::string> Heap::Dump() {
  std::vector<std::pair<std::string, Cell*>> cells;
  {
    std::lock_guard lock(mu_);
    cells.assign(names_.begin(), names_.end());
  }
  std::map<std::string, std::string> out;
  for (auto& [name, c] : cells) {
    Slot v = Load(*c);
    if (v.is_int()) {
      out[name] = std::to_string(v.i);
    } else if (v.is_bytes()) {
      out[name] = v.bytes();
    } else {
      out[name] = fmt::format("table({})", Len(*v.str->table));
    }
    DecRef(v.str);
  }
  return out;
}

HeapValue Heap::ToHeap(Slot value) {
  HeapValue v;
  if (value.is_int()) {
    v.i = value.i;
    return v;
  }
  if (value.is_table()) {
    v.table = value.str->table;
    TakeRef(v.table);
  } else {
    v.bytes = value.str->bytes;
  }
  DecRef(value.str);
  return v;
}

Slot Heap::FromHeap(const HeapValue& v) {
  if (v.table != nullptr) {
    TakeRef(v.table);
    return Slot::NewTableRef(v.table);
  }
  if (v.bytes != nullptr) return Slot::NewStr(v.bytes);
  return Slot::Int(v.i);
}

Slot Heap::Load(Cell& cell) {
  MaybeLock lock(cell.lock, concurrent_);
  return FromHeap(cell.value);
}

void Heap::Store(Cell& cell, Slot value) {
  HeapValue v = ToHeap(value);
  {
    MaybeLock lock(cell.lock, concurrent_);
    std::swap(cell.value, v);
  }
  std::vector<Table*> dead;  // the old value, released outside the cell's lock
  DropValue(v, dead);
  if (!dead.empty()) FreeTables(std::move(dead));
}

void ReleaseArenaTables(ContextArena& arena) {
  std::vector<Table*> dead;  // main-heap tables whose last reference a context held
  auto drop = [&](HeapValue& v) {
    if (v.table != nullptr && v.table->arena == &arena) {
      v.table = nullptr;  // destroyed below with every table of the arena: not counted
    }
    DropValue(v, dead);
  };
  for (Table* t : arena.tables()) {
    for (size_t k = 0; k < t->array.size(); ++k) drop(t->array[k]);
    for (auto& [k, v] : t->ints) drop(v);
    for (auto& [k, v] : t->strings) drop(v);
  }
  for (Table* t : arena.tables()) t->~Table();
  arena.tables().clear();
  FreeTables(std::move(dead));
}

Slot Heap::NewTable() {
  if (ContextArena* arena = ContextArena::Current()) {
    auto* t = new (arena->Allocate(sizeof(Table), alignof(Table))) Table;
    t->heap = this;
    t->arena = arena;
    arena->AddTable(t);
    return Slot::NewTableRef(t);
  }
  auto* t = new Table;
  t->heap = this;
  {
    std::lock_guard lock(mu_);
    t->next = tables_;
    if (tables_ != nullptr) tables_->prev = t;
    tables_ = t;
    ++live_tables_;
  }
  return Slot::NewTableRef(t);
}

void Heap::Unlink(Table* t) {
  std::lock_guard lock(mu_);
  if (t->prev != nullptr) t->prev->next = t->next; else tables_ = t->next;
  if (t->next != nullptr) t->next->prev = t->prev;
  --live_tables_;
}

int64_t Heap::live_tables() {
  std::lock_guard lock(mu_);
  return live_tables_;
}

bool Heap::Get(Table& t, const Slot& key, Slot* out) {
  MaybeLock lock(t.lock, concurrent_);
  const HeapValue* v = Find(t, key);
  if (v == nullptr) return false;
  *out = FromHeap(*v);
  return true;
}

void Heap::Set(Table& t, const Slot& key, Slot value) {
  HeapValue v = ToHeap(value);
  {
    MaybeLock lock(t.lock, concurrent_);
    if (HeapValue* slot = Find(t, key)) {
      std::swap(*slot, v);
    } else if (key.is_int() && key.i >= 0 && static_cast<uint64_t>(key.i) == t.array.size()) {
      t.array.push_back(std::exchange(v, HeapValue{}));
      // Keys that now continue the array move into it.
      for (auto it = t.ints.find(static_cast<int64_t>(t.array.size())); it != t.ints.end();
           it = t.ints.find(static_cast<int64_t>(t.array.size()))) {
        t.array.push_back(std::move(it->second));
        t.ints.erase(it);
      }
    } else if (key.is_int()) {
      t.ints.emplace(key.i, std::exchange(v, HeapValue{}));
    } else {
      t.strings.emplace(key.bytes(), std::exchange(v, HeapValue{}));
    }
  }
  std::vector<Table*> dead;  // the replaced value, if any (a moved-in value left v empty)
  DropValue(v, dead);
  if (!dead.empty()) FreeTables(std::move(dead));
}

bool Heap::Del(Table& t, const Slot& key) {
  HeapValue old;
  {
    MaybeLock lock(t.lock, concurrent_);
    if (key.is_int() && key.i >= 0 && static_cast<uint64_t>(key.i) < t.array.size()) {
      const auto k = static_cast<size_t>(key.i);
      old = std::move(t.array[k]);
      // The array stays dense: what followed the hole moves to the hash part.
      for (size_t j = k + 1; j < t.array.size(); ++j) t.ints.emplace(static_cast<int64_t>(j), std::move(t.array[j]));
      t.array.Truncate(k);
    } else if (key.is_int()) {
      auto it = t.ints.find(key.i);
      if (it == t.ints.end()) return false;
      old = std::move(it->second);
      t.ints.erase(it);
    } else {
      auto it = t.strings.find(key.bytes());
      if (it == t.strings.end()) return false;
      old = std::move(it->second);
      t.strings.erase(it);
    }
  }
  std::vector<Table*> dead;
  DropValue(old, dead);
  if (!dead.empty()) FreeTables(std::move(dead));
  return true;
}

bool Heap::Has(Table& t, const Slot& key) {
  MaybeLock lock(t.lock, concurrent_);
  return Find(t, key) != nullptr;
}

int64_t Heap::Len(Table& t) {
  MaybeLock lock(t.lock, concurrent_);
  return static_cast<int64_t>(t.array.size() + t.ints.size() + t.strings.size());
}

Slot Heap::Keys(Table& t) {
  std::vector<int64_t> ints;
  std::vector<std::string> strings;
  {
    MaybeLock lock(t.lock, concurrent_);
    ints.reserve(t.array.size() + t.ints.size());
    for (size_t k = 0; k < t.array.size(); ++k) ints.push_back(static_cast<int64_t>(k));
    for (const auto& [k, v] : t.ints) ints.push_back(k);
    strings.reserve(t.strings.size());
    for (const auto& [k, v] : t.strings) strings.push_back(k);
  }
  std::sort(ints.begin(), ints.end());
  std::sort(strings.begin(), strings.end());
  Slot out = NewTable();
  Table& u = *out.str->table;  // not shared yet: no lock needed
  for (int64_t k : ints) u.array.push_back(HeapValue{.i = k, .table = nullptr, .bytes = nullptr});
  try {
    for (std::string& s : strings) {
      u.array.push_back(HeapValue{.i = 0, .table = nullptr, .bytes = MakeBytes(std::move(s))});
    }
  } catch (...) {  // a parallel context past its limit (context_arena.h): the new table goes
    DecRef(out.str);
    throw;
  }
  return out;
}

// --- undo logging for an STM (heap.h) -------------------------------------

namespace {
HeapValue CopyValue(const HeapValue& v) {
  if (v.table != nullptr) TakeRef(v.table);
  return v;
}
}  // namespace

void RetainTable(Table* table) { TakeRef(table); }

HeapValue CopyCellValue(Cell& cell) {
  std::lock_guard lock(cell.lock);
  return CopyValue(cell.value);
}

void RestoreCellValue(Cell& cell, HeapValue saved) {
  {
    std::lock_guard lock(cell.lock);
    std::swap(cell.value, saved);
  }
  DropHeapValue(saved);
}

void DropHeapValue(HeapValue& value) {
  std::vector<Table*> dead;
  DropValue(value, dead);
  if (!dead.empty()) FreeTables(std::move(dead));
}

TableContents CopyTableContents(Table& table) {
  TableContents c;
  std::lock_guard lock(table.lock);
  c.array.reserve(table.array.size());
  for (size_t k = 0; k < table.array.size(); ++k) c.array.push_back(CopyValue(table.array[k]));
  for (const auto& [k, v] : table.ints) c.ints.emplace(k, CopyValue(v));
  for (const auto& [k, v] : table.strings) c.strings.emplace(k, CopyValue(v));
  return c;
}

void RestoreTableContents(Table& table, TableContents saved) {
  TableContents old;
  {
    std::lock_guard lock(table.lock);
    old.array.reserve(table.array.size());
    for (size_t k = 0; k < table.array.size(); ++k) old.array.push_back(std::exchange(table.array[k], HeapValue{}));
    table.array.Truncate(0);
    for (HeapValue& v : saved.array) table.array.push_back(std::exchange(v, HeapValue{}));
    std::swap(table.ints, saved.ints);
    std::swap(table.strings, saved.strings);
    std::swap(old.ints, saved.ints);
    std::swap(old.strings, saved.strings);
  }
  DropTableContents(old);
}

void DropTableContents(TableContents& contents) {
  std::vector<Table*> dead;
  for (HeapValue& v : contents.array) DropValue(v, dead);
  for (auto& [k, v] : contents.ints) DropValue(v, dead);
  for (auto& [k, v] : contents.strings) DropValue(v, dead);
  contents = TableContents{};
  if (!dead.empty()) FreeTables(std::move(dead));
}

}  // namespace gillab::interp
