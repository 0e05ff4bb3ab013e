// race.h — K VM threads running one program against one shared heap under a
// lock policy, and the outcome in one line: the lost-update demonstration of
// design §8 (`gillab race`).
//
// Program convention (counter.gasm, bank.gasm): setup(k, n) runs once on
// one thread, then worker(n, id) on each of K threads (id = 0..K-1), all
// started together; then check() is the outcome and expect(k, n) what every
// exclusive lock policy must give. setup and expect are optional (expect
// absent: the line shows the outcome alone).
//
//   RaceResult r = RunRace({.program = "counter", .policy = "none", .threads = 4, .n = 500000});
//   FormatRaceLine(r)   // "none: counter 1312004 of 2000000 (lost 34.4%)"
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace gillab::interp {

struct RaceOptions {
  std::string program = "counter";  // a shipped name or a .gasm path
  std::string policy = "newgil";
  int threads = 4;                   // K
  int64_t n = 500000;                // worker's n
  int64_t switch_interval_us = 5000;
  int64_t check_interval = 100;      // mutex only
  // Whether the heap locks every operation; unset: !exclusive policy.
  std::optional<bool> concurrent_heap = std::nullopt;
};

struct RaceResult {
  RaceOptions options;
  std::string program_name;        // the file's stem, e.g. "counter"
  int64_t outcome = 0;             // check()
  std::optional<int64_t> expected; // expect(k, n)
  double seconds = 0;              // the workers' run
  bool concurrent_heap = false;
};

// Throws UsageError for bad options or a program without worker/check, and
// VmError if the program fails.
RaceResult RunRace(const RaceOptions& options);
// "POLICY: PROGRAM OUTCOME of EXPECTED" then " (lost X%)" when short of it or
// " (off by X%)" when beyond it.
std::string FormatRaceLine(const RaceResult& result);

}  // namespace gillab::interp
