// trace.h — a timeline of who held the lock, written as Chrome trace-event
// JSON that Perfetto's UI (ui.perfetto.dev) and chrome://tracing open.
//
// What is recorded, per attached thread (one track each, named after the
// ThreadState: `io`, `cpu-0`, ...):
//   waiting          slice, from asking for the lock (Acquire, or the drop
//                    inside Yield) to holding it; none when the Acquire took
//                    the fast path (waited exactly 0 ns, ThreadStats::uncontended)
//   holding          slice, from holding it to Release or Yield
//   blocking I/O     slice, from a Release to the next Acquire (io threads);
//   outside lock     the same for every other role; the first one starts at Attach
//   drop request     instant, on the waiter's track: it asked the holder to yield
//   forced switch    instant, on the holder's track: it honoured a request (Yield)
// The policy and its settings go into the trace's "otherData" and into the
// process name, with the recorder's bounds and how many events they dropped.
//
// Hot path: each ThreadState points at its own TraceBuffer (nullptr when
// tracing is off, so the cost of "off" is one predictable branch per lock
// operation). A buffer is written only by its thread, without any lock, into
// fixed-size chunks; the recorder reads the buffers only after every thread is
// done with the lock. Bounds: at most max_events_per_thread events per thread
// (later ones are counted as dropped), and optionally only events inside the
// window [skip_ms, skip_ms + window_ms) after the recorder was created.
//
// Undefined: writing the trace while a thread still uses the lock, or
// destroying the recorder before the Gil that traces into it.
//
//   gil::TraceRecorder recorder({.max_events_per_thread = 100'000});
//   gil->EnableTrace(&recorder);                    // before any thread attaches
//   ... run, join the threads ...
//   recorder.WriteChromeJson("run.json", R"({"cpu_threads":1})");
#pragma once

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "gil/gil.h"

namespace gillab::gil {

struct TraceOptions {
  // Per thread; further events are dropped and counted (reported in the metadata).
  int64_t max_events_per_thread = 1 << 20;
  // Keep only events that end after skip_ms and begin before skip_ms + window_ms,
  // both counted from the recorder's creation; window_ms = 0 means no end.
  int64_t skip_ms = 0;
  int64_t window_ms = 0;
};

enum class TraceKind : uint8_t { kWait, kHold, kOutside, kDropRequest, kForcedSwitch };
// The event's name in the trace; kOutside depends on the role ("blocking I/O" for io).
std::string_view TraceKindName(TraceKind kind, Role role);

struct TraceEvent {
  int64_t start_ns;  // NowNs() clock
  int64_t end_ns;    // == start_ns for instants
  TraceKind kind;
};

// One thread's events. Written only by that thread (through Gil), read by the
// recorder after the thread is done.
class TraceBuffer {
 public:
  static constexpr int kChunkEvents = 4096;

  Role role() const { return role_; }
  const std::string& name() const { return name_; }
  pid_t tid() const { return tid_; }
  int index() const { return index_; }
  int64_t recorded() const { return recorded_; }
  int64_t dropped() const { return dropped_; }                // over max_events_per_thread
  int64_t outside_window() const { return outside_window_; }  // not in [skip, skip + window)
  // Every recorded event, in recording order (not sorted by time).
  std::vector<TraceEvent> Events() const;

  // The hooks Gil calls. `forced`: a Yield (no "outside" slice follows it).
  void OnAcquired(int64_t asked_ns, int64_t now_ns) {
    if (outside_since_ns_ != 0) Record(TraceKind::kOutside, outside_since_ns_, asked_ns);
    // The fast path waited exactly 0 ns: an empty slice would only cost room.
    if (now_ns != asked_ns) Record(TraceKind::kWait, asked_ns, now_ns);
    holding_since_ns_ = now_ns;
  }
  void OnReleased(int64_t acquired_ns, int64_t now_ns, bool forced) {
    Record(TraceKind::kHold, acquired_ns, now_ns);
    if (forced) Record(TraceKind::kForcedSwitch, now_ns, now_ns);
    outside_since_ns_ = forced ? 0 : now_ns;
    holding_since_ns_ = 0;
  }
  void OnDropRequest(int64_t now_ns) { Record(TraceKind::kDropRequest, now_ns, now_ns); }

 private:
  friend class TraceRecorder;
  using Chunk = std::array<TraceEvent, kChunkEvents>;

  void Record(TraceKind kind, int64_t start_ns, int64_t end_ns) {
    if (end_ns < window_begin_ns_ || start_ns >= window_end_ns_) {
      outside_window_++;
      return;
    }
    if (recorded_ == max_events_) {
      dropped_++;
      return;
    }
    if (pos_ == kChunkEvents) NextChunk();
    (*chunks_.back())[pos_++] = TraceEvent{start_ns, end_ns, kind};
    recorded_++;
  }
  void NextChunk();

  Role role_ = Role::kOther;
  std::string name_;
  pid_t tid_ = 0;
  int index_ = 0;
  int64_t max_events_ = 0;
  int64_t window_begin_ns_ = 0;
  int64_t window_end_ns_ = std::numeric_limits<int64_t>::max();
  std::vector<std::unique_ptr<Chunk>> chunks_;
  int pos_ = kChunkEvents;  // in the last chunk; kChunkEvents = no room
  int64_t recorded_ = 0;
  int64_t dropped_ = 0;
  int64_t outside_window_ = 0;
  int64_t outside_since_ns_ = 0;  // start of the current "outside" slice, 0 if none
  int64_t holding_since_ns_ = 0;  // != 0 while holding: closed at write time if still open
};

class TraceRecorder {
 public:
  explicit TraceRecorder(TraceOptions options = {});
  ~TraceRecorder();
  TraceRecorder(const TraceRecorder&) = delete;
  TraceRecorder& operator=(const TraceRecorder&) = delete;

  const TraceOptions& options() const { return options_; }
  int64_t origin_ns() const { return origin_ns_; }  // ts 0 in the JSON

  // Called by Gil::EnableTrace and Gil::Attach (not on the hot path).
  void DescribeLock(std::string_view policy, const GilOptions& options);
  TraceBuffer* NewBuffer(Role role, std::string name, pid_t tid, int index, int64_t attached_ns);

  // The following read the buffers: call them only once no thread uses the lock.
  int64_t dropped_events() const;
  int64_t recorded_events() const;
  // The whole trace as a JSON object. `metadata_json`, if not empty, must be a
  // JSON value; it is stored verbatim under otherData.run.
  std::string ChromeJson(std::string_view metadata_json = {}) const;
  // Writes ChromeJson to path + ".tmp" and renames it over path. Throws
  // std::runtime_error naming the path when it cannot.
  void WriteChromeJson(const std::string& path, std::string_view metadata_json = {}) const;

 private:
  TraceOptions options_;
  int64_t origin_ns_;
  mutable std::mutex mu_;  // guards buffers_ and the lock description
  std::vector<std::unique_ptr<TraceBuffer>> buffers_;
  std::string policy_;
  GilOptions gil_options_;
};

// Throws UsageError ("cannot write trace PATH: reason") unless PATH.tmp can be
// created; for commands that want to refuse a bad --trace before running.
void CheckTracePathWritable(const std::string& path);

}  // namespace gillab::gil
