// cpu_thread_group.h — the K CPU-bound threads an engine runs beside its
// servers: started together, stopped together, joined before Stop() returns.
//
// Each thread runs the engine's body. A body whose loop cannot poll stopping()
// (a VM or Python loop waiting on its own flag) registers a stop hook; Stop()
// runs every registered hook under the group's mutex, and a body calls Leave()
// before destroying what its hook touches, so a hook never runs on a dead object.
//
//   group.Start(2, [&](int i, CpuThreadGroup& g) { g.OnStop(i, [&] { vm.RequestStop(); }); ...; g.Leave(i); });
//   group.Stop();   // idempotent; the group may be started again afterwards
#pragma once

#include <atomic>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace gillab::servers {

class CpuThreadGroup {
 public:
  using Body = std::function<void(int index, CpuThreadGroup& group)>;

  CpuThreadGroup() = default;
  CpuThreadGroup(const CpuThreadGroup&) = delete;
  CpuThreadGroup& operator=(const CpuThreadGroup&) = delete;
  ~CpuThreadGroup() { Stop(); }

  // Starts `count` threads; does nothing while threads from a previous Start run.
  void Start(int count, const Body& body) {
    std::lock_guard lock(mu_);
    if (!threads_.empty()) return;
    stop_.store(false, std::memory_order_relaxed);
    hooks_.assign(static_cast<size_t>(count), nullptr);
    for (int i = 0; i < count; ++i) threads_.emplace_back([this, body, i] { body(i, *this); });
  }

  // For bodies that poll: relaxed, a stale read only delays the exit a little.
  bool stopping() const { return stop_.load(std::memory_order_relaxed); }
  const std::atomic<bool>& stop_flag() const { return stop_; }

  // Runs `hook` at Stop(), or right away if Stop() has begun.
  void OnStop(int index, std::function<void()> hook) {
    std::lock_guard lock(mu_);
    if (stop_.load(std::memory_order_relaxed)) {
      hook();
      return;
    }
    hooks_[static_cast<size_t>(index)] = std::move(hook);
  }
  // The hook of thread `index` will not run after this returns.
  void Leave(int index) {
    std::lock_guard lock(mu_);
    hooks_[static_cast<size_t>(index)] = nullptr;
  }

  bool running() const {
    std::lock_guard lock(mu_);
    return !threads_.empty();
  }

  // Asks every thread to stop and joins them. Idempotent.
  void Stop() {
    std::vector<std::thread> threads;
    {
      std::lock_guard lock(mu_);
      stop_.store(true, std::memory_order_relaxed);
      for (auto& hook : hooks_) {
        if (hook) hook();
        hook = nullptr;
      }
      threads.swap(threads_);
    }
    for (auto& t : threads) t.join();
  }

 private:
  mutable std::mutex mu_;
  std::atomic<bool> stop_{false};
  std::vector<std::function<void()>> hooks_;
  std::vector<std::thread> threads_;
};

}  // namespace gillab::servers
