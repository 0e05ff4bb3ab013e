// trace.cc — buffers and the Chrome trace-event writer; see trace.h.
//
// The JSON is written by hand with fmt (gil/ depends on std, pthreads and fmt
// only). Every string we emit is either a fixed name or a thread/policy name
// passed through JsonString, which escapes what JSON requires.
#include "gil/trace.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>

#include "gil/error.h"

namespace gillab::gil {
namespace {

std::string JsonString(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
        } else {
          out += c;
        }
    }
  }
  out += '"';
  return out;
}

// Trace timestamps are microseconds; three decimals keep the nanoseconds.
std::string Us(int64_t ns) { return fmt::format("{:.3f}", static_cast<double>(ns) / 1e3); }

}  // namespace

std::string_view TraceKindName(TraceKind kind, Role role) {
  switch (kind) {
    case TraceKind::kWait: return "waiting";
    case TraceKind::kHold: return "holding";
    case TraceKind::kOutside: return role == Role::kIo ? "blocking I/O" : "outside lock";
    case TraceKind::kDropRequest: return "drop request";
    case TraceKind::kForcedSwitch: return "forced switch";
  }
  return "?";
}

void TraceBuffer::NextChunk() {
  chunks_.push_back(std::make_unique<Chunk>());
  pos_ = 0;
}

std::vector<TraceEvent> TraceBuffer::Events() const {
  std::vector<TraceEvent> out;
  out.reserve(static_cast<size_t>(recorded_));
  for (size_t c = 0; c < chunks_.size(); ++c) {
    const int used = c + 1 == chunks_.size() ? pos_ : kChunkEvents;  // all but the last are full
    out.insert(out.end(), chunks_[c]->begin(), chunks_[c]->begin() + used);
  }
  return out;
}

TraceRecorder::TraceRecorder(TraceOptions options) : options_(options), origin_ns_(NowNs()) {
  if (options_.max_events_per_thread < 0) {
    throw UsageError(fmt::format("trace: max events per thread must be >= 0, got {}", options_.max_events_per_thread));
  }
  if (options_.skip_ms < 0 || options_.window_ms < 0) {
    throw UsageError(fmt::format("trace: the window must be >= 0 ms (skip {} ms, window {} ms)", options_.skip_ms,
                                 options_.window_ms));
  }
}

TraceRecorder::~TraceRecorder() = default;

void TraceRecorder::DescribeLock(std::string_view policy, const GilOptions& options) {
  std::lock_guard lock(mu_);
  policy_ = policy;
  gil_options_ = options;
}

TraceBuffer* TraceRecorder::NewBuffer(Role role, std::string name, pid_t tid, int index, int64_t attached_ns) {
  auto b = std::make_unique<TraceBuffer>();
  b->role_ = role;
  b->name_ = std::move(name);
  b->tid_ = tid;
  b->index_ = index;
  b->max_events_ = options_.max_events_per_thread;
  b->window_begin_ns_ = origin_ns_ + options_.skip_ms * 1'000'000;
  if (options_.window_ms > 0) b->window_end_ns_ = b->window_begin_ns_ + options_.window_ms * 1'000'000;
  b->outside_since_ns_ = attached_ns;
  std::lock_guard lock(mu_);
  buffers_.push_back(std::move(b));
  return buffers_.back().get();
}

int64_t TraceRecorder::dropped_events() const {
  std::lock_guard lock(mu_);
  int64_t n = 0;
  for (const auto& b : buffers_) n += b->dropped();
  return n;
}

int64_t TraceRecorder::recorded_events() const {
  std::lock_guard lock(mu_);
  int64_t n = 0;
  for (const auto& b : buffers_) n += b->recorded();
  return n;
}

