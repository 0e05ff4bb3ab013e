// context_arena.cc — see context_arena.h.
#include "interp/context_arena.h"

#include <algorithm>
#include <cstring>

#include <fmt/core.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define GILLAB_POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define GILLAB_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define GILLAB_POISON(p, n) ((void)(p), (void)(n))
#define GILLAB_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#include "interp/exec_model.h"

namespace gillab::interp {
namespace {
thread_local ContextArena* current_arena = nullptr;
}  // namespace

ContextArena::ContextArena(int64_t max_bytes) : max_bytes_(max_bytes) {}

ContextArena::~ContextArena() {
  Reset();
  for (Chunk& c : chunks_) GILLAB_UNPOISON(c.memory.get(), c.bytes);
}

ContextArena* ContextArena::Current() { return current_arena; }
void ContextArena::SetCurrent(ContextArena* arena) { current_arena = arena; }

void ContextArena::Count(size_t bytes) {
  charged_ += static_cast<int64_t>(bytes);
  high_water_ = std::max(high_water_, charged_);
  if (max_bytes_ > 0 && charged_ > max_bytes_) {
    throw AccessRefused(fmt::format("the parallel context allocated more than --context-max-bytes ({} bytes)",
                                    max_bytes_));
  }
}

void ContextArena::Charge(size_t bytes) { Count(bytes); }

void* ContextArena::Allocate(size_t bytes, size_t align) {
  Count(bytes);
  for (;;) {
    if (current_ < chunks_.size()) {
      Chunk& c = chunks_[current_];
      const auto base = reinterpret_cast<uintptr_t>(c.memory.get());
      const size_t start = ((base + c.used + align - 1) & ~(uintptr_t{align} - 1)) - base;
      if (start + bytes <= c.bytes) {
        c.used = start + bytes;
        char* p = c.memory.get() + start;
        GILLAB_UNPOISON(p, bytes);
        return p;
      }
      if (current_ + 1 < chunks_.size()) {
        ++current_;
        continue;
      }
    }
    Chunk c;
    c.bytes = std::max(kChunkBytes, bytes + align);
    c.memory = std::make_unique<char[]>(c.bytes);  // zeroed
    GILLAB_POISON(c.memory.get(), c.bytes);
    chunks_.push_back(std::move(c));
    current_ = chunks_.size() - 1;
  }
}

bool ContextArena::Contains(const void* p) const {
  const char* q = static_cast<const char*>(p);
  for (const Chunk& c : chunks_) {
    if (q >= c.memory.get() && q < c.memory.get() + c.bytes) return true;
  }
  return false;
}

void ContextArena::Reset() {
  ReleaseArenaTables(*this);
  for (Chunk& c : chunks_) {
    GILLAB_UNPOISON(c.memory.get(), c.used);
    std::memset(c.memory.get(), 0, c.used);
    GILLAB_POISON(c.memory.get(), c.bytes);
    c.used = 0;
  }
  current_ = 0;
  charged_ = 0;
  ++resets_;
}

std::shared_ptr<const std::string> MakeBytes(std::string s) {
  ContextArena* arena = current_arena;
  if (arena == nullptr) return std::make_shared<const std::string>(std::move(s));
  if (s.size() >= sizeof(std::string)) arena->Charge(s.size());  // a buffer on malloc, owned by the string
  return std::allocate_shared<const std::string>(ArenaAllocator<std::string>(arena), std::move(s));
}

}  // namespace gillab::interp
