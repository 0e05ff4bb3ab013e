// simulator.cc — the event queue, the cores and the baton; see simulator.h.
//
// Every field of Impl is touched only by whoever holds the baton (the
// scheduler, or the one virtual thread it resumed); the semaphores' release/
// acquire pairs order those accesses, so no field needs to be atomic.
#include "sim/simulator.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <exception>
#include <queue>
#include <random>
#include <semaphore>
#include <thread>
#include <unordered_map>
#include <vector>

#include <fmt/core.h>

#include "gil/platform.h"

namespace gillab::sim {
namespace {

enum class State : uint8_t { kWaking, kRunning, kReady, kBlocked, kDone };
enum class EventKind : uint8_t { kResume, kTimeout, kArrive };

// Virtual time starts here, not at 0: the lock code reads 0 as "no time".
constexpr int64_t kEpochNs = 1'000'000'000;

}  // namespace

struct Simulator::Impl {
  struct VThread;

  struct Event {
    int64_t time;
    uint64_t seq;  // scheduling order: breaks ties, so equal times replay in order
    EventKind kind;
    VThread* t;
    uint64_t serial;  // the thread's serial when scheduled; stale events are skipped
    int core;
  };
  struct Later {
    bool operator()(const Event& a, const Event& b) const { return a.time != b.time ? a.time > b.time : a.seq > b.seq; }
  };
  struct Core {
    VThread* running = nullptr;
    std::deque<VThread*> queue;
    bool wake_preempt = false;  // a woken thread queued here may preempt after the wake-up granularity
  };

  struct VThread final : gil::Platform {
    Impl* impl = nullptr;
    std::string name;
    std::function<void()> body;
    std::thread os;
    std::binary_semaphore go{0};
    State state = State::kWaking;
    int core = -1;
    int last_core = -1;
    int64_t debt_ns = 0;
    int64_t slice_start_ns = 0;
    uint64_t serial = 0;
    bool timed_out = false;

    int64_t NowNs() override {
      debt_ns += impl->options.costs.clock_read_ns;
      return impl->now + debt_ns;
    }
    bool WaitOnWord(const std::atomic<uint32_t>& word, uint32_t value, int64_t deadline_ns) override {
      impl->CheckAbort();
      impl->PayDebt(*this);
      if (word.load(std::memory_order_acquire) != value) return false;
      impl->Block(*this, &word, deadline_ns);
      return timed_out;
    }
    void WakeWord(const void* word, int count) override { impl->WakeKey(*this, word, count); }
    bool WaitOnCondition(const void* cv, std::unique_lock<std::mutex>& lock, int64_t timeout_ns) override {
      impl->CheckAbort();
      // Under the caller's mutex: no switch before parking (see simulator.h).
      impl->now += debt_ns;
      debt_ns = 0;
      lock.unlock();  // nobody else waits for it: threads never park holding it
      impl->Block(*this, cv, timeout_ns >= 0 ? impl->now + timeout_ns : 0);
      lock.lock();
      return timed_out;
    }
    void NotifyCondition(const void* cv, int count) override { impl->WakeKey(*this, cv, count); }
    void Pause(PauseKind kind, int64_t ns) override {
      impl->CheckAbort();
      ns = std::max<int64_t>(ns, 0);
      switch (kind) {
        case PauseKind::kSpin:
          debt_ns += ns + impl->options.costs.spin_pause_ns;
          impl->Settle(*this);
          break;
        case PauseKind::kYield:
          debt_ns += ns + impl->options.costs.yield_ns;
          impl->Yield(*this);
          break;
        case PauseKind::kSleep:
          impl->PayDebt(*this);
          impl->Block(*this, this, impl->now + ns);  // plus the timer slack, as every timed wait
          break;
      }
    }
  };

  Simulator* self;
  const SimOptions& options;
  SimStats& stats;
  std::mt19937_64 rng;
  int64_t now = kEpochNs;
  uint64_t next_seq = 0;
  std::priority_queue<Event, std::vector<Event>, Later> events;
  std::vector<Core> cores;
  std::vector<std::unique_ptr<VThread>> threads;
  std::unordered_map<const void*, std::vector<VThread*>> waiters;
  std::binary_semaphore host{0};
  int live = 0;
  bool running = false;
  bool aborting = false;
  std::exception_ptr first_error;

