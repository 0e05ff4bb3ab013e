// runner.h — `gillab run`: every (point, repetition) as a fresh server and client.
//
// One run: start `gillab serve` (pinned as the point says), wait for its
// `listening ENDPOINT` line (or start the point's server_command and wait for
// its port), run the point's client (clients.h) against it to completion (or
// timeout_s), SIGTERM the server and read its exit JSON (per-thread lock
// stats), append one row to runs.csv. A run that times out or crashes is
// killed (SIGKILL), reaped, logged to failures.log and left for --resume.
// A point with mode = "simulate" (design §13) is instead one `gillab
// simulate-serve` child (SimulateServeArgs), with the same timeout, kill, reap,
// failures.log, --resume and shard handling; meta.json lists the points' modes.
// Repetitions are the outer loop (every point once, then every point again),
// so slow drift of the machine spreads over all points instead of biasing one.
// With a shard (RunnerOptions::shard), only that shard's runs are run; meta.json
// records the shard (K, N, its runs) and every session's host.
// Ctrl-C / SIGTERM: the children are stopped and reaped, finished rows stay,
// and the runner exits 130 naming the directory to --resume.
//
// The `gillab` executed is GILLAB_BIN if set (tests use a stand-in), else this
// very binary (/proc/self/exe).
//
//   RunnerOptions o{.gillab_bin = GillabBinary(), .out_dir = "results/runs/x"};
//   int status = RunExperiment(LoadExperiment("experiments/tiny.toml"), o);
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "experiments/clients.h"
#include "experiments/experiment.h"
#include "experiments/shard.h"

namespace gillab::experiments {

struct RunnerOptions {
  std::string gillab_bin;   // the program run as `serve` and `load`
  std::string out_dir;      // new results directory; empty: DefaultResultsDir()
  std::string resume_dir;   // complete this directory instead
  bool plots = true;        // run scripts/plot.py at the end
  bool print_summary = true;
  // Run only this shard's runs (shard.h). A new directory records it in
  // meta.json ("shard"); --resume of a shard directory completes that shard
  // only (a shard given with --resume must match the recorded one). A shard
  // does its own warm-up runs (warmup_runs of its first pending run), since
  // each shard may run on a machine of its own.
  std::optional<Shard> shard = std::nullopt;
};

// 0: every run finished; 1: some runs failed (see failures.log); 130: interrupted.
// Throws UsageError for a bad directory or a --resume that does not match.
int RunExperiment(const Experiment& experiment, const RunnerOptions& options);

// results/runs/<UTC>_<name>_<shortsha> under the source tree (or the working directory).
std::string DefaultResultsDir(const Experiment& experiment);
std::string GillabBinary();

// The command lines of one run (exposed for tests and --dry-run).
std::vector<std::string> ServeArgs(const Point& point, const std::string& bin, const std::string& endpoint,
                                   const std::string& trace_path);
// A simulated run (mode = "simulate", design §13) is one child instead of
// serve + client, which runs both in virtual time to completion, writes the
// load JSON at json_path (gillab load --json's format) and prints serve's exit
// JSON on stdout; exit 2 is a usage error (a fatal run), as for serve:
//   BIN simulate-serve <serve flags> <load flags serve's lack> [--warmup W]
//       --cores N --seed SEED+REPETITION --json JSON_PATH
// Repetition r runs seed + r, so repetitions give the seeds' spread.
std::vector<std::string> SimulateServeArgs(const Point& point, const std::string& bin, const std::string& json_path,
                                           int64_t warmup_requests, int repetition);
// The runs.csv `cores` of a run: a simulated one's virtual cores; a real one's
// CPUs: the server_cpus it is pinned to, else those the runner may use (sched_getaffinity).
std::string RunCores(const Settings& settings);
// LoadArgs (gillab load's command line) lives with the other clients' in clients.h.
// An experiment's server_command for one run: {port}, {source} (the source
// tree) and {cpu_threads} filled in, run as `/bin/sh -c "exec COMMAND"` so the
// server is the runner's child. The runner waits until 127.0.0.1:{port}
// accepts a connection (or kStartupTimeoutS), drives it with the point's
// client, then SIGTERMs and reaps it; its rows have no lock statistics (NA).
std::vector<std::string> OutsideServerArgs(const Point& point, int port);
// A rough guess of one run's wall time, for --dry-run and the ETA before any run finished.
double EstimateRunSeconds(const Point& point, int64_t warmup_requests);
std::string FormatDuration(double seconds);  // "4m05s"

// The dry run: the resolved experiment, its points, the run count and the estimated time.
std::string DryRunText(const Experiment& experiment, const std::string& bin);

}  // namespace gillab::experiments