std::string TraceRecorder::ChromeJson(std::string_view metadata_json) const {
  std::lock_guard lock(mu_);
  const int64_t written_ns = NowNs();
  const int pid = static_cast<int>(getpid());
  const std::string policy = policy_.empty() ? "unknown" : policy_;
  std::string out;
  out.reserve(1 << 16);
  out += "{\"displayTimeUnit\":\"ns\",\"traceEvents\":[\n";
  bool first = true;
  auto add = [&](const std::string& event) {
    if (!first) out += ",\n";
    first = false;
    out += event;
  };

  std::string settings = fmt::format("switch_interval_us={}", gil_options_.switch_interval_us);
  // The options this policy reads, from its traits (none for an unknown policy).
  const auto& names = PolicyNames();
  if (std::find(names.begin(), names.end(), policy) != names.end()) {
    const PolicyTraits& traits = PolicyTraitsOf(policy);
    if (traits.uses_ticks) settings += fmt::format(" check_interval={}", gil_options_.check_interval);
    if (traits.uses_forced_switching) settings += fmt::format(" forced_switching={}", gil_options_.forced_switching);
  }
  add(fmt::format(R"({{"ph":"M","pid":{},"tid":0,"name":"process_name","args":{{"name":{}}}}})", pid,
                  JsonString(fmt::format("gillab lock {} ({})", policy, settings))));

  int64_t recorded = 0, dropped = 0, outside_window = 0;
  int64_t first_ns = std::numeric_limits<int64_t>::max(), last_ns = origin_ns_;
  std::string per_thread;
  for (const auto& b : buffers_) {
    add(fmt::format(R"({{"ph":"M","pid":{},"tid":{},"name":"thread_name","args":{{"name":{}}}}})", pid, b->tid(),
                    JsonString(b->name())));
    // io tracks on top (the thread whose waits matter), then attach order.
    const int sort_index = (b->role() == Role::kIo ? 0 : 1'000'000) + b->index();
    add(fmt::format(R"({{"ph":"M","pid":{},"tid":{},"name":"thread_sort_index","args":{{"sort_index":{}}}}})", pid,
                    b->tid(), sort_index));
    std::vector<TraceEvent> events = b->Events();
    // A thread may still hold the lock (it never released before the write):
    // show the hold up to now rather than lose it.
    if (b->holding_since_ns_ != 0) events.push_back({b->holding_since_ns_, written_ns, TraceKind::kHold});
    // Recording order is by end time (a wait is recorded when it ends, after the
    // drop requests made during it); the trace wants start order per thread.
    std::stable_sort(events.begin(), events.end(),
                     [](const TraceEvent& x, const TraceEvent& y) { return x.start_ns < y.start_ns; });
    for (const TraceEvent& e : events) {
      const std::string_view name = TraceKindName(e.kind, b->role());
      first_ns = std::min(first_ns, e.start_ns);
      last_ns = std::max(last_ns, e.end_ns);
      if (e.kind == TraceKind::kDropRequest || e.kind == TraceKind::kForcedSwitch) {
        add(fmt::format(R"({{"ph":"i","s":"t","pid":{},"tid":{},"cat":"gil","name":"{}","ts":{}}})", pid, b->tid(),
                        name, Us(e.start_ns - origin_ns_)));
      } else {
        add(fmt::format(R"({{"ph":"X","pid":{},"tid":{},"cat":"gil","name":"{}","ts":{},"dur":{}}})", pid, b->tid(),
                        name, Us(e.start_ns - origin_ns_), Us(e.end_ns - e.start_ns)));
      }
    }
    recorded += b->recorded();
    dropped += b->dropped();
    outside_window += b->outside_window();
    if (!per_thread.empty()) per_thread += ",";
    per_thread += fmt::format(R"({{"name":{},"role":"{}","tid":{},"recorded":{},"dropped":{},"outside_window":{}}})",
                              JsonString(b->name()), RoleName(b->role()), b->tid(), b->recorded(), b->dropped(),
                              b->outside_window());
  }
  if (first_ns == std::numeric_limits<int64_t>::max()) first_ns = origin_ns_;

  out += "\n],\"otherData\":{";
  out += fmt::format(R"("gil":{{"policy":{},"switch_interval_us":{},"check_interval":{},"forced_switching":{}}},)",
                     JsonString(policy), gil_options_.switch_interval_us, gil_options_.check_interval,
                     gil_options_.forced_switching);
  out += fmt::format(
      R"("trace":{{"max_events_per_thread":{},"skip_ms":{},"window_ms":{},"recorded_events":{},"dropped_events":{},)"
      R"("outside_window_events":{},"first_event_us":{},"last_event_us":{},"written_us":{},"threads":[{}]}})",
      options_.max_events_per_thread, options_.skip_ms, options_.window_ms, recorded, dropped, outside_window,
      Us(first_ns - origin_ns_), Us(last_ns - origin_ns_), Us(written_ns - origin_ns_), per_thread);
  if (!metadata_json.empty()) {
    out += ",\"run\":";
    out += metadata_json;
  }
  out += "}}\n";
  return out;
}

void CheckTracePathWritable(const std::string& path) {
  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "w");
  if (f == nullptr) throw UsageError(fmt::format("cannot write trace {}: {}", path, std::strerror(errno)));
  std::fclose(f);
  std::remove(tmp.c_str());
}

void TraceRecorder::WriteChromeJson(const std::string& path, std::string_view metadata_json) const {
  const std::string json = ChromeJson(metadata_json);
  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "w");
  if (f == nullptr) throw std::runtime_error(fmt::format("cannot write trace {}: {}", tmp, std::strerror(errno)));
  const bool written = std::fwrite(json.data(), 1, json.size(), f) == json.size();
  const bool closed = std::fclose(f) == 0;
  if (!written || !closed) {
    std::remove(tmp.c_str());
    throw std::runtime_error(fmt::format("cannot write trace {}: write failed", tmp));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    std::remove(tmp.c_str());
    throw std::runtime_error(fmt::format("cannot rename trace {} to {}: {}", tmp, path, std::strerror(err)));
  }
}

}  // namespace gillab::gil
