// clock.h — NowNs(), the monotonic nanosecond clock every layer timestamps
// with, cheap enough to read twice per lock hold.
//
// The lock's statistics read the clock at every acquisition and release, so
// the clock is most of what they cost. clock_gettime(CLOCK_MONOTONIC) costs
// ~21 ns on the reference VM (the vDSO's fenced TSC read, seqlock and
// scaling); a bare RDTSC costs ~9 ns. Where the TSC is the kernel's own
// clocksource and is invariant (constant rate, runs in every C-state), NowNs()
// reads it and scales it with a per-thread anchor:
//
//   NowNs() = anchor.ns + (rdtsc - anchor.tsc) * ns_per_tick
//
// Guarantees:
//   C1  Per thread, NowNs() never goes backwards: after a re-anchor, a
//       thread's readings stay at the last value it could have returned
//       (its floor) until the clock passes it.
//   C2  NowNs() stays within ~100 ns of CLOCK_MONOTONIC (the clock of
//       std::chrono::steady_clock and of the futex deadlines): each thread
//       re-anchors on a real CLOCK_MONOTONIC reading at least every
//       kAnchorWindowNs of TSC time, or at once when the TSC it reads is
//       behind its anchor (a core whose TSC lags), so the scale's error
//       cannot accumulate beyond one window (the floor holds readings still,
//       it never moves the anchor). The scale itself is measured against
//       CLOCK_MONOTONIC over ever longer spans of the process's life (1 ms,
//       2 ms, 4 ms, ...), so it keeps improving.
//   C3  Elsewhere (not x86-64, a TSC that is not invariant, a kernel that
//       chose another clocksource, GILLAB_CLOCK=kernel in the environment, or
//       SetClockSource(kKernel)) NowNs() is clock_gettime(CLOCK_MONOTONIC).
// Timestamps from different threads are comparable within C2's bound; a
// difference of two readings on different threads may come out a few tens of
// ns negative, so callers that subtract across threads clamp at 0.
//
//   int64_t t0 = gil::NowNs();
//   ...
//   int64_t elapsed_ns = gil::NowNs() - t0;
#pragma once

#include <cstdint>
#include <string_view>

namespace gillab::gil {

enum class ClockSource { kTsc, kKernel };

int64_t NowNs();
// clock_gettime(CLOCK_MONOTONIC) in ns, whatever the source.
int64_t KernelNowNs();
// Which source NowNs() uses now.
ClockSource ActiveClockSource();
std::string_view ClockSourceName(ClockSource source);  // "tsc", "kernel"
// Switches NowNs() to `wanted` if this machine can use it (kTsc only where
// C3 allows it) and returns the source in use afterwards. Each thread moves
// over at its next anchor, within kAnchorWindowNs. For tests and for
// machines whose TSC is suspect.
ClockSource SetClockSource(ClockSource wanted);

namespace clock_internal {

inline constexpr int64_t kAnchorWindowNs = 1'000'000;

// One thread's anchor. Zero-initialised: a window of 0 ticks sends the first
// read (and every read while the source is the kernel) to SlowNowNs().
struct Anchor {
  uint64_t tsc;
  int64_t ns;        // CLOCK_MONOTONIC when the TSC read `tsc`
  int64_t floor_ns;  // C1: no reading below this
  uint64_t ns_per_tick_q32;  // ns per TSC tick, 32.32 fixed point
  uint64_t window_ticks;
};
extern constinit thread_local Anchor anchor;

int64_t SlowNowNs();

}  // namespace clock_internal

inline int64_t NowNs() {
#if defined(__x86_64__)
  clock_internal::Anchor& a = clock_internal::anchor;
  // Unsigned: a TSC behind the anchor wraps to a huge delta and re-anchors.
  const uint64_t delta = __builtin_ia32_rdtsc() - a.tsc;
  if (delta < a.window_ticks) [[likely]] {
    const int64_t ns = a.ns + static_cast<int64_t>((delta * a.ns_per_tick_q32) >> 32);
    return ns > a.floor_ns ? ns : a.floor_ns;
  }
#endif
  return clock_internal::SlowNowNs();
}

}  // namespace gillab::gil
