// contend_command.cc — `gillab contend`: the io-vs-cpu lock contention demo
// of contend.h, with a readable table or one JSON object (--json).
#include <cstdio>

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include "gil/thread_priority.h"
#include "gil/trace.h"
#include "interp/commands.h"
#include "interp/contend.h"

namespace gillab::interp {

void AddContendOptions(CLI::App& cmd, ContendOptions& o, std::string& lock_priority, bool& json) {
  cmd.add_option("--cpu-threads", o.cpu_threads, "K, the number of cpu_spin threads")->capture_default_str();
  cmd.add_option("--io-sleep-us", o.io_sleep_us, "How long each io step blocks with the lock released")
      ->capture_default_str();
  cmd.add_option("--iterations", o.iterations, "io steps to run")->capture_default_str();
  cmd.add_option("--io-work-units", o.io_work_units, "VM loop iterations under the lock after each sleep")
      ->capture_default_str();
  cmd.add_option("--switch-interval-us", o.switch_interval_us, "ticket, priority, newgil: wait before asking for a drop")
      ->capture_default_str();
  cmd.add_option("--check-interval", o.check_interval, "mutex: instructions between release/re-acquire")
      ->capture_default_str();
  cmd.add_option("--lock-priority", lock_priority, "Lock priority per role, e.g. io=1,cpu=0 (policy priority)");
  cmd.add_flag("--json", json, "Print one JSON object instead of the table");
  cmd.add_option("--trace", o.trace_path, "Write a lock timeline (Chrome trace-event JSON, opens in Perfetto) to FILE");
  cmd.add_option("--trace-max-events", o.trace_max_events, "Trace: events kept per thread; later ones are dropped")
      ->capture_default_str();
  cmd.add_option("--cpu-program", o.cpu_program, "What the cpu threads run: a shipped program or a .gasm file (main(0))")
      ->capture_default_str();
  cmd.add_option("--duration-ms", o.duration_ms, "End the run after this long even with io steps left (0: no limit)")
      ->capture_default_str();
}

void AddContendCommand(CLI::App& app) {
  struct Flags {
    ContendOptions options;
    std::string lock_priority;
    bool json = false;
  };
  auto f = std::make_shared<Flags>();
  ContendOptions& o = f->options;
  CLI::App* cmd = app.add_subcommand(
      "contend", "One io VM thread (sleep_us with the lock released, then a little work) against K cpu_spin threads");
  cmd->add_option("--policy", o.policy, "Execution model: mutex, ticket, priority, newgil, none, stm")->capture_default_str();
  AddContendOptions(*cmd, o, f->lock_priority, f->json);
  cmd->add_option("--stall-threshold-ms", o.stall_threshold_ms,
                  "Report a thread holding the lock this long while another asks for it (0: off)")
      ->capture_default_str();
  cmd->callback([f] {
    if (!f->lock_priority.empty()) f->options.lock_priority = gil::ParseLockPriorities(f->lock_priority);
    // Refuse an unwritable trace path before the run, not after it.
    if (!f->options.trace_path.empty()) gil::CheckTracePathWritable(f->options.trace_path);
    const ContendResult r = RunContend(f->options);
    if (f->json) {
      fmt::print("{}\n", ToJson(r).dump());
    } else {
      fmt::print("{}", FormatTable(r));
    }
  });
}

}  // namespace gillab::interp
