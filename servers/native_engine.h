// native_engine.h — the control: handler in C++, no lock at all.
//
// Beazley's "C + 0mq" server. BeginBlocking/EndBlocking are no-ops that are
// still counted (so a test can check a server's release points against any
// engine); CPU threads are native spin loops that only compete for cores.
// Handlers: `echo` (work_units iterations of a loop the compiler must keep,
// reply = request) and `primes` (request: ASCII decimal N; reply: ASCII
// decimal count of primes <= N by trial division).
//
//   NativeEngine engine({.engine = "native", .handler = "primes"});
//   auto io = engine.AttachIo("io");
//   io->Handle("10000");   // "1229"
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "servers/cpu_thread_group.h"
#include "servers/engine.h"
#include "servers/engine_stats.h"

namespace gillab::servers {

// The C++ handlers, shared with the toy engine's tests as reference results.
std::string NativeEcho(std::string_view request, int64_t work_units);
int64_t CountPrimesUpTo(int64_t n);           // trial division
std::string NativePrimes(std::string_view request);  // throws std::runtime_error on a bad N

class NativeEngine final : public Engine {
 public:
  // Throws UsageError for a handler (or extra handler) other than echo or primes.
  explicit NativeEngine(EngineOptions options);
  ~NativeEngine() override;

  std::string_view name() const override { return "native"; }
  std::unique_ptr<IoThread> AttachIo(std::string thread_name) override;
  void StartCpuThreads() override;
  void StopCpuThreads() override;
  nlohmann::json Stats() const override;

 private:
  class Io;
  struct IoEntry;

  EngineOptions options_;
  std::vector<bool> primes_;  // by handler id: primes (true) or echo
  mutable std::mutex mu_;
  std::vector<std::shared_ptr<IoEntry>> io_threads_;  // every I/O thread ever attached
  std::vector<ThreadRecord> cpu_records_;             // filled by each CPU thread as it ends
  CpuThreadGroup cpu_;
};

}  // namespace gillab::servers
