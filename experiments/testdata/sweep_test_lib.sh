# sweep_test_lib.sh — shared by the sweep engine tests (sweep_slurm_test.sh,
# sweep_parallel_test.sh): bounded waiting and stopping what a test started, by pid.
# Sourced, not run. Every process a test starts has TEST_DIR in its command line (its
# config, socket or output path), which is how a leftover is recognised as ours.

# record_pid TEST_DIR PID NAME: remember a process to stop at exit (and after an abort).
record_pid() { echo "$2 $3" >>"$1/pids"; }

# The pids of processes whose command line mentions DIR, except this shell and its ancestors.
pids_under() {
  local dir=$1 pid self=" $$ $BASHPID "
  local p=$$
  while [[ $p -gt 1 ]]; do
    self+=" $p "
    p=$(awk '{print $4}' "/proc/$p/stat" 2>/dev/null || echo 1)
  done
  for pid in $(ls /proc | grep -E '^[0-9]+$'); do
    [[ $self == *" $pid "* ]] && continue
    tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF -- "$dir" && echo "$pid"
  done
  return 0
}

# stop_pids PID...: SIGTERM, up to 10 s for them to go, then SIGKILL; children are reaped.
stop_pids() {
  (($#)) || return 0
  kill -TERM "$@" 2>/dev/null || true
  local pid i
  for ((i = 0; i < 100; ++i)); do
    local alive=0
    for pid in "$@"; do
      if kill -0 "$pid" 2>/dev/null && [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) != Z ]]; then alive=1; fi
    done
    ((alive)) || break
    sleep 0.1
  done
  kill -KILL "$@" 2>/dev/null || true
  for pid in "$@"; do wait "$pid" 2>/dev/null || true; done
}

# stop_recorded_pids TEST_DIR: the processes recorded in TEST_DIR/pids that are still ours.
stop_recorded_pids() {
  local dir=$1 pid name ours=()
  [[ -f $dir/pids ]] || return 0
  while read -r pid name; do
    tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF -- "$dir" && ours+=("$pid")
  done <"$dir/pids"
  stop_pids "${ours[@]}"
}

# stop_processes_under TEST_DIR: anything else still running with TEST_DIR in its command line.
stop_processes_under() {
  local pids
  mapfile -t pids < <(pids_under "$1")
  stop_pids "${pids[@]}"
}

# wait_until SECONDS WHAT COMMAND...: polls COMMAND every 0.2 s until it succeeds; fails after SECONDS.
wait_until() {
  local seconds=$1 what=$2 i
  shift 2
  for ((i = 0; i < seconds * 5; ++i)); do
    "$@" && return 0
    sleep 0.2
  done
  echo "sweep test: FAIL: gave up after ${seconds} s waiting until $what" >&2
  return 1
}
