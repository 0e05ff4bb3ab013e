#!/usr/bin/python3
"""Plots for a gillab results directory: scripts/plot.py DIR  ->  DIR/plots/*.png

Reads DIR/runs.csv (one row per run, written by `gillab run`) and makes only the
plots the data supports:

  slowdown.png         req/s at 0 CPU threads / req/s with them, by server x
                       engine/policy variant (log scale, 1x line)      [cpu_threads swept with 0, cores not swept]
  latency_cdf.png      latency CDF per variant: each run's whole distribution
                       (raw/pNNN_rR_load.json, latency_us.cdf), else its
                       percentiles in runs.csv (min, p50 … max)         [always]
  switch_interval.png  req/s and p50 against the switch interval, with the
                       req/s ~ 1/interval reference                     [switch_interval_us swept]
  cpu_threads.png      req/s and p50 against the number of CPU threads  [cpu_threads: >= 3 values, cores not swept]
  tradeoff.png         I/O req/s against CPU-thread iterations/s        [>= 2 variants with CPU threads]
  vs_<axis>.png        req/s and p50/p99 against any other numeric axis (think_us, message_bytes, ...)
  cores.png            req/s and p50/p99 against the simulated cores, a panel
                       per policy/variant, a line per CPU-thread count  [cores swept]
  validation.png       simulated ÷ real per point: req/s, p50, p99, io lock wait,
                       with the ±20% band (design §13)                  [mode swept: real and simulate]

Every point is the median over its repetitions; titles carry the fixed
parameters, axes carry units. Needs Debian's python3-matplotlib (Agg backend).
"""
import csv
import json
import math
import os
import statistics
import sys
import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import ticker  # noqa: E402

# Settings shown in titles when fixed (others only when not at their default).
TITLE_KEYS = ["server", "engine", "policy", "switch_interval_us", "cpu_threads", "handler", "message_bytes",
              "requests", "connections", "think_us", "rate", "lock_priority", "os_priority", "server_cpus",
              "client_cpus", "mode", "cores"]
NUMERIC_AXES = ["think_us", "message_bytes", "rate", "connections", "work_units", "check_interval",
                "requests", "max_message_bytes", "workers"]
QUANTILES = [("latency_min_us", 0.0), ("latency_p50_us", 0.5), ("latency_p90_us", 0.9), ("latency_p99_us", 0.99),
             ("latency_p999_us", 0.999), ("latency_max_us", 1.0)]


def number(text):
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


class Runs:
    def __init__(self, directory):
        with open(os.path.join(directory, "runs.csv"), newline="") as f:
            reader = csv.reader(f)
            self.header = next(reader)
            self.rows = [dict(zip(self.header, r)) for r in reader if len(r) == len(self.header)]
        # Settings are the columns from "variant" up to "status".
        start, end = self.header.index("variant"), self.header.index("status")
        self.settings = self.header[start:end]
        self.varying = [k for k in self.settings if len({r[k] for r in self.rows}) > 1]
        self.directory = directory
        self.name = os.path.basename(os.path.normpath(directory))
        try:
            import tomllib
            with open(os.path.join(directory, "experiment.toml"), "rb") as f:
                self.name = tomllib.load(f).get("name", self.name)
        except Exception:  # a summary without its experiment file still gets plots
            pass
        self.repetitions = max((int(r["repetition"]) + 1 for r in self.rows), default=0)

    def points(self):
        """{point id: [rows]} in point order."""
        out = {}
        for r in self.rows:
            out.setdefault(int(r["point"]), []).append(r)
        return dict(sorted(out.items()))

    def latency_cdf(self, row):
        """[(percentile, us), ...] of one run: the load client's whole distribution (raw/pNNN_rR_load.json),
        or None when that file or its cdf is missing (results from before it was recorded)."""
        path = os.path.join(self.directory, "raw", f"p{int(row['point']):03}_r{row['repetition']}_load.json")
        try:
            with open(path) as f:
                cdf = json.load(f)["latency_us"]["cdf"]
            return [(float(p), float(us)) for p, us in cdf] or None
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def values(self, key):
        seen = []
        for r in self.rows:
            if r[key] not in seen:
                seen.append(r[key])
        return seen

    def fixed_text(self, also_hide=()):
        parts = []
        # Variants bundle engine/policy/priorities: a "fixed" value there would mislead.
        bundled = {"engine", "policy", "lock_priority", "os_priority"} if "variant" in self.varying else set()
        for k in TITLE_KEYS:
            if k in self.varying or k in also_hide or k in bundled or k not in self.settings:
                continue
            value = self.rows[0][k]
            if value == "" or (k in ("rate", "lock_priority", "os_priority") and value in ("0", "")):
                continue
            parts.append(f"{k}={os.path.basename(value) if k == 'handler' else value}")
        parts.append(f"median of {self.repetitions} run{'s' if self.repetitions != 1 else ''}")
        return "\n".join(textwrap.wrap(", ".join(parts), 125))