  static thread_local VThread* current;

  // The calling virtual thread; calling from anywhere else is a programming error.
  static VThread& Me(const char* what) {
    if (current == nullptr) {
      std::fprintf(stderr, "gillab: simulator misuse: %s outside a simulated thread\n", what);
      std::abort();
    }
    return *current;
  }

  Impl(Simulator* s, const SimOptions& o, SimStats& st)
      : self(s), options(o), stats(st), rng(o.seed), cores(static_cast<size_t>(o.os.cores)) {}

  uint64_t Draw(uint64_t n) { return n <= 1 ? 0 : rng() % n; }

  void Schedule(int64_t time, EventKind kind, VThread* t, int core = -1) {
    events.push(Event{time, next_seq++, kind, t, t->serial, core});
  }

  void CheckAbort() {
    if (aborting) throw SimAborted("simulation torn down");
  }

  // --- the baton ---------------------------------------------------------
  void SwitchTo(VThread* t) {
    stats.switches++;
    t->go.release();
    host.acquire();
  }
  void YieldToHost(VThread& t) {
    host.release();
    t.go.acquire();
    CheckAbort();
  }

  // --- cores -------------------------------------------------------------
  // Where a thread that becomes runnable goes: an idle core (its previous one
  // first, else drawn), else the shortest run queue (ties drawn).
  int ChooseCore(const VThread& t) {
    const int n = static_cast<int>(cores.size());
    if (t.last_core >= 0 && cores[t.last_core].running == nullptr) return t.last_core;
    std::vector<int> best;
    for (int c = 0; c < n; ++c) {
      if (cores[c].running == nullptr) best.push_back(c);
    }
    if (best.empty()) {
      size_t shortest = SIZE_MAX;
      for (int c = 0; c < n; ++c) shortest = std::min(shortest, cores[c].queue.size());
      for (int c = 0; c < n; ++c) {
        if (cores[c].queue.size() == shortest) best.push_back(c);
      }
    }
    return best[Draw(best.size())];
  }

  void RunOn(VThread* t, int c, int64_t start_ns) {
    cores[c].running = t;
    if (t->last_core >= 0 && t->last_core != c) stats.migrations++;
    t->core = c;
    t->state = State::kRunning;
    t->serial++;
    t->slice_start_ns = start_ns;
    Schedule(start_ns, EventKind::kResume, t);
  }

  // t (runnable from time `at`, woken from core `waker_core`, -1: a timer)
  // lands on a core after the wake-up latency.
  void MakeRunnable(VThread* t, int waker_core, int64_t at) {
    const int target = ChooseCore(*t);
    const OsModel& os = options.os;
    int64_t latency = (waker_core < 0 || waker_core == target) ? os.wake_same_core_ns : os.wake_cross_core_ns;
    if (cores[target].running == nullptr) latency += os.idle_exit_ns;
    latency += static_cast<int64_t>(Draw(static_cast<uint64_t>(os.wake_jitter_ns) + 1));  // 0: no draw
    t->state = State::kWaking;
    t->serial++;
    Schedule(at + latency, EventKind::kArrive, t, target);
  }

  void Arrive(VThread* t, int target) {
    if (cores[target].running != nullptr) {
      // Taken meanwhile: another idle core, else the target's queue.
      std::vector<int> idle;
      for (int c = 0; c < static_cast<int>(cores.size()); ++c) {
        if (cores[c].running == nullptr) idle.push_back(c);
      }
      if (idle.empty()) {
        t->state = State::kReady;
        cores[target].queue.push_back(t);
        cores[target].wake_preempt = true;
        return;
      }
      target = idle[Draw(idle.size())];
    }
    RunOn(t, target, now);
  }

  // t stops running on its core at `now`; the core takes the next thread
  // from its queue, else from the longest other queue, else goes idle.
  void LeaveCore(VThread& t) {
    const int c = t.core;
    cores[c].running = nullptr;
    t.last_core = c;
    t.core = -1;
    DispatchNext(c);
  }

