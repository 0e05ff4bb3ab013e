#!/usr/bin/env python3
"""A stand-in for the `gillab` binary, for runner_test: `serve`, `load` and `simulate-serve`.

It speaks the contract the runner relies on (design §5) with no servers behind
it, deterministically, so the runner's process handling, files and resume can be
tested without timing noise:

  serve  prints `listening tcp://127.0.0.1:<5000 + cpu_threads>` (or the ipc://
         endpoint it was given), waits for SIGTERM/SIGINT, prints one JSON object
         with per-thread stats and exits 0.
  load   reads cpu_threads back from the port and writes --json FILE with
         req_per_s = 1000 / (1 + cpu_threads) and matching latencies.

  simulate-serve  needs --cores, --seed and --json; writes --json FILE with
         req_per_s = 1100 / (1 + cpu_threads) (1.1x the real one: within 20%),
         or 1500 / (1 + cpu_threads) with 2 or more cpu threads (outside it),
         prints serve's exit JSON (no listening line) and exits 0 (1 when
         --message-bytes 13: one error counted, as load). If
         $FAKE_GILLAB_ARGS is set, appends its argv there, one line per run.

Failure modes, chosen by settings so an experiment file can ask for them:
  --work-units 2     serve exits 2 with a usage error before listening
  --work-units 3     serve crashes (exit 1) before listening
  --work-units 777   load hangs (the runner must time out, kill and reap it);
                     if FAKE_GILLAB_HANG_ONCE names a file, only the first time
  --message-bytes 13 load counts one error and exits 1 (the row says "errors")
Every process appends its pid to $FAKE_GILLAB_PIDS (if set) so the test can
check that none is left running.
"""
import json
import os
import signal
import sys
import time


def arg(argv, flag, default=None):
    return argv[argv.index(flag) + 1] if flag in argv else default


def note_pid():
    path = os.environ.get("FAKE_GILLAB_PIDS")
    if path:
        with open(path, "a") as f:
            f.write(f"{os.getpid()}\n")


def serve(argv):
    cpu_threads = int(arg(argv, "--cpu-threads", "0"))
    work_units = int(arg(argv, "--work-units", "0"))
    if work_units == 2:
        print("gillab: error: --work-units 2 is not allowed (fake usage error)", file=sys.stderr)
        sys.exit(2)
    if work_units == 3:
        print("fake crash before listening", file=sys.stderr)
        sys.exit(1)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    endpoint = arg(argv, "--endpoint", "tcp://127.0.0.1:0")
    if endpoint.startswith("tcp://"):
        endpoint = f"tcp://127.0.0.1:{5000 + cpu_threads}" + ("/hang" if work_units == 777 else "")
    print(f"listening {endpoint}", flush=True)
    started = time.monotonic()
    while not stop:
        time.sleep(0.005)
    wall_ns = int((time.monotonic() - started) * 1e9)
    engine = arg(argv, "--engine", "toy")
    os_priority = arg(argv, "--os-priority", "")
    threads = [{"role": "io", "name": "io", "tid": os.getpid(), "lock_priority": 0,
                "acquisitions": 100, "wait_ns": wall_ns // 10, "wait_p50_ns": 1000, "wait_p99_ns": 5000000,
                "wait_max_ns": 6000000, "hold_ns": wall_ns // 5, "voluntary_releases": 100,
                "forced_drops": 0, "handoffs": 50, "yield_requests": 10, "iterations": 0}]
    for i in range(cpu_threads):
        refused = "EPERM: fake refusal" if "nice:-" in os_priority else ""
        threads.append({"role": "cpu", "name": f"cpu-{i}", "tid": os.getpid() + 1 + i, "lock_priority": 0,
                        "os_priority": {"requested": os_priority.split("=", 1)[-1] if os_priority else "default",
                                        "applied": not refused, "refused": refused, "readback": "SCHED_OTHER nice 0"},
                        "acquisitions": 60, "wait_ns": wall_ns // 4, "wait_p50_ns": 2000, "wait_p99_ns": 4000,
                        "wait_max_ns": 9000, "hold_ns": wall_ns // 2, "voluntary_releases": 0,
                        "forced_drops": 55, "handoffs": 50, "yield_requests": 1, "iterations": 123456})
    result = {"engine": engine, "policy": arg(argv, "--policy", ""), "server": arg(argv, "--server"),
              "endpoint": endpoint, "requests": 10, "threads": threads}
    if engine != "native":
        result["lock"] = {"switches": 99, "handoff_p50_ns": 4500, "handoff_p99_ns": 50000}
    if cpu_threads:
        result["cpu_iterations_per_s"] = 1.5e6
    print(json.dumps(result), flush=True)


