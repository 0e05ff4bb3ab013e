// fake_engine_test_util.h — a test Engine whose "GIL" is a plain mutex
// the test can take itself, and which checks the server's lock discipline.
//
// Handle called without the lock, a BlockingSection opened without holding
// the lock, or an I/O thread detaching inside a blocking section each count
// as a violation; tests assert there are none. The test thread may lock
// gil() to play a CPU thread that holds the lock. A request "throw" makes the
// handler throw; every other request is echoed.
//
//   FakeEngine engine;
//   ... run a server against it ...
//   EXPECT_EQ(engine.violations(), 0u);
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>

#include "servers/engine.h"

namespace gillab::servers {

class FakeEngine final : public Engine {
 public:
  std::string_view name() const override { return "fake"; }
  std::unique_ptr<IoThread> AttachIo(std::string) override {
    attached_.fetch_add(1);
    return std::make_unique<Io>(*this);
  }
  void StartCpuThreads() override {}
  void StopCpuThreads() override {}
  nlohmann::json Stats() const override { return {{"engine", "fake"}, {"threads", nlohmann::json::array()}}; }

  std::mutex& gil() { return gil_; }
  uint64_t attached() const { return attached_.load(); }
  uint64_t detached() const { return detached_.load(); }
  uint64_t handled() const { return handled_.load(); }
  uint64_t blocking_sections() const { return blocking_sections_.load(); }
  uint64_t violations() const { return violations_.load(); }

 private:
  class Io final : public IoThread {
   public:
    explicit Io(FakeEngine& engine) : engine_(engine) { engine_.gil_.lock(); }
    ~Io() override {
      if (!held_) engine_.violations_.fetch_add(1);
      else engine_.gil_.unlock();
      engine_.detached_.fetch_add(1);
    }
    std::string Handle(std::string_view request) override {
      if (!held_) engine_.violations_.fetch_add(1);
      engine_.handled_.fetch_add(1);
      if (request == "throw") throw std::runtime_error("handler asked to throw");
      return std::string(request);
    }
    // Every handler id is the same echo (the http routes call ids >= 1).
    std::string HandleWith(size_t, std::string_view request) override { return Handle(request); }
    void BeginBlocking() override {
      if (!held_) engine_.violations_.fetch_add(1);
      held_ = false;
      ++sections_;
      engine_.blocking_sections_.fetch_add(1);
      engine_.gil_.unlock();
    }
    void EndBlocking() override {
      engine_.gil_.lock();
      held_ = true;
    }
    uint64_t blocking_sections() const override { return sections_; }

   private:
    FakeEngine& engine_;
    bool held_ = true;
    uint64_t sections_ = 0;
  };

  std::mutex gil_;  // plain mutex: TSan does not model timed_mutex's clocklock
  std::atomic<uint64_t> attached_{0}, detached_{0}, handled_{0}, blocking_sections_{0}, violations_{0};
};

}  // namespace gillab::servers