  void DispatchNext(int c) {
    Core& core = cores[c];
    VThread* next = nullptr;
    if (!core.queue.empty()) {
      next = core.queue.front();
      core.queue.pop_front();
    } else {
      size_t longest = 0;
      for (const Core& o : cores) longest = std::max(longest, o.queue.size());
      if (longest > 0) {
        std::vector<int> busiest;
        for (int o = 0; o < static_cast<int>(cores.size()); ++o) {
          if (cores[o].queue.size() == longest) busiest.push_back(o);
        }
        Core& from = cores[busiest[Draw(busiest.size())]];
        next = from.queue.back();
        from.queue.pop_back();
      }
    }
    if (core.queue.empty()) core.wake_preempt = false;
    if (next != nullptr) RunOn(next, c, now + options.os.context_switch_ns);
  }

  // --- time --------------------------------------------------------------
  // Moves the clock to now + debt: at once when no event comes first, else
  // by parking until the scheduler reaches that time.
  void PayDebt(VThread& t) {
    const int64_t target = now + t.debt_ns;
    t.debt_ns = 0;
    if (!events.empty() && events.top().time <= target) {
      Schedule(target, EventKind::kResume, &t);
      YieldToHost(t);
    } else {
      now = target;
      stats.fast_settles++;
    }
  }

  void Settle(VThread& t) {
    CheckAbort();
    PayDebt(t);
    Core& core = cores[t.core];
    if (core.queue.empty()) return;
    const int64_t ran_ns = now - t.slice_start_ns;
    const bool slice_over = ran_ns >= options.os.time_slice_ns;
    const bool woken_preempts = core.wake_preempt && ran_ns >= options.os.wakeup_granularity_ns;
    if (!slice_over && !woken_preempts) return;
    stats.preemptions++;
    core.wake_preempt = false;
    Preempt(t, core);
  }

  // sched_yield: the debt paid, the core goes to the first thread queued on
  // it (t to the back of the queue); nobody queued: t goes on at once.
  void Yield(VThread& t) {
    CheckAbort();
    PayDebt(t);
    Core& core = cores[t.core];
    if (core.queue.empty()) return;
    Preempt(t, core);
  }

  // t gives its core to the first thread of its queue and waits at the back.
  void Preempt(VThread& t, Core& core) {
    VThread* next = core.queue.front();
    core.queue.pop_front();
    core.queue.push_back(&t);
    t.state = State::kReady;
    t.serial++;
    t.last_core = t.core;
    t.core = -1;
    core.running = nullptr;
    RunOn(next, static_cast<int>(&core - cores.data()), now + options.os.context_switch_ns);
    YieldToHost(t);
  }

  void Block(VThread& t, const void* key, int64_t deadline_ns) {
    t.state = State::kBlocked;
    t.serial++;
    t.timed_out = false;
    waiters[key].push_back(&t);
    // A timer fires somewhere in [deadline, deadline + slack] (OsModel::timer_slack_ns).
    const int64_t slack_ns = options.os.timer_slack_ns > 0 ? static_cast<int64_t>(Draw(options.os.timer_slack_ns + 1)) : 0;
    if (deadline_ns > 0) Schedule(std::max(deadline_ns + slack_ns, now), EventKind::kTimeout, &t);
    LeaveCore(t);
    YieldToHost(t);
  }

  void RemoveWaiter(VThread* t) {
    for (auto it = waiters.begin(); it != waiters.end(); ++it) {
      auto& list = it->second;
      auto pos = std::find(list.begin(), list.end(), t);
      if (pos != list.end()) {
        list.erase(pos);
        if (list.empty()) waiters.erase(it);
        return;
      }
    }
  }

  void WakeKey(VThread& waker, const void* key, int count) {
    if (aborting) return;
    auto it = waiters.find(key);
    if (it == waiters.end()) return;
    auto& list = it->second;
    for (int i = 0; i < count && !list.empty(); ++i) {
      // Which waiter the OS wakes: one drawn, or the oldest (OsModel::fifo_wake_order).
      const size_t pick = options.os.fifo_wake_order ? 0 : Draw(list.size());
      VThread* w = list[pick];
      list.erase(list.begin() + static_cast<std::ptrdiff_t>(pick));
      w->timed_out = false;
      stats.wakes++;
      MakeRunnable(w, waker.core, now + waker.debt_ns);
    }
    if (list.empty()) waiters.erase(it);
  }

