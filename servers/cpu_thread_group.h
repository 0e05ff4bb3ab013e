// cpu_thread_group.h — the K CPU-bound threads an engine runs beside its
// servers: started together, stopped together, joined before Stop() returns.
//
// Each thread runs the engine's body. A body whose loop cannot poll stopping()
// (a VM or Python loop waiting on its own flag) registers a stop hook; Stop()
// runs every registered hook under the group's mutex, and a body calls Leave()
// before destroying what its hook touches, so a hook never runs on a dead object.
//
// A group may be given a Spawner (the simulator's, sim/sim_serve.h) that
// starts each body as some other kind of thread; Stop() then waits for the
// bodies to end on a gil::FutexWord (a platform wait, so a simulated thread
// waits in virtual time) instead of joining std::threads. Without one (every
// real run) nothing changes: std::thread and join.
//
//   group.Start(2, [&](int i, CpuThreadGroup& g) { g.OnStop(i, [&] { vm.RequestStop(); }); ...; g.Leave(i); });
//   group.Stop();   // idempotent; the group may be started again afterwards
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <string>
#include <vector>

#include "gil/futex.h"

namespace gillab::servers {

class CpuThreadGroup {
 public:
  using Body = std::function<void(int index, CpuThreadGroup& group)>;
  // Starts `body` as a thread named `name` (e.g. Simulator::Spawn).
  using Spawner = std::function<void(std::string name, std::function<void()> body)>;

  CpuThreadGroup() = default;
  CpuThreadGroup(const CpuThreadGroup&) = delete;
  CpuThreadGroup& operator=(const CpuThreadGroup&) = delete;
  ~CpuThreadGroup() { Stop(); }

  // Before the first Start: start the bodies with `spawn` instead of std::thread.
  void SetSpawner(Spawner spawn) { spawn_ = std::move(spawn); }

  // Starts `count` threads; does nothing while threads from a previous Start run.
  void Start(int count, const Body& body) {
    std::lock_guard lock(mu_);
    if (!threads_.empty() || spawned_.Load() != 0) return;
    stop_.store(false, std::memory_order_relaxed);
    hooks_.assign(static_cast<size_t>(count), nullptr);
    if (spawn_) {
      spawned_.Set(static_cast<uint32_t>(count));
      for (int i = 0; i < count; ++i) {
        auto token = std::make_shared<SpawnedToken>(spawned_);
        spawn_("cpu-" + std::to_string(i), [this, body, i, token] {
          (void)token;  // held, not used: its destructor counts the body out
          body(i, *this);
        });
      }
      return;
    }
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
    return !threads_.empty() || spawned_.Load() != 0;
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
    // Spawned bodies: wait (a platform wait) until the last one has ended.
    for (uint32_t live = spawned_.Load(); live != 0; live = spawned_.Load()) spawned_.WaitWhile(live, 0);
  }

 private:
  // Held by each spawned body's closure: counts it out when the closure is
  // destroyed, whether the body ran to its end, threw, or never ran (a
  // simulation torn down before it started).
  struct SpawnedToken {
    gil::FutexWord& live;
    ~SpawnedToken() {
      uint32_t n = live.Load();
      while (!live.CompareExchange(n, n - 1)) n = live.Load();
      live.Wake();
    }
  };

  mutable std::mutex mu_;
  std::atomic<bool> stop_{false};
  std::vector<std::function<void()>> hooks_;
  std::vector<std::thread> threads_;
  Spawner spawn_;
  gil::FutexWord spawned_{0};  // spawned bodies still running
};

}  // namespace gillab::servers
