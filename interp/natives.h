// natives.h — the functions a program reaches with `native NAME` (or `call
// NAME` when no function of the program has that name). One X-macro list; the
// assembler resolves names through it and the VM dispatches on NativeId.
//
// Every native has a fixed arity and returns exactly one value (0 when it has
// nothing to say), so the verifier knows its stack effect. Natives are not
// check points. The blocking one, sleep_us, RELEASES the lock around its wait
// the way CPython's time.sleep does (Py_BEGIN_ALLOW_THREADS); spin_holding_us
// burns CPU while keeping it, like a C extension that never drops the GIL.
//
//   X(NAME, "name", arity, "what it does")
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace gillab::interp {

#define GILLAB_NATIVES(X)                                                                          \
  X(SLEEP_US, "sleep_us", 1, "(n) -> 0: release the lock, sleep n µs, re-acquire it (a blocking call)") \
  X(BACKEND_US, "backend_us", 1, "(n) -> 0: a simulated downstream call: wait n µs without CPU, lock released (a coroutine yields to its hub)") \
  X(SPIN_HOLDING_US, "spin_holding_us", 1, "(n) -> 0: burn CPU for n µs WITHOUT releasing the lock (ends early on RequestStop)")    \
  X(SET_PRIORITY, "set_priority", 1, "(n) -> 0: set this thread's lock priority (policy `priority`)")   \
  X(NOW_NS, "now_ns", 0, "() -> monotonic clock in ns")                                              \
  X(SHOULD_STOP, "should_stop", 0, "() -> 1 once Vm::RequestStop was called, else 0")                \
  X(PRINT, "print", 1, "(x) -> 0: print x and a newline on stdout (debugging)")                    \
  X(TRANSACTION_TIME, "transaction_time", 0, "() -> monotonic clock in ns that does not make an stm unit inevitable (PyPy's transaction.time())")

enum class NativeId : uint16_t {
#define GILLAB_X(name, text, arity, doc) name,
  GILLAB_NATIVES(GILLAB_X)
#undef GILLAB_X
};

struct NativeInfo {
  std::string_view name;
  int arity;
  std::string_view doc;
};

inline constexpr NativeInfo kNativeInfo[] = {
#define GILLAB_X(name, text, arity, doc) {text, arity, doc},
    GILLAB_NATIVES(GILLAB_X)
#undef GILLAB_X
};
inline constexpr int kNativeCount = static_cast<int>(sizeof(kNativeInfo) / sizeof(kNativeInfo[0]));

inline std::optional<NativeId> FindNative(std::string_view name) {
  for (int i = 0; i < kNativeCount; ++i) {
    if (kNativeInfo[i].name == name) return static_cast<NativeId>(i);
  }
  return std::nullopt;
}

}  // namespace gillab::interp