def load(argv):
    endpoint = arg(argv, "--endpoint")
    requests = int(arg(argv, "--requests"))
    work_hang = os.environ.get("FAKE_GILLAB_HANG_ONCE")
    if arg(argv, "--message-bytes") == "13":
        errors = 1
    else:
        errors = 0
    # The runner passes no work units to load: serve marks the endpoint instead.
    if endpoint.endswith("/hang"):
        if not work_hang or not os.path.exists(work_hang):
            if work_hang:
                open(work_hang, "w").close()
            while True:
                time.sleep(1)
    port = endpoint.rsplit(":", 1)[1].split("/")[0] if endpoint.startswith("tcp://") else "5000"
    cpu_threads = int(port) - 5000
    rate = 1000.0 / (1 + cpu_threads)
    p50 = 1e6 / rate
    result = {"requests": requests, "errors": errors, "seconds": requests / rate, "req_per_s": rate,
              "latency_us": {"p50": p50, "p90": p50 * 1.1, "p99": p50 * 2, "p999": p50 * 3, "max": p50 * 4,
                             "min": p50 / 2, "mean": p50}}
    with open(arg(argv, "--json"), "w") as f:
        json.dump(result, f)
    sys.exit(1 if errors else 0)


def simulate_serve(argv):
    path = os.environ.get("FAKE_GILLAB_ARGS")
    if path:
        with open(path, "a") as f:
            f.write(" ".join(argv) + "\n")
    for flag in ("--cores", "--seed", "--json"):
        if flag not in argv:
            print(f"gillab simulate-serve: error: {flag} is required", file=sys.stderr)
            sys.exit(2)
    if "--endpoint" in argv:
        print("gillab simulate-serve: error: --endpoint is not an option here", file=sys.stderr)
        sys.exit(2)
    cpu_threads = int(arg(argv, "--cpu-threads", "0"))
    work_units = int(arg(argv, "--work-units", "0"))
    if work_units == 2:
        print("gillab simulate-serve: error: --work-units 2 is not allowed (fake usage error)", file=sys.stderr)
        sys.exit(2)
    if work_units == 3:
        print("fake simulator crash", file=sys.stderr)
        sys.exit(1)
    if work_units == 777:
        work_hang = os.environ.get("FAKE_GILLAB_HANG_ONCE")
        if not work_hang or not os.path.exists(work_hang):
            if work_hang:
                open(work_hang, "w").close()
            while True:
                time.sleep(1)
    requests = int(arg(argv, "--requests"))
    errors = 1 if arg(argv, "--message-bytes") == "13" else 0
    rate = (1500.0 if cpu_threads >= 2 else 1100.0) / (1 + cpu_threads)
    p50 = 1e6 / rate
    result = {"requests": requests, "errors": errors, "seconds": requests / rate, "req_per_s": rate,
              "latency_us": {"p50": p50, "p90": p50 * 1.1, "p99": p50 * 2, "p999": p50 * 3, "max": p50 * 4,
                             "min": p50 / 2, "mean": p50}}
    with open(arg(argv, "--json"), "w") as f:
        json.dump(result, f)
    threads = [{"role": "io", "name": "io", "tid": 1, "lock_priority": 0, "acquisitions": 100,
                "wait_ns": 1000, "wait_p50_ns": 1100, "wait_p99_ns": 5000, "wait_max_ns": 6000,
                "hold_ns": 2000, "elapsed_ns": 10000, "voluntary_releases": 100, "forced_drops": 0,
                "handoffs": 50, "yield_requests": 10, "iterations": 0}]
    for i in range(cpu_threads):
        threads.append({"role": "cpu", "name": f"cpu-{i}", "tid": 2 + i, "lock_priority": 0, "acquisitions": 60,
                        "wait_ns": 3000, "wait_p50_ns": 2000, "wait_p99_ns": 4000, "wait_max_ns": 9000,
                        "hold_ns": 5000, "elapsed_ns": 10000, "voluntary_releases": 0, "forced_drops": 7,
                        "handoffs": 50, "yield_requests": 1, "iterations": 1000})
    print(json.dumps({"engine": arg(argv, "--engine", "toy"), "policy": arg(argv, "--policy", ""),
                      "server": arg(argv, "--server"), "requests": requests, "threads": threads,
                      "lock": {"switches": 42, "handoff_p50_ns": 3000, "handoff_p99_ns": 9000}}), flush=True)
    sys.exit(1 if errors else 0)


def main():
    note_pid()
    if len(sys.argv) < 2:
        sys.exit(2)
    command, argv = sys.argv[1], sys.argv[2:]
    if command == "serve":
        serve(argv)
    elif command == "load":
        load(argv)
    elif command == "simulate-serve":
        simulate_serve(argv)
    else:
        print(f"fake gillab: unknown command {command}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
