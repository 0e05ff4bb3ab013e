#!/usr/bin/python3
"""Render a gillab lock trace (Chrome trace-event JSON from --trace) to a PNG timeline.

One lane per thread (in attach order: io first), one colour per state:
holding the lock, waiting for it, blocking I/O (io threads, lock released),
outside the lock (other threads); drop requests are triangles on the lane of
the thread that asked, forced switches ticks on the lane of the thread that
yielded. The io thread's waits longer than --label-min-ms are labelled with
their length, so a convoy reads as a staircase of equal waits.

    scripts/trace_timeline.py trace.json -o timeline.png [--start-ms S] [--window-ms 30]

Without --start-ms the window starts in the middle of the trace, just before
the io thread's next wait for the lock. Slices narrower than a pixel are drawn
one pixel wide, so that short holds stay visible. Uses Debian's python3 +
matplotlib.
"""
import argparse
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

COLOURS = {
    "holding": "#2b8a3e",       # green: running with the lock
    "waiting": "#e03131",       # red: wants the lock, cannot have it
    "blocking I/O": "#74c0fc",  # light blue: io thread in a blocking call, lock released
    "outside lock": "#dee2e6",  # grey: any other thread without the lock
}


def fail(message):
    print(f"trace_timeline: error: {message}", file=sys.stderr)
    sys.exit(2)


def load(path):
    try:
        with open(path) as f:
            trace = json.load(f)
    except OSError as e:
        fail(f"cannot read {path}: {e.strerror}")
    except json.JSONDecodeError as e:
        fail(f"{path} is not JSON: {e}")
    if not isinstance(trace, dict) or "traceEvents" not in trace:
        fail(f"{path} has no traceEvents: not a gillab trace")
    names, order, slices, instants = {}, {}, {}, {}
    for e in trace["traceEvents"]:
        tid = e.get("tid")
        if e.get("ph") == "M":
            if e.get("name") == "thread_name":
                names[tid] = e["args"]["name"]
            elif e.get("name") == "thread_sort_index":
                order[tid] = e["args"]["sort_index"]
        elif e.get("ph") == "X":
            slices.setdefault(tid, []).append((e["ts"] / 1e3, e["dur"] / 1e3, e["name"]))
        elif e.get("ph") == "i":
            instants.setdefault(tid, []).append((e["ts"] / 1e3, e["name"]))
    tids = sorted(set(slices) | set(instants), key=lambda t: (order.get(t, 1 << 30), t))
    if not tids:
        fail(f"{path} holds no events")
    return trace.get("otherData", {}), tids, names, slices, instants


def default_start_ms(tids, names, slices, window_ms):
    """The middle of the trace (the steady state, away from start-up and
    shutdown), moved back to just before the io thread's next request for
    the lock so that the window opens on a whole wait."""
    ends = [ts + dur for t in tids for ts, dur, _ in slices.get(t, [])]
    starts = [ts for t in tids for ts, _, _ in slices.get(t, [])]
    first, last = min(starts), max(ends)
    middle = max(first, (first + last - window_ms) / 2)
    io_waits = [ts for t in tids if names.get(t, "").startswith("io")
                for ts, _, name in slices.get(t, []) if name == "waiting" and ts >= middle]
    return min(io_waits) - 0.2 if io_waits else middle