def series_key(row, keys):
    parts = []
    for k in keys:
        parts.append(row[k] if k == "variant" else f"{k}={row[k]}")
    return " ".join(parts) if parts else "all"


def column_keys(runs, exclude):
    """The keys that distinguish series: the variant if swept, else engine/policy, plus other swept settings."""
    keys = [k for k in runs.varying if k not in exclude]
    if "variant" in keys:
        # Settings that only change with the variant are part of its label.
        def determined(k):
            per = {}
            for r in runs.rows:
                per.setdefault(r["variant"], set()).add(r[k])
            return all(len(v) == 1 for v in per.values())
        keys = ["variant"] + [k for k in keys if k != "variant" and not determined(k)]
    return keys


def aggregate(rows, column):
    return median(number(r[column]) for r in rows)


def si(value):
    """1500 -> 1.5k, 2e7 -> 20M: short tick labels."""
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:g}{suffix}"
    return f"{value:g}"


def plain_log(axis, subs=(1.0, 2.0, 5.0)):
    """Log-scale ticks at subs x 10^k labelled as short plain numbers (not 10^k)."""
    axis.set_major_locator(ticker.LogLocator(base=10, subs=subs))
    axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: si(v)))
    axis.set_minor_formatter(ticker.NullFormatter())


def save(fig, directory, name, made):
    path = os.path.join(directory, "plots", name)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    made.append(path)


