#!/usr/bin/env python3
"""same_runs.py MERGED SINGLE [--shards N] — the sweep engine tests' verdict.

MERGED (a `gillab merge` of N shards) must equal SINGLE (the same experiment run in one
piece) in everything but the measurements: the same runs.csv columns, the same set of
(point, repetition) runs in the same order, the same settings in every row, status ok, and a
measurement present (or NA) in one exactly when it is in the other. MERGED's meta.json must
list N shards and their hosts and no missing run; both directories hold a summary.md.
Prints one line per difference and exits 1 if there is any.
"""
import csv
import json
import sys


def rows(path):
    with open(path + "/runs.csv", newline="") as f:
        table = list(csv.reader(f))
    return table[0], table[1:]


def main():
    merged, single = sys.argv[1], sys.argv[2]
    shards = int(sys.argv[sys.argv.index("--shards") + 1]) if "--shards" in sys.argv else None
    problems = []
    header_m, rows_m = rows(merged)
    header_s, rows_s = rows(single)
    if header_m != header_s:
        problems.append(f"columns differ: {header_m} against {header_s}")
    settings_end = header_s.index("status")  # point, repetition, variant, every setting
    if [r[:2] for r in rows_m] != [r[:2] for r in rows_s]:
        problems.append(f"runs differ: {[r[:2] for r in rows_m]} against {[r[:2] for r in rows_s]}")
    for m, s in zip(rows_m, rows_s):
        run = f"point {s[0]} rep {s[1]}"
        if m[:settings_end] != s[:settings_end]:
            problems.append(f"{run}: settings differ")
        for name, a, b in zip(header_s[settings_end:], m[settings_end:], s[settings_end:]):
            if (a == "") != (b == ""):
                problems.append(f"{run}: {name} is '{a}' merged and '{b}' in one piece")
        if m[settings_end] != "ok" or s[settings_end] != "ok":
            problems.append(f"{run}: status {m[settings_end]} / {s[settings_end]}")
    if len(rows_s) == 0:
        problems.append("the single run has no rows")
    with open(merged + "/meta.json") as f:
        meta = json.load(f)
    if shards is not None and len(meta.get("shards", [])) != shards:
        problems.append(f"meta.json lists {len(meta.get('shards', []))} shards, not {shards}")
    if not meta.get("hosts"):
        problems.append("meta.json lists no hosts")
    if meta.get("missing_runs"):
        problems.append(f"meta.json lists missing runs {meta['missing_runs']}")
    for d in (merged, single):
        try:
            open(d + "/summary.md").close()
        except OSError:
            problems.append(f"{d} has no summary.md")
    for p in problems:
        print(f"same_runs: {p}", file=sys.stderr)
    if problems:
        sys.exit(1)
    print(f"same_runs: {len(rows_m)} runs, {len(header_m)} columns: merged equals one piece")


if __name__ == "__main__":
    main()
