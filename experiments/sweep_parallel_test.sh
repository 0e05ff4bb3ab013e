#!/usr/bin/env bash
# sweep_parallel_test.sh — scripts/sweep-parallel with GNU parallel on this machine (`-S :`;
# ssh hosts are not required: none are available to a test), in both of its modes: a shared
# filesystem (the default) and --return. testdata/sweep.toml in 4 shards each time; the merged
# directory must hold the same runs and columns as the experiment run in one piece
# (testdata/same_runs.py). Then a shard is damaged (its directory removed and its joblog entry
# marked failed) and the same command, run again, re-runs that shard only (--resume-failed).
# Everything the test starts has TEST_DIR in its command line and is stopped at exit.
#   sweep_parallel_test.sh GILLAB_BINARY SOURCE_DIR TEST_DIR
set -euo pipefail
gillab=$1 src=$2 tmp=$3
start_s=$SECONDS
fail() { echo "sweep_parallel_test: FAIL: $*" >&2; exit 1; }
"$src/scripts/sweep-deps" parallel || fail "could not install GNU parallel (scripts/sweep-deps)"
source "$src/experiments/testdata/sweep_test_lib.sh"
stop_processes_under "$tmp"  # an earlier run of this test, killed before its trap ran
rm -rf "$tmp"
mkdir -p "$tmp"
trap 'status=$?; stop_processes_under "$tmp"; exit $status' EXIT
exp=$src/experiments/testdata/sweep.toml
export GILLAB_BIN=$gillab

"$gillab" run "$exp" -o "$tmp/single" --no-plots >"$tmp/single.out" 2>&1 || { cat "$tmp/single.out"; fail "the single run failed"; }

shared_start_s=$SECONDS
"$src/scripts/sweep-parallel" --shards 4 --dir "$tmp/shared" "$exp" : >"$tmp/shared.out" 2>&1 ||
  { cat "$tmp/shared.out"; fail "sweep-parallel (shared filesystem) failed"; }
shared_s=$((SECONDS - shared_start_s))
/usr/bin/python3 "$src/experiments/testdata/same_runs.py" "$tmp/shared/merged" "$tmp/single" --shards 4
[[ $(grep -c . "$tmp/shared/parallel.joblog") -eq 5 ]] || fail "the joblog does not hold 4 jobs"

return_start_s=$SECONDS
"$src/scripts/sweep-parallel" --return --shards 4 --dir "$tmp/returned" "$exp" : >"$tmp/returned.out" 2>&1 ||
  { cat "$tmp/returned.out"; fail "sweep-parallel --return failed"; }
return_s=$((SECONDS - return_start_s))
/usr/bin/python3 "$src/experiments/testdata/same_runs.py" "$tmp/returned/merged" "$tmp/single" --shards 4

# --resume-failed: shard 2 "failed" (its directory gone, its joblog exit value 1); the same
# command re-runs shard 2 only, and the merge is complete again.
rm -rf "$tmp/shared/shard-2"
awk -F'\t' 'BEGIN { OFS = "\t" } NR > 1 && $NF ~ /--shard 2\// { $7 = 1 } { print }' \
  "$tmp/shared/parallel.joblog" >"$tmp/joblog" && mv "$tmp/joblog" "$tmp/shared/parallel.joblog"
grep -q $'\t1\t0\t.*--shard 2/' "$tmp/shared/parallel.joblog" || fail "could not mark shard 2 failed in the joblog"
"$src/scripts/sweep-parallel" --shards 4 --dir "$tmp/shared" "$exp" : >"$tmp/again.out" 2>&1 ||
  { cat "$tmp/again.out"; fail "sweep-parallel re-run failed"; }
[[ $(grep -c -- '--shard 2/' "$tmp/shared/parallel.joblog") -eq 2 ]] || fail "shard 2 was not re-run exactly once"
[[ $(grep -c -- '--shard 0/' "$tmp/shared/parallel.joblog") -eq 1 ]] || fail "shard 0 was re-run"
/usr/bin/python3 "$src/experiments/testdata/same_runs.py" "$tmp/shared/merged" "$tmp/single" --shards 4
echo "sweep_parallel_test: PASS (4 shards shared fs ${shared_s} s, --return ${return_s} s; whole test $((SECONDS - start_s)) s)"
