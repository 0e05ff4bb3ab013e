// race_command.cc — `gillab race PROGRAM`: K VM threads of one program on one
// shared heap under each of the given lock policies, one line per policy
// (race.h), e.g. `newgil: counter 2000000 of 2000000`.
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include "interp/commands.h"
#include "interp/race.h"

namespace gillab::interp {

void AddRaceCommand(CLI::App& app) {
  struct Flags {
    RaceOptions options;
    std::string policies = "newgil";
  };
  auto f = std::make_shared<Flags>();
  RaceOptions& o = f->options;
  CLI::App* cmd = app.add_subcommand(
      "race",
      "K VM threads of one program share one heap: print its outcome per lock policy (lost updates under none)");
  cmd->footer(
      "Program convention: setup(k, n) runs once first (optional), worker(n, id) on each of the K threads\n"
      "(id = 0..K-1), then check() is the outcome and expect(k, n) (optional) the outcome every exclusive\n"
      "lock policy must give. Shipped: counter (each worker adds 1 to a global n times), bank (random\n"
      "transfers between 100 accounts in a table; the sum must stay 100000).\n"
      "  gillab race counter --policy mutex,ticket,priority,newgil,none --threads 4 --n 500000");
  cmd->add_option("program", o.program, "A shipped program (counter, bank) or a .gasm file")->required();
  cmd->add_option("--policy", f->policies, "Lock policies, comma-separated; one run and one line each")
      ->capture_default_str();
  cmd->add_option("--threads", o.threads, "K, the worker threads")->capture_default_str();
  cmd->add_option("--n", o.n, "worker's n (counter: increments per thread; bank: transfers per thread)")
      ->capture_default_str();
  cmd->add_option("--switch-interval-us", o.switch_interval_us, "ticket, priority, newgil: wait before asking for a drop")
      ->capture_default_str();
  cmd->add_option("--check-interval", o.check_interval, "mutex: instructions between releases")->capture_default_str();
  cmd->callback([f] {
    std::stringstream list(f->policies);
    std::string policy;
    while (std::getline(list, policy, ',')) {
      RaceOptions o = f->options;
      o.policy = policy;
      fmt::print("{}\n", FormatRaceLine(RunRace(o)));
      std::fflush(stdout);
    }
  });
}

}  // namespace gillab::interp
