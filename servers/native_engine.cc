// native_engine.cc — see native_engine.h.
#include "servers/native_engine.h"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <stdexcept>

#include <fmt/format.h>

#include "gil/error.h"

namespace gillab::servers {

std::string NativeEcho(std::string_view request, int64_t work_units) {
  uint64_t acc = 0;
  for (int64_t i = 0; i < work_units; ++i) {
    acc += static_cast<uint64_t>(i);
    asm volatile("" : "+r"(acc));  // keeps the loop: the compiler cannot see through it
  }
  return std::string(request);
}

int64_t CountPrimesUpTo(int64_t n) {
  int64_t count = 0;
  for (int64_t k = 2; k <= n; ++k) {
    bool prime = true;
    for (int64_t d = 2; d * d <= k; ++d) {
      if (k % d == 0) {
        prime = false;
        break;
      }
    }
    count += prime;
  }
  return count;
}

std::string NativePrimes(std::string_view request) {
  int64_t n = 0;
  auto [end, ec] = std::from_chars(request.data(), request.data() + request.size(), n);
  if (ec != std::errc() || end != request.data() + request.size() || request.empty()) {
    throw std::runtime_error(fmt::format("primes: request is not an ASCII decimal number ({} bytes)",
                                         request.size()));
  }
  return std::to_string(CountPrimesUpTo(n));
}

// One I/O thread's record; lives in the engine so that Stats() reports
// threads that detached long ago.
struct NativeEngine::IoEntry {
  ThreadRecord record;
  std::atomic<uint64_t> blocking_sections{0};
};

class NativeEngine::Io final : public IoThread {
 public:
  Io(const NativeEngine& engine, std::shared_ptr<IoEntry> entry) : engine_(engine), entry_(std::move(entry)) {}

  std::string Handle(std::string_view request) override { return HandleWith(0, request); }
  std::string HandleWith(size_t id, std::string_view request) override {
    if (id >= engine_.primes_.size()) throw std::runtime_error(fmt::format("the native engine has no handler #{}", id));
    if (engine_.primes_[id]) return NativePrimes(request);
    return NativeEcho(request, engine_.options_.work_units);
  }
  void BeginBlocking() override { entry_->blocking_sections.fetch_add(1, std::memory_order_relaxed); }
  void EndBlocking() override {}
  uint64_t blocking_sections() const override {
    return entry_->blocking_sections.load(std::memory_order_relaxed);
  }

 private:
  const NativeEngine& engine_;
  std::shared_ptr<IoEntry> entry_;
};

NativeEngine::NativeEngine(EngineOptions options) : options_(std::move(options)) {
  std::vector<std::string> names = {options_.handler};
  names.insert(names.end(), options_.extra_handlers.begin(), options_.extra_handlers.end());
  for (const auto& name : names) {
    if (name != "echo" && name != "primes") {
      throw UsageError(fmt::format("the native engine's handlers are echo and primes; {} is not available", name));
    }
    primes_.push_back(name == "primes");
  }
}

NativeEngine::~NativeEngine() { StopCpuThreads(); }

std::unique_ptr<IoThread> NativeEngine::AttachIo(std::string thread_name) {
  auto entry = std::make_shared<IoEntry>();
  entry->record = StartThreadRecord(gil::Role::kIo, std::move(thread_name), options_.os_priority);
  if (auto it = options_.lock_priority.find(gil::Role::kIo); it != options_.lock_priority.end()) {
    entry->record.lock_priority = it->second;  // recorded; there is no lock to read it
  } else {
    entry->record.lock_priority = 0;
  }
  entry->record.lock = NoLockFigures();
  {
    std::lock_guard lock(mu_);
    io_threads_.push_back(entry);
  }
  return std::make_unique<Io>(*this, std::move(entry));
}

void NativeEngine::StartCpuThreads() {
  if (options_.cpu_threads <= 0 || cpu_.running()) return;
  {
    std::lock_guard lock(mu_);
    cpu_records_.clear();
  }
  int lock_priority = 0;
  if (auto it = options_.lock_priority.find(gil::Role::kCpu); it != options_.lock_priority.end()) {
    lock_priority = it->second;
  }
  cpu_.Start(options_.cpu_threads, [this, lock_priority](int index, CpuThreadGroup& group) {
    ThreadRecord record = StartThreadRecord(gil::Role::kCpu, fmt::format("cpu-{}", index), options_.os_priority);
    record.lock_priority = lock_priority;
    record.lock = NoLockFigures();
    const std::atomic<bool>& stop = group.stop_flag();
    const int64_t start_ns = gil::NowNs();
    uint64_t iterations = 0;
    while (!stop.load(std::memory_order_relaxed)) {
      ++iterations;
      asm volatile("" : "+r"(iterations));
    }
    record.elapsed_ns = gil::NowNs() - start_ns;
    record.iterations = iterations;
    std::lock_guard lock(mu_);
    cpu_records_.push_back(std::move(record));
  });
}

void NativeEngine::StopCpuThreads() { cpu_.Stop(); }

nlohmann::json NativeEngine::Stats() const {
  std::vector<ThreadRecord> threads;
  {
    std::lock_guard lock(mu_);
    for (const auto& entry : io_threads_) {
      ThreadRecord r = entry->record;
      r.blocking_sections = entry->blocking_sections.load(std::memory_order_relaxed);
      threads.push_back(std::move(r));
    }
    std::vector<ThreadRecord> cpu = cpu_records_;  // in the order they ended; report cpu-0 first
    std::sort(cpu.begin(), cpu.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
    threads.insert(threads.end(), cpu.begin(), cpu.end());
  }
  return StatsJson({.engine = "native", .policy = "none", .switch_interval_us = 0,
                    .cpu_threads = options_.cpu_threads},
                   threads, nullptr);
}

}  // namespace gillab::servers
