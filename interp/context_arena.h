// context_arena.h — the memory of one parallel context (design §12, issue 14):
// where a handler running outside the engine's lock puts every table and
// string it makes, freed whole once its reply has been copied out.
//
// Model. A ContextArena is a bump allocator over 64 KiB chunks that it keeps
// across Reset()s (a worker reuses them request after request: memory stays
// flat, PyParallel's "Not enough storage" after leaked contexts cannot
// happen). While a thread has an arena installed (SetCurrent, done by the
// parallel execution model around each unit), Heap::NewTable places the
// table in it (Table::arena names it) and MakeBytes places a string's
// control block and std::string header in it. Bytes longer than the
// string's inline buffer keep their buffer on malloc, owned by the string
// and freed with it; Charge() counts them against the limit all the same.
//
// Accounting. Every byte allocated here, every string's bytes and every
// entry written into a context table (Charge) counts toward max_bytes; past
// it, Allocate and Charge throw AccessRefused (exec_model.h), which the VM
// turns into a VmError naming the instruction: only that request fails.
// high_water_bytes() is the largest total a context reached.
//
// Reset() releases what the context's tables still hold (a cycle, a table
// the handler left in a local), destroys them, zeroes the used bytes (no
// request sees a previous one's data) and, under ASan, poisons every chunk,
// so that a pointer kept from a freed context is a reported use after free.
//
//   ContextArena arena(1 << 20);
//   ContextArena::SetCurrent(&arena);  ... run the handler ...  ContextArena::SetCurrent(nullptr);
//   std::string reply = ...;  // copied out
//   arena.Reset();
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace gillab::interp {

struct Table;  // heap.h

class ContextArena {
 public:
  static constexpr size_t kChunkBytes = 64 * 1024;

  // max_bytes: the per-context limit (--context-max-bytes); 0: none.
  explicit ContextArena(int64_t max_bytes = 0);
  ~ContextArena();
  ContextArena(const ContextArena&) = delete;
  ContextArena& operator=(const ContextArena&) = delete;

  // Memory for one object, charged; throws AccessRefused past the limit.
  void* Allocate(size_t bytes, size_t align);
  // Counts bytes the context made outside the chunks; throws past the limit.
  void Charge(size_t bytes);
  // Whether p points into one of this arena's chunks (an object it made).
  bool Contains(const void* p) const;
  // Heap::NewTable registers each table it places here (Reset destroys them).
  void AddTable(Table* t) { tables_.push_back(t); }
  std::vector<Table*>& tables() { return tables_; }
  size_t table_count() const { return tables_.size(); }

  // Frees the context whole (see the header comment). Not while it runs.
  void Reset();

  int64_t used_bytes() const { return charged_; }
  int64_t high_water_bytes() const { return high_water_; }
  int64_t max_bytes() const { return max_bytes_; }
  uint64_t resets() const { return resets_; }
  size_t chunk_count() const { return chunks_.size(); }

  // The calling thread's arena (nullptr: the main heap's ordinary allocation).
  static ContextArena* Current();
  static void SetCurrent(ContextArena* arena);

 private:
  struct Chunk {
    std::unique_ptr<char[]> memory;
    size_t bytes = 0;
    size_t used = 0;
  };
  void Count(size_t bytes);

  const int64_t max_bytes_;
  std::vector<Chunk> chunks_;
  size_t current_ = 0;  // the chunk being filled
  std::vector<Table*> tables_;
  int64_t charged_ = 0;
  int64_t high_water_ = 0;
  uint64_t resets_ = 0;
};

// An allocator for std::allocate_shared: memory from the arena, freed whole.
template <class T>
struct ArenaAllocator {
  using value_type = T;
  explicit ArenaAllocator(ContextArena* a) : arena(a) {}
  template <class U>
  ArenaAllocator(const ArenaAllocator<U>& o) : arena(o.arena) {}  // NOLINT: rebinding
  T* allocate(size_t n) { return static_cast<T*>(arena->Allocate(n * sizeof(T), alignof(T))); }
  void deallocate(T*, size_t) {}
  template <class U>
  bool operator==(const ArenaAllocator<U>& o) const { return arena == o.arena; }
  ContextArena* arena;
};

// A new immutable string: in the calling thread's arena when it has one
// (charged, may throw AccessRefused), else an ordinary make_shared.
std::shared_ptr<const std::string> MakeBytes(std::string s);

// heap.cc: releases what the arena's tables hold and destroys them (Reset).
void ReleaseArenaTables(ContextArena& arena);

}  // namespace gillab::interp