def title_of(other):
    gil = other.get("gil", {})
    run = other.get("run", {}) or {}
    policy = gil.get("policy", "?")
    parts = [f"policy {policy}", f"switch interval {gil.get('switch_interval_us', '?')} us"]
    if run.get("lock_priority"):
        prios = run["lock_priority"]
        if isinstance(prios, dict):
            parts.append("lock priority " + ",".join(f"{k}={v}" for k, v in sorted(prios.items())))
    if "server" in run:
        parts.insert(0, f"{run['server']} server")
    if "engine" in run:
        parts.insert(1 if "server" in run else 0, f"engine {run['engine']}")
    if "cpu_threads" in run:
        parts.append(f"{run['cpu_threads']} cpu thread(s)")
    return ", ".join(parts)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("trace", help="trace JSON written by --trace")
    ap.add_argument("-o", "--out", help="PNG to write (default: the trace's name with .png)")
    ap.add_argument("--start-ms", type=float, help="window start, ms on the trace's clock")
    ap.add_argument("--window-ms", type=float, default=30.0, help="window length in ms (default 30)")
    ap.add_argument("--label-min-ms", type=float, default=1.0, help="label io waits at least this long")
    ap.add_argument("--title", help="title (default: from the trace's metadata)")
    args = ap.parse_args()
    if args.window_ms <= 0:
        fail(f"--window-ms must be > 0, got {args.window_ms}")
    out = args.out or (args.trace[:-5] if args.trace.endswith(".json") else args.trace) + ".png"

    other, tids, names, slices, instants = load(args.trace)
    start = args.start_ms if args.start_ms is not None else default_start_ms(tids, names, slices, args.window_ms)
    end = start + args.window_ms

    fig, ax = plt.subplots(figsize=(12, 1.0 + 0.75 * len(tids)), dpi=120)
    lane_h = 0.6
    min_width_ms = args.window_ms / 1400  # about one pixel at this figure size
    io_waits = []
    for lane, tid in enumerate(tids):
        y = len(tids) - 1 - lane
        name = names.get(tid, str(tid))
        for state, colour in COLOURS.items():
            bars = [(max(ts, start) - start, min(ts + dur, end) - max(ts, start))
                    for ts, dur, n in slices.get(tid, []) if n == state and ts < end and ts + dur > start]
            if state in ("holding", "waiting"):
                bars = [(x, max(w, min_width_ms)) for x, w in bars]
            if bars:
                ax.broken_barh(bars, (y - lane_h / 2, lane_h), facecolors=colour, linewidth=0)
        for ts, dur, n in slices.get(tid, []):
            if name.startswith("io") and n == "waiting" and ts < end and ts + dur > start:
                io_waits.append(dur)
                if dur >= args.label_min_ms:
                    mid = (max(ts, start) + min(ts + dur, end)) / 2 - start
                    ax.text(mid, y + lane_h / 2 + 0.05, f"{dur:.1f} ms", ha="center", va="bottom", fontsize=8)
        drops = [ts - start for ts, n in instants.get(tid, []) if n == "drop request" and start <= ts < end]
        forced = [ts - start for ts, n in instants.get(tid, []) if n == "forced switch" and start <= ts < end]
        if drops:
            ax.plot(drops, [y - lane_h / 2 - 0.08] * len(drops), "^", color="black", markersize=6)
        if forced:
            ax.plot(forced, [y - lane_h / 2 - 0.08] * len(forced), "|", color="#7048e8", markersize=10,
                    markeredgewidth=2)
    ax.set_yticks(range(len(tids)))
    ax.set_yticklabels([names.get(t, str(t)) for t in reversed(tids)])
    ax.set_ylim(-0.9, len(tids) - 0.2)
    ax.set_xlim(0, args.window_ms)
    ax.set_xlabel(f"time (ms) from t = {start:.3f} ms into the trace")
    ax.grid(axis="x", color="#f1f3f5")
    ax.set_axisbelow(True)
    title = args.title or title_of(other)
    if io_waits:
        title += f"\nio waits in this window: {len(io_waits)}, longest {max(io_waits):.2f} ms"
    ax.set_title(title, fontsize=10)
    handles = [Patch(color=c, label=s) for s, c in COLOURS.items()]
    handles.append(Line2D([], [], marker="^", color="black", linestyle="", label="drop request"))
    handles.append(Line2D([], [], marker="|", color="#7048e8", markeredgewidth=2, linestyle="", label="forced switch"))
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.25 - 0.1 / len(tids)), ncol=6,
              fontsize=8, frameon=False)
    fig.tight_layout()
    try:
        fig.savefig(out)
    except OSError as e:
        fail(f"cannot write {out}: {e.strerror}")
    print(out)


if __name__ == "__main__":
    main()