def plot_slowdown(runs, directory, made):
    if "cores" in runs.varying and "mode" not in runs.varying:
        return  # policies x cores bars per group: cores.png shows the same points readably
    if "cpu_threads" not in runs.varying or "0" not in runs.values("cpu_threads"):
        return
    loaded_counts = sorted({int(v) for v in runs.values("cpu_threads") if v != "0"})
    group_key = "server" if "server" in runs.varying else None
    bar_keys = column_keys(runs, exclude={"cpu_threads", "server"})
    points = runs.points()

    def twin_key(rows):
        return tuple(rows[0][k] for k in runs.settings if k != "cpu_threads")

    by_settings = {}
    for rows in points.values():
        by_settings[(twin_key(rows), rows[0]["cpu_threads"])] = rows
    groups = runs.values("server") if group_key else [""]
    bars = []
    for rows in points.values():
        label = series_key(rows[0], bar_keys)
        if label not in bars:
            bars.append(label)
    fig, axes = plt.subplots(1, len(loaded_counts), figsize=(max(7, 1.1 * len(groups) * max(1, len(bars)) / 1.5), 4.8),
                             squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    width = 0.8 / max(1, len(bars))
    for ax, count in zip(axes[0], loaded_counts):
        for b, bar in enumerate(bars):
            xs, ys = [], []
            for g, group in enumerate(groups):
                for rows in points.values():
                    r0 = rows[0]
                    if r0["cpu_threads"] != str(count) or series_key(r0, bar_keys) != bar:
                        continue
                    if group_key and r0["server"] != group:
                        continue
                    base = by_settings.get((twin_key(rows), "0"))
                    loaded, unloaded = aggregate(rows, "req_per_s"), aggregate(base, "req_per_s") if base else None
                    if loaded and unloaded:
                        xs.append(g + (b - (len(bars) - 1) / 2) * width)
                        ys.append(unloaded / loaded)
            ax.bar(xs, ys, width * 0.95, label=bar, color=colors[b % len(colors)])
            for x, y in zip(xs, ys):
                ax.annotate(f"{y:.0f}x" if y >= 10 else f"{y:.1f}x", (x, y), ha="center", va="bottom", fontsize=8,
                            xytext=(0, 2), textcoords="offset points")
        ax.set_yscale("log")
        ax.axhline(1.0, color="black", linewidth=1, linestyle="--")
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels(groups if group_key else [f"server={runs.rows[0]['server']}"])
        ax.set_ylabel(f"slowdown: req/s at 0 ÷ req/s at {count} CPU thread{'s' if count > 1 else ''} (log)")
        ax.set_xlabel("server" if group_key else "")
        heights = [p.get_height() for p in ax.patches if p.get_height() > 0]
        top = max(heights + [2])
        ax.set_ylim(min(heights + [0.7]) * 0.7, top * 2.5)  # room below the smallest bar: it must stay visible
        plain_log(ax.yaxis)
        if len(loaded_counts) > 1:
            ax.set_title(f"{count} CPU thread{'s' if count > 1 else ''}", fontsize=9)
        ax.legend(fontsize=8, loc="upper left")
        ax.grid(axis="y", which="both", alpha=0.3)
    fig.suptitle(f"{runs.name}: slowdown from CPU-bound threads (1x = unaffected)\n{runs.fixed_text({'cpu_threads', 'server'})}",
                 fontsize=10)
    fig.tight_layout()
    save(fig, directory, "slowdown.png", made)


def nines(q):
    return -math.log10(1 - q) if q < 1 else None


def plot_latency_cdf(runs, directory, made):
    if not any(number(r["latency_p50_us"]) for r in runs.rows):
        return
    panel_key = "server" if "server" in runs.varying else None
    keys = column_keys(runs, exclude={"server"})
    panels = runs.values("server") if panel_key else [""]
    cols = min(3, len(panels))
    nrows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(max(5.2 * cols, 9.0), 4.0 * nrows), squeeze=False)
    # The max sits one step beyond p99.99 (the last percentile of a recorded CDF) on the "nines" axis.
    top = nines(0.9999) + 0.6
    styles = {}
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    full_cdfs = coarse_points = 0
    for i, panel in enumerate(panels):
        ax = axes[i // cols][i % cols]
        for rows in runs.points().values():
            r0 = rows[0]
            if panel_key and r0["server"] != panel:
                continue
            label = series_key(r0, keys)
            xs, ys = [], []
            cdfs = [runs.latency_cdf(r) for r in rows]
            if all(cdfs) and len({tuple(p for p, _ in c) for c in cdfs}) == 1:
                # The whole distribution: at each percentile, the median over the point's runs.
                full_cdfs += 1
                for k, (p, _) in enumerate(cdfs[0]):
                    xs.append(median([c[k][1] for c in cdfs]))
                    ys.append(nines(p / 100) if p < 100 else top)
            else:
                coarse_points += 1
                for column, q in QUANTILES:
                    value = aggregate(rows, column)
                    if value is None:
                        continue
                    xs.append(value)
                    ys.append(nines(q) if q < 1 else top)
            if not xs:
                continue
            # One colour per variant; dashed without CPU threads, solid with them.
            color_key = series_key(r0, [k for k in keys if k != "cpu_threads"])
            color = styles.setdefault(color_key, colors[len(styles) % len(colors)])
            dashed = "cpu_threads" in keys and r0["cpu_threads"] == "0"
            ax.plot(xs, ys, marker="o", markersize=2 if len(xs) > 8 else 3, color=color,
                    linestyle="--" if dashed else "-", label=label)
        ax.set_xscale("log")
        plain_log(ax.xaxis, subs=(1.0, 3.0))
        ax.set_yticks([0, nines(0.5), nines(0.9), nines(0.99), nines(0.999), nines(0.9999), top])
        ax.set_yticklabels(["min", "50%", "90%", "99%", "99.9%", "99.99%", "max"])
        ax.set_xlabel("latency (µs, log scale; k = 1000)")
        ax.set_ylabel("requests at or below (percentile)")
        ax.grid(alpha=0.3, which="both")
        ax.set_title(f"server={panel}" if panel_key else "", fontsize=10)
    for j in range(len(panels), nrows * cols):
        axes[j // cols][j % cols].axis("off")
    handles, labels = axes[0][0].get_legend_handles_labels()
    for row in axes:
        for ax in row:
            for h, l in zip(*ax.get_legend_handles_labels()):
                if l not in labels:
                    handles.append(h)
                    labels.append(l)
    # The legend goes under the panels, in a strip added for it (~0.2 inch per row of entries).
    legend_in = 0.2 * math.ceil(len(labels) / 4) + 0.3
    fig.set_figheight(fig.get_figheight() + legend_in)
    legend_frac = legend_in / fig.get_figheight()
    fig.legend(handles, labels, fontsize=8, loc="lower center", ncol=min(4, len(labels)), bbox_to_anchor=(0.5, 0))
    how = ("each run's whole distribution, median over runs at each percentile" if not coarse_points
           else "min/p50/p90/p99/p99.9/max of each run, median over runs" if not full_cdfs
           else "whole distributions where recorded, else min/p50/p90/p99/p99.9/max; median over runs")
    fig.suptitle(f"{runs.name}: latency CDF ({how})\n"
                 f"{runs.fixed_text({'server'})}", fontsize=10)
    fig.tight_layout(rect=(0, legend_frac, 1, 1))
    save(fig, directory, "latency_cdf.png", made)


def plot_against(runs, directory, made, axis, filename, xlabel, log_x, reference=None):
    """req/s and latency against a numeric axis, one line per other swept setting."""
    keys = column_keys(runs, exclude={axis})
    series = {}
    for rows in runs.points().values():
        r0 = rows[0]
        x = number(r0[axis])
        if x is None:
            continue
        s = series.setdefault(series_key(r0, keys), [])
        s.append((x, aggregate(rows, "req_per_s"), aggregate(rows, "latency_p50_us"), aggregate(rows, "latency_p99_us")))
    if not series:
        return
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.6))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (label, pts) in enumerate(series.items()):
        pts.sort()
        color = colors[i % len(colors)]
        xs = [p[0] for p in pts]
        left.plot(xs, [p[1] for p in pts], marker="o", color=color, label=label)
        right.plot(xs, [p[2] for p in pts], marker="o", color=color, label=f"{label} p50")
        right.plot(xs, [p[3] for p in pts], marker="^", color=color, linestyle=":", label=f"{label} p99")
        if reference:
            reference(left, right, label, pts, color)
    all_x = sorted({x for pts in series.values() for x, *_ in pts})
    for ax in (left, right):
        if log_x and all_x[0] <= 0:
            ax.set_xscale("symlog", linthresh=max(1.0, min(x for x in all_x if x > 0) if any(x > 0 for x in all_x) else 1.0))
        elif log_x:
            ax.set_xscale("log")
        # Ticks at the swept values: the reader sees exactly what was measured.
        ax.set_xticks(all_x)
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: si(v)))
        ax.xaxis.set_minor_locator(ticker.NullLocator())
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3, which="both")
    left.set_ylabel("throughput (requests/s, log scale)")
    left.set_yscale("log")
    plain_log(left.yaxis)
    left.legend(fontsize=8)
    if any(p[2] or p[3] for pts in series.values() for p in pts):
        right.set_ylabel("latency (µs, log scale)")
        right.set_yscale("log")
        plain_log(right.yaxis)
        right.legend(fontsize=7, ncol=2, loc="best")
    else:  # a client that reports no percentiles (siege)
        right.set_axis_off()
        right.text(0.5, 0.5, "no latency percentiles from this client", ha="center", va="center",
                   transform=right.transAxes)
    fig.suptitle(f"{runs.name}: req/s and latency against {axis}\n{runs.fixed_text({axis})}", fontsize=10)
    fig.tight_layout()
    save(fig, directory, filename, made)