  // --- threads -----------------------------------------------------------
  void Spawn(std::string name, std::function<void()> body) {
    auto owned = std::make_unique<VThread>();
    VThread* t = owned.get();
    t->impl = this;
    t->name = std::move(name);
    t->body = std::move(body);
    threads.push_back(std::move(owned));
    live++;
    t->os = std::thread([this, t] { ThreadMain(t); });
    VThread* caller = current;
    MakeRunnable(t, caller != nullptr ? caller->core : -1, now + (caller != nullptr ? caller->debt_ns : 0));
  }

  void ThreadMain(VThread* t) {
    t->go.acquire();
    current = t;
    gil::SetThreadPlatform(t);
    if (!aborting) {
      try {
        t->body();
      } catch (const SimAborted&) {
      } catch (...) {
        if (!first_error) first_error = std::current_exception();
        aborting = true;
      }
    }
    t->body = nullptr;  // the body's captures go while the baton is ours
    gil::SetThreadPlatform(nullptr);
    current = nullptr;
    if (t->state == State::kRunning) {
      now += t->debt_ns;
      t->debt_ns = 0;
      LeaveCore(*t);
    }
    t->state = State::kDone;
    live--;
    host.release();
  }

  void Teardown() {
    aborting = true;
    for (auto& t : threads) {
      if (t->state != State::kDone) {
        t->go.release();
        host.acquire();
      }
    }
  }

  void Run() {
    running = true;
    while (live > 0 && !aborting) {
      if (events.empty()) {
        std::string names;
        for (auto& t : threads) {
          if (t->state != State::kDone) names += (names.empty() ? "" : ", ") + t->name;
        }
        first_error = std::make_exception_ptr(SimError(fmt::format(
            "simulation deadlock at {} ns: every thread waits and no event is pending ({})", now - kEpochNs, names)));
        break;
      }
      const Event e = events.top();
      events.pop();
      if (options.max_virtual_ns > 0 && e.time - kEpochNs > options.max_virtual_ns) {
        first_error = std::make_exception_ptr(
            SimError(fmt::format("simulation passed its virtual time limit of {} ns", options.max_virtual_ns)));
        break;
      }
      if (e.serial != e.t->serial) continue;  // stale: the thread moved on
      now = std::max(now, e.time);
      stats.events++;
      switch (e.kind) {
        case EventKind::kResume:
          if (e.t->state == State::kRunning) SwitchTo(e.t);
          break;
        case EventKind::kTimeout:
          if (e.t->state == State::kBlocked) {
            RemoveWaiter(e.t);
            stats.timeouts++;
            MakeRunnable(e.t, -1, now);
            e.t->timed_out = true;
          }
          break;
        case EventKind::kArrive:
          if (e.t->state == State::kWaking) Arrive(e.t, e.core);
          break;
      }
    }
    Teardown();
    for (auto& t : threads) {
      if (t->os.joinable()) t->os.join();
    }
    if (first_error) std::rethrow_exception(first_error);
  }
};

thread_local Simulator::Impl::VThread* Simulator::Impl::current = nullptr;

Simulator::Simulator(SimOptions options) : options_(options) {
  if (options_.os.cores < 1) throw std::invalid_argument(fmt::format("cores must be >= 1, got {}", options_.os.cores));
  impl_ = std::make_unique<Impl>(this, options_, stats_);
}

Simulator::~Simulator() {
  if (!impl_->running) {
    impl_->Teardown();
    for (auto& t : impl_->threads) {
      if (t->os.joinable()) t->os.join();
    }
  }
}

void Simulator::Spawn(std::string name, std::function<void()> body) { impl_->Spawn(std::move(name), std::move(body)); }

void Simulator::Run() { impl_->Run(); }

int64_t Simulator::now_ns() const {
  const Impl::VThread* t = Impl::current;
  return impl_->now - kEpochNs + (t != nullptr ? t->debt_ns : 0);
}

void Simulator::Charge(int64_t ns) { Impl::Me("Charge").debt_ns += ns; }

void Simulator::Settle() { impl_->Settle(Impl::Me("Settle")); }

void Simulator::Sleep(int64_t ns) {
  Impl::VThread& t = Impl::Me("Sleep");
  impl_->CheckAbort();
  impl_->PayDebt(t);
  impl_->Block(t, &t, impl_->now + std::max<int64_t>(ns, 0));
}

Simulator* Simulator::Current() { return Impl::current != nullptr ? Impl::current->impl->self : nullptr; }

}  // namespace gillab::sim
