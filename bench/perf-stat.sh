#!/usr/bin/env bash
# perf-stat.sh SERVER CONNS [SECONDS]: what the server's process tree does
# per request under wrk, from `perf stat` (kernel tracepoints and software
# counters, which work in a VM without hardware counters): system calls,
# context switches, wake-ups and CPU time (task-clock) per request. SERVER
# is `hyper`, `may`, or `BINARY:CLASS` (runicorn builtin:hello -w 1; gthread
# with --threads 4). PERF_EVENTS overrides the events, e.g.
# PERF_EVENTS='syscalls:sys_enter_*' for the calls by name (zero counts are
# left out). Server on CPU 0, wrk on CPU 1, as in every bench script; a
# warm-up of BENCH_WARMUP seconds first. Needs perf (linux-perf) and root or
# kernel.perf_event_paranoid <= 1 for the tracepoints.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
[ $# -ge 2 ] || die "usage: perf-stat.sh hyper|may|BINARY:CLASS CONNS [SECONDS]"
SERVER="$1" CONNS="$2" SECS="${3:-$BENCH_DURATION}"
EVENTS="${PERF_EVENTS:-raw_syscalls:sys_enter,sched:sched_switch,sched:sched_wakeup,task-clock}"
command -v perf >/dev/null || die "perf not found (apt-get install linux-perf)"
require_tools
raise_nofile 20000
case "$SERVER" in
    hyper) cmd hyper_cmd ;;
    may) cmd may_cmd ;;
    *:*)
        RUNICORN_PATH="${SERVER%:*}" class="${SERVER##*:}" flags=(-k "${SERVER##*:}" -w 1)
        [ "$class" = gthread ] && flags+=(--threads 4)
        cmd runicorn_cmd builtin:hello "${flags[@]}" ;;
    *) die "unknown server '$SERVER' (hyper, may or BINARY:CLASS)" ;;
esac
start_case perf-stat / "${CMD[@]}" || die "the server did not serve"
url="http://127.0.0.1:$PORT/"
[ "$BENCH_WARMUP" = 0 ] || run_wrk "$CONNS" "$BENCH_WARMUP" "$url"
pids="$(tree_pids "$SERVER_PID" | paste -sd,)"
perf stat -x, -e "$EVENTS" -p "$pids" -o "$BENCH_TMP/perf-stat.csv" -- sleep "$SECS" &
stat_pid=$!
run_wrk "$CONNS" "$SECS" "$url"
wait "$stat_pid" || true
stop_server
printf '%s, %s connection(s): %s requests (%s req/s), load average %s\n' "$SERVER" "$CONNS" "$WRK_REQS" "$WRK_RPS" \
    "$(cut -d' ' -f1-3 /proc/loadavg)"
# perf's CSV: value,unit,event,...; task-clock is in milliseconds.
awk -F, -v n="$WRK_REQS" '/^[0-9.]+,/ && $1 > 0 {
    v = $1 / n
    if ($3 == "task-clock") printf "  %-34s %8.2f µs per request\n", "CPU (task-clock)", v * 1000
    else printf "  %-34s %8.2f per request\n", $3, v
}' "$BENCH_TMP/perf-stat.csv"