def plot_switch_interval(runs, directory, made):
    if "switch_interval_us" not in runs.varying:
        return

    def reference(left, right, label, pts, color):
        loaded = [p for p in pts if p[1]]
        if "cpu_threads=0" in label or len(loaded) < 2:
            return
        x_top, rate_top = loaded[-1][0], loaded[-1][1]
        xs = [p[0] for p in loaded]
        left.plot(xs, [rate_top * x_top / x for x in xs], color=color, linestyle="--", linewidth=1,
                  label=f"{label}: ∝ 1/interval")
        right.plot(xs, xs, color="gray", linestyle="--", linewidth=1, label="p50 = interval")

    plot_against(runs, directory, made, "switch_interval_us", "switch_interval.png",
                 "switch interval (µs, log scale)", True, reference)


def plot_cpu_threads(runs, directory, made):
    # With the cores swept, cores.png shows these points per policy, a line per CPU-thread count;
    # here they would be policies x cores lines on one axis.
    if "cores" in runs.varying and "mode" not in runs.varying:
        return
    if "cpu_threads" in runs.varying and len(runs.values("cpu_threads")) >= 3:
        plot_against(runs, directory, made, "cpu_threads", "cpu_threads.png", "CPU-bound threads", False)


def plot_tradeoff(runs, directory, made):
    keys = column_keys(runs, exclude={"cpu_threads", "server"})
    by_server = "server" in runs.varying
    series = {}
    for rows in runs.points().values():
        r0 = rows[0]
        # Iterations are counted in different units by each engine: compare within the toy VM only.
        if r0["cpu_threads"] in ("", "0") or r0["engine"] != "toy":
            continue
        rate, iterations = aggregate(rows, "req_per_s"), aggregate(rows, "cpu_iterations_per_s")
        if rate and iterations:
            key = (series_key(r0, keys), r0["server"])
            series.setdefault(key, []).append((int(r0["cpu_threads"]), iterations, rate))
    if len({label for label, _ in series}) < 2:
        return
    fig, ax = plt.subplots(figsize=(8.5, 5.8))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    markers = ["o", "s", "^", "D", "v", "P", "X"]
    labels = list(dict.fromkeys(label for label, _ in series))
    servers = list(dict.fromkeys(server for _, server in series))
    counts = {c for pts in series.values() for c, _, _ in pts}
    for (label, server), pts in series.items():
        pts.sort()
        color = colors[labels.index(label) % len(colors)]
        marker = markers[servers.index(server) % len(markers)]
        ax.plot([p[1] for p in pts], [p[2] for p in pts], marker=marker, markersize=7, color=color,
                label=f"{label}, {server}" if by_server else label)
        if len(counts) > 1:
            for count, x, y in pts:
                ax.annotate(f"{count} cpu", (x, y), fontsize=7, xytext=(4, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_yscale("log")
    plain_log(ax.xaxis)
    plain_log(ax.yaxis)
    ax.set_xlabel("CPU threads' work (VM iterations/s, all CPU threads, log scale; M = million)")
    ax.set_ylabel("I/O throughput (requests/s, log scale)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, ncol=2 if len(series) > 6 else 1)
    cpu_note = f", {min(counts)} CPU thread{'s' if min(counts) > 1 else ''}" if len(counts) == 1 else ""
    ax.set_title(f"{runs.name}: I/O vs CPU throughput per policy, toy engine{cpu_note} (up and right is better)\n"
                 f"{runs.fixed_text({'cpu_threads'})}", fontsize=9)
    save(fig, directory, "tradeoff.png", made)


def plot_cores(runs, directory, made):
    """req/s (top) and p50/p99 latency (bottom) against the simulated cores: one panel per policy/variant
    (and other swept setting), one line per CPU-thread count (darker = more threads)."""
    if "cores" not in runs.varying or any(number(v) is None for v in runs.values("cores")):
        return
    line_key = "cpu_threads" if "cpu_threads" in runs.varying else None
    panel_keys = column_keys(runs, exclude={"cores", "cpu_threads", "mode", "seed"})
    panels = {}
    for rows in runs.points().values():
        r0 = rows[0]
        if r0["mode"] != "simulate":
            continue
        line = int(r0[line_key]) if line_key else 0
        panels.setdefault(series_key(r0, panel_keys), {}).setdefault(line, []).append(
            (number(r0["cores"]), aggregate(rows, "req_per_s"), aggregate(rows, "latency_p50_us"),
             aggregate(rows, "latency_p99_us")))
    if not panels:
        return
    lines = sorted({line for panel in panels.values() for line in panel})
    cmap = plt.get_cmap("viridis")
    shade = {line: cmap(0.85 * i / max(1, len(lines) - 1)) for i, line in enumerate(lines)}
    fig, axes = plt.subplots(2, len(panels), figsize=(max(6.0, 4.2 * len(panels)), 7.5), sharex=True, sharey="row",
                             squeeze=False)
    all_cores = sorted({x for panel in panels.values() for pts in panel.values() for x, *_ in pts})
    for column, (title, panel) in enumerate(panels.items()):
        top, bottom = axes[0][column], axes[1][column]
        for line, pts in sorted(panel.items()):
            pts.sort()
            xs = [p[0] for p in pts]
            label = f"{line} cpu threads" if line_key else "all"
            top.plot(xs, [p[1] for p in pts], marker="o", color=shade[line], label=label)
            bottom.plot(xs, [p[2] for p in pts], marker="o", color=shade[line], label=f"{label} p50")
            bottom.plot(xs, [p[3] for p in pts], marker="^", linestyle=":", color=shade[line], label=f"{label} p99")
        top.set_title(title, fontsize=9)
        for ax in (top, bottom):
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            plain_log(ax.yaxis)
            ax.set_xticks(all_cores)
            ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: si(v)))
            ax.xaxis.set_minor_locator(ticker.NullLocator())
            ax.grid(alpha=0.3, which="both")
        bottom.set_xlabel("simulated cores (log scale)")
    axes[0][0].set_ylabel("throughput (requests/s, log scale)")
    axes[1][0].set_ylabel("latency p50 (solid), p99 (dotted) (µs, log scale)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(lines), fontsize=8, bbox_to_anchor=(0.5, -0.01))
    fig.suptitle(f"{runs.name}: req/s and latency against the simulated cores, per policy\n"
                 f"{runs.fixed_text({'cores', 'cpu_threads'})}", fontsize=10)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    save(fig, directory, "cores.png", made)


# The validation figures: runs.csv column, label (summary.cc's validation table has the same).
VALIDATION_FIGURES = [("req_per_s", "req/s"), ("latency_p50_us", "p50 latency"), ("latency_p99_us", "p99 latency"),
                      ("io_wait_p50_ns", "io lock wait p50")]
VALIDATION_TOLERANCE = 0.20


def plot_validation(runs, directory, made):
    """Simulated ÷ real medians per point (the twin: same settings but mode, cores and seed).
    A ratio of 0 (the simulated figure is 0) cannot be drawn on the log axis: summary.md has it."""
    if "mode" not in runs.varying:
        return
    ignored = {"mode", "cores", "seed"}

    def twin_key(row):
        return tuple(row[k] for k in runs.settings if k not in ignored)

    real = {twin_key(rows[0]): rows for rows in runs.points().values() if rows[0]["mode"] == "real"}
    label_keys = [k for k in column_keys(runs, exclude=ignored)]
    pairs = []
    for rows in runs.points().values():
        if rows[0]["mode"] != "simulate" or twin_key(rows[0]) not in real:
            continue
        twin = real[twin_key(rows[0])]
        ratios = []
        for column, _ in VALIDATION_FIGURES:
            sim, ref = aggregate(rows, column), aggregate(twin, column)
            ratios.append(sim / ref if sim is not None and ref else None)
        pairs.append((series_key(rows[0], label_keys), ratios))
    if not pairs:
        return
    shown = [i for i in range(len(VALIDATION_FIGURES)) if any(r[i] is not None for _, r in pairs)]
    fig, ax = plt.subplots(figsize=(min(16.0, max(7.0, 0.75 * len(pairs) + 2)), 5.0))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    markers = ["o", "s", "^", "D"]
    step = 0.5 / max(1, len(shown))
    for n, i in enumerate(shown):
        xs, ys = [], []
        for p, (_, ratios) in enumerate(pairs):
            if ratios[i] is not None and ratios[i] > 0:
                xs.append(p + (n - (len(shown) - 1) / 2) * step)
                ys.append(ratios[i])
        ax.plot(xs, ys, linestyle="none", marker=markers[n % len(markers)], markersize=7,
                color=colors[n % len(colors)], label=VALIDATION_FIGURES[i][1])
    ax.axhspan(1 - VALIDATION_TOLERANCE, 1 + VALIDATION_TOLERANCE, color="tab:green", alpha=0.15,
               label=f"within ±{VALIDATION_TOLERANCE:.0%}")
    ax.axhline(1.0, color="gray", linewidth=1)
    values = [r[i] for _, r in pairs for i in shown if r[i] is not None and r[i] > 0] + [0.7, 1.4]
    ax.set_yscale("log")
    ax.set_ylim(min(values) / 1.25, max(values) * 1.25)
    fine = max(values) / min(values) < 4  # a narrow range gets more ticks
    ticks = [t for t in ((0.5, 0.6, 0.7, 0.8, 1.0, 1.2, 1.5, 2.0, 3.0) if fine else
                         (0.01, 0.03, 0.1, 0.3, 0.8, 1.2, 3.0, 10.0, 30.0, 100.0))
             if min(values) / 1.25 <= t <= max(values) * 1.25]
    ax.set_yticks(ticks)
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_xticks(range(len(pairs)))
    ax.set_xticklabels([label.replace("cpu_threads=", "cpu ").replace(" io>", "\nio>").replace("=", " ").replace(" cpu ", "\ncpu ")
                        for label, _ in pairs], fontsize=7)
    ax.set_xlim(-0.6, len(pairs) - 0.4)
    ax.set_ylabel("simulated ÷ real (medians over runs, log scale)")
    ax.grid(alpha=0.3, axis="y", which="major")
    ax.legend(fontsize=8, ncol=len(shown) + 1, loc="upper center", bbox_to_anchor=(0.5, -0.16))
    ax.set_title(f"{runs.name}: the simulator against this machine, point by point (1 = agreement)\n"
                 f"{runs.fixed_text(ignored)}", fontsize=9)
    save(fig, directory, "validation.png", made)


STM_TIMES = [("io_stm_committed_ns", "committed", "tab:green"), ("io_stm_aborted_ns", "aborted", "tab:red"),
             ("io_stm_paused_ns", "paused (waiting: inevitable unit, busy object)", "tab:gray")]


def plot_stm_time(runs, directory, made):
    """Where the workers' time went under stm (PyPy's print_stm_log.py: committed / aborted / paused), per point."""
    if "io_stm_committed_ns" not in runs.header:
        return
    bars = []
    keys = [k for k in column_keys(runs, exclude=set()) if k != "policy"]
    for rows in runs.points().values():
        r0 = rows[0]
        if r0["policy"] != "stm":
            continue
        times = [(aggregate(rows, column) or 0.0) / 1e9 for column, _, _ in STM_TIMES]
        if any(times):
            bars.append((series_key(r0, keys), times))
    if not bars:
        return
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(bars) + 2), 4.8))
    bottoms = [0.0] * len(bars)
    for i, (_, label, color) in enumerate(STM_TIMES):
        heights = [times[i] for _, times in bars]
        ax.bar(range(len(bars)), heights, bottom=bottoms, color=color, label=label)
        bottoms = [b + h for b, h in zip(bottoms, heights)]
    ax.set_xticks(range(len(bars)))
    ax.set_xticklabels([label.replace("framework_clock=", "clock=").replace(" ", "\n") for label, _ in bars],
                       fontsize=7)
    ax.set_ylabel("worker CPU time per run (s, median over runs)")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    ax.set_title(f"{runs.name}: stm units' time, committed / aborted / paused\n{runs.fixed_text({'policy'})}",
                 fontsize=9)
    fig.tight_layout()
    save(fig, directory, "stm_time.png", made)


def main():
    if len(sys.argv) != 2:
        print("usage: scripts/plot.py RESULTS_DIR", file=sys.stderr)
        return 2
    directory = sys.argv[1]
    runs = Runs(directory)
    if not runs.rows:
        print(f"plot.py: {directory}/runs.csv has no runs", file=sys.stderr)
        return 0
    plots = os.path.join(directory, "plots")
    os.makedirs(plots, exist_ok=True)
    # plots/ is ours: a plot the data no longer supports must not linger from an earlier report.
    for name in os.listdir(plots):
        if name.endswith(".png"):
            os.remove(os.path.join(plots, name))
    made = []
    plot_slowdown(runs, directory, made)
    plot_latency_cdf(runs, directory, made)
    plot_switch_interval(runs, directory, made)
    plot_cpu_threads(runs, directory, made)
    plot_tradeoff(runs, directory, made)
    plot_stm_time(runs, directory, made)
    plot_cores(runs, directory, made)
    plot_validation(runs, directory, made)
    for axis in NUMERIC_AXES:
        if axis in runs.varying and all(number(v) is not None for v in runs.values(axis)):
            plot_against(runs, directory, made, axis, f"vs_{axis}.png", f"{axis} (log scale)", True)
    for path in made:
        print(f"plot: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
