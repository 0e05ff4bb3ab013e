#!/usr/bin/python3
"""Hand-off latency per policy as a CDF, against the futex ping-pong floor of the same run.

For each policy and each K in --cpu-threads, runs `gillab contend --json`
(one io thread that blocks with the lock released, K cpu_spin threads) and
plots the lock's hand-off latency CDF (LockStats::handoff_ns: from the
holder's release or drop to the next holder running; contend's handoff_us.cdf).
The floor is `gillab_bench`'s BM_FutexPingPong (same core and two cores),
measured before and after the runs; half a round trip is one wake-up, drawn as
a vertical line.

    scripts/handoff_cdf.py [-o handoff_cdf.png] [--build build] [--cpu-threads 1,3]
                           [--policies mutex,ticket,priority,newgil] [--iterations 300]
Prints one line per run (p50/p90/p99) and writes the PNG. Debian's python3 + matplotlib.
"""
import argparse
import json
import os
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def fail(message):
    print(f"handoff_cdf: error: {message}", file=sys.stderr)
    sys.exit(2)


def run_json(cmd):
    try:
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        fail(f"{' '.join(cmd)} failed: {getattr(e, 'stderr', '') or e}")
    return json.loads(out)


def floor_us(bench):
    """Half a ping-pong round trip (one wake-up), in us, per pinning."""
    if not os.access(bench, os.X_OK):
        return {}
    data = run_json([bench, "--benchmark_filter=BM_FutexPingPong", "--benchmark_format=json"])
    return {b["name"].split("/")[1]: b["floor_ns"] / 2e3 for b in data["benchmarks"] if "floor_ns" in b}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-o", "--out", default="handoff_cdf.png")
    ap.add_argument("--build", default="build")
    ap.add_argument("--policies", default="mutex,ticket,priority,newgil")
    ap.add_argument("--cpu-threads", default="1,3")
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--lock-priority", default="io=1,cpu=0", help="for policy priority")
    args = ap.parse_args()
    gillab = os.path.join(args.build, "experiments", "gillab")
    bench = os.path.join(args.build, "interp", "gillab_bench")
    if not os.access(gillab, os.X_OK):
        fail(f"{gillab} not found: build first (scripts/setup)")
    ks = [int(k) for k in args.cpu_threads.split(",")]

    floors = [floor_us(bench)]
    runs = {}
    for k in ks:
        for policy in args.policies.split(","):
            cmd = [gillab, "contend", "--json", "--policy", policy, "--cpu-threads", str(k),
                   "--iterations", str(args.iterations)]
            if policy == "priority":
                cmd += ["--lock-priority", args.lock_priority]
            r = run_json(cmd)
            h = r["handoff_us"]
            runs[(k, policy)] = h
            print(f"K={k} {policy:9s} hand-off us: p50 {h['p50']:.1f}  p90 {h['p90']:.1f}  p99 {h['p99']:.1f}  "
                  f"max {h['max']:.1f}  (n={h['count']})  io wait p50 {r['io_wait_us']['p50']:.1f}")
    floors.append(floor_us(bench))
    floor = {}
    for f in floors:
        for pin, us in f.items():
            floor.setdefault(pin, []).append(us)
    for pin, v in floor.items():
        print(f"futex wake-up floor ({pin}): {', '.join(f'{x:.1f}' for x in v)} us (before, after)")

    fig, axes = plt.subplots(1, len(ks), figsize=(6 * len(ks), 4.5), dpi=110, squeeze=False)
    for ax, k in zip(axes[0], ks):
        for policy in args.policies.split(","):
            h = runs[(k, policy)]
            if not h.get("cdf"):
                continue
            xs = [max(us, 0.1) for _, us in h["cdf"]]
            ys = [p / 100 for p, _ in h["cdf"]]
            ax.step(xs, ys, where="post", label=f"{policy} (p50 {h['p50']:.0f} us)")
        for pin, v in floor.items():
            ax.axvline(sum(v) / len(v), linestyle="--", color="grey" if pin == "same_core" else "black",
                       label=f"futex wake-up, {pin.replace('_', ' ')}")
        ax.set_xscale("log")
        ax.set_xlabel("hand-off latency (us, log)")
        ax.set_ylabel("fraction of hand-offs")
        ax.set_title(f"1 io + {k} cpu thread(s)")
        ax.grid(True, which="both", color="#eeeeee")
        ax.legend(fontsize=8, loc="lower right")
    fig.suptitle("gillab contend: lock hand-off latency per policy (release/drop to next holder running)")
    fig.tight_layout()
    fig.savefig(args.out)
    print(args.out)


if __name__ == "__main__":
    main()
