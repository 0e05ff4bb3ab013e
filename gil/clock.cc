// clock.cc — the slow half of NowNs(): deciding whether the TSC can be used,
// measuring its scale against CLOCK_MONOTONIC, and re-anchoring a thread.
#include "gil/clock.h"
#include "gil/platform.h"

#include <time.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

namespace gillab::gil {

namespace clock_internal {
constinit thread_local Anchor anchor{};
}  // namespace clock_internal

namespace {

using clock_internal::Anchor;
using clock_internal::kAnchorWindowNs;

constexpr int64_t kMinScaleSpanNs = 1'000'000;  // the first scale is measured over >= 1 ms

enum : int { kUndecided = 0, kUseTsc = 1, kUseKernel = 2 };
constinit std::atomic<int> g_source{kUndecided};

int64_t ReadTsc() {
#if defined(__x86_64__)
  return static_cast<int64_t>(__builtin_ia32_rdtsc());
#else
  return 0;
#endif
}

// The TSC is usable when it ticks at a constant rate through every power
// state (CPUID 0x80000007 EDX bit 8, "invariant TSC") and the kernel itself
// trusts it as its clocksource (it checks the TSCs of all cores agree, and
// leaves them when its watchdog sees one drift).
bool TscUsable() {
#if defined(__x86_64__)
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid(0x80000007, &eax, &ebx, &ecx, &edx) == 0 || (edx & (1u << 8)) == 0) return false;
  std::FILE* f = std::fopen("/sys/devices/system/clocksource/clocksource0/current_clocksource", "r");
  if (f == nullptr) return false;
  char name[32] = {};
  const bool read = std::fgets(name, sizeof name, f) != nullptr;
  std::fclose(f);
  return read && std::strcmp(name, "tsc\n") == 0;
#else
  return false;
#endif
}

int Source() {
  int source = g_source.load(std::memory_order_relaxed);
  if (source != kUndecided) return source;
  const char* env = std::getenv("GILLAB_CLOCK");
  const bool kernel_wanted = env != nullptr && std::strcmp(env, "kernel") == 0;
  source = !kernel_wanted && TscUsable() ? kUseTsc : kUseKernel;
  int expected = kUndecided;  // a racing first reader decided the same, or SetClockSource did
  return g_source.compare_exchange_strong(expected, source) ? source : expected;
}

// A (TSC, CLOCK_MONOTONIC) pair read as close together as we can: the best
// of three tries, the kernel read bracketed by two TSC reads.
struct Pair {
  int64_t tsc;
  int64_t ns;
};

Pair ReadPair() {
  Pair best{};
  int64_t best_spread = INT64_MAX;
  for (int i = 0; i < 3; ++i) {
    const int64_t before = ReadTsc();
    const int64_t ns = KernelNowNs();
    const int64_t after = ReadTsc();
    if (after - before >= 0 && after - before < best_spread) {
      best_spread = after - before;
      best = {before + (after - before) / 2, ns};
    }
  }
  if (best_spread == INT64_MAX) best = {ReadTsc(), KernelNowNs()};  // the TSC went backwards each time
  return best;
}

// The TSC's scale, ns per tick in 32.32 fixed point, measured between the
// first pair any thread read and the latest, re-measured whenever the span
// has doubled. 0 until the span reaches kMinScaleSpanNs.
class Scale {
 public:
  uint64_t Refine(const Pair& p) {
    std::unique_lock lock(mu_, std::try_to_lock);  // busy: someone is refining it, use what there is
    if (lock.owns_lock()) {
      if (!has_base_) {
        base_ = p;
        has_base_ = true;
      } else {
        const int64_t span_ns = p.ns - base_.ns;
        const int64_t span_ticks = p.tsc - base_.tsc;
        if (span_ns >= kMinScaleSpanNs && span_ns >= 2 * span_ns_ && span_ticks > 0) {
          span_ns_ = span_ns;
          const unsigned __int128 q32 = (static_cast<unsigned __int128>(span_ns) << 32) / span_ticks;
          // Implausible scales (a TSC below 1 MHz or above 1 THz) mean no scale at all.
          const bool plausible = q32 >= (uint64_t{1} << 32) / 1000 && q32 <= (uint64_t{1000} << 32);
          q32_.store(plausible ? static_cast<uint64_t>(q32) : 0, std::memory_order_relaxed);
        }
      }
    }
    return q32_.load(std::memory_order_relaxed);
  }

 private:
  std::mutex mu_;
  bool has_base_ = false;  // guarded by mu_, as are base_ and span_ns_
  Pair base_{};
  int64_t span_ns_ = 0;
  std::atomic<uint64_t> q32_{0};
};

Scale& TheScale() {
  static Scale scale;
  return scale;
}

}  // namespace

int64_t KernelNowNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

ClockSource ActiveClockSource() { return Source() == kUseTsc ? ClockSource::kTsc : ClockSource::kKernel; }

std::string_view ClockSourceName(ClockSource source) {
  return source == ClockSource::kTsc ? "tsc" : "kernel";
}

ClockSource SetClockSource(ClockSource wanted) {
  Source();  // decide first, so that the environment cannot override this choice later
  const bool tsc = wanted == ClockSource::kTsc && TscUsable();
  g_source.store(tsc ? kUseTsc : kUseKernel, std::memory_order_relaxed);
  return tsc ? ClockSource::kTsc : ClockSource::kKernel;
}

namespace clock_internal {

int64_t SlowNowNs() {
  // A simulated thread (platform.h) reads its simulator's clock. Its anchor
  // stays empty (window 0), so every one of its reads comes here.
  if (Platform* p = ThreadPlatform()) [[unlikely]] return p->NowNs();
  Anchor& a = anchor;
  // C1: the highest value this thread's old anchor could have given (its
  // end of window, or now if earlier); the scale may have run a little fast.
  int64_t floor_ns = a.floor_ns;
  if (a.window_ticks != 0) {
    const uint64_t delta = std::min(static_cast<uint64_t>(ReadTsc()) - a.tsc, a.window_ticks);
    floor_ns = std::max(floor_ns, a.ns + static_cast<int64_t>((delta * a.ns_per_tick_q32) >> 32));
  }
  if (Source() != kUseTsc) {
    a.window_ticks = 0;
    a.floor_ns = floor_ns;  // a switch from the TSC: hold still until the kernel clock passes it
    return std::max(KernelNowNs(), floor_ns);
  }
  const Pair p = ReadPair();
  const uint64_t q32 = TheScale().Refine(p);
  a.tsc = static_cast<uint64_t>(p.tsc);
  a.ns = p.ns;
  a.floor_ns = floor_ns;
  a.ns_per_tick_q32 = q32;
  // Ticks in one window; the product delta * q32 stays far below 2^64.
  a.window_ticks = q32 == 0 ? 0 : static_cast<uint64_t>((static_cast<unsigned __int128>(kAnchorWindowNs) << 32) / q32);
  return std::max(p.ns, floor_ns);
}

}  // namespace clock_internal

namespace platform_internal {
constinit thread_local Platform* current = nullptr;
}  // namespace platform_internal

void SetThreadPlatform(Platform* p) {
  platform_internal::current = p;
  // Empty the anchor: NowNs()'s fast path is then never taken and every read
  // reaches SlowNowNs(), which asks the platform (or re-anchors on the real clock).
  clock_internal::anchor = {};
}

}  // namespace gillab::gil
