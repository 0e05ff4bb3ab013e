// stall_monitor.cc — see stall_monitor.h.
#include "gil/stall_monitor.h"

#include <algorithm>
#include <chrono>
#include <cstdio>

#include <fmt/format.h>

#include "gil/error.h"

namespace gillab::gil {

std::string DescribeStall(const Stall& s) {
  return fmt::format(
      "stall: thread {} (role {}) has held the lock for {:.1f} s without a check point "
      "({} thread{} waiting, policy {})",
      s.thread_name, RoleName(s.role), static_cast<double>(s.held_ns) / 1e9, s.waiting, s.waiting == 1 ? "" : "s",
      s.policy);
}

void StallMonitor::PrintToStderr(const Stall& stall) {
  // One write per line, so that concurrent output does not split it.
  const std::string line = "gillab: " + DescribeStall(stall) + "\n";
  std::fputs(line.c_str(), stderr);
  std::fflush(stderr);
}

StallMonitor::StallMonitor(const Gil& gil, StallOptions options, Sink sink)
    : gil_(gil), options_(options), sink_(std::move(sink)) {
  if (options_.threshold_ms <= 0) {
    throw UsageError(fmt::format("stall threshold must be positive, got {} ms", options_.threshold_ms));
  }
  thread_ = std::thread([this] { Run(); });
}

StallMonitor::~StallMonitor() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  wake_.notify_one();
  thread_.join();
}

void StallMonitor::Run() {
  const int64_t poll_ms =
      options_.poll_ms > 0 ? options_.poll_ms : std::clamp<int64_t>(options_.threshold_ms / 10, 1, 100);
  std::unique_lock lock(mu_);
  while (!wake_.wait_for(lock, std::chrono::milliseconds(poll_ms), [this] { return stop_; })) {
    lock.unlock();
    Poll();
    lock.lock();
  }
}

void StallMonitor::Poll() {
  const Gil::HoldSnapshot h = gil_.SnapshotHold();
  const int64_t now_ns = NowNs();
  if (!h.held) return;
  if (h.serial != seen_serial_) {
    seen_serial_ = h.serial;
    seen_since_ns_ = now_ns;
    seen_reported_ = false;
  }
  if (seen_reported_) return;
  // With statistics the hold's own start; without, when we first saw it
  // (late by at most one poll period).
  const int64_t held_ns = now_ns - (h.since_ns != 0 ? h.since_ns : seen_since_ns_);
  if (held_ns < options_.threshold_ms * 1'000'000) return;
  if (h.waiting == 0) return;                                   // nobody wants it
  if (gil_.RequestsDrops() && !gil_.DropRequested()) return;  // nobody asked: a legitimate hold
  seen_reported_ = true;
  auto [name, role] = gil_.AttachedThread(h.holder_index);
  reported_.fetch_add(1, std::memory_order_relaxed);
  sink_(Stall{.thread_name = std::move(name), .role = role, .held_ns = held_ns, .waiting = h.waiting,
              .policy = std::string(gil_.name())});
}

}  // namespace gillab::gil
