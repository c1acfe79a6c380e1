#!/usr/bin/env bash
# The load generator's own overhead (issue 17, "Trust"): how many requests/s
# one thread of `runicorn bench` drives against the fastest server here
# (nginx `return 200`, one worker, on CPU 0), next to wrk -t1 and oha on the
# same core (CPU 1), taking turns for LOADGEN_ROUNDS rounds (default 3);
# medians of req/s and of each generator's own CPU per request (utime+stime
# of the generator process, from the shell's `times` of its children).
# Goal: at least wrk's figure.
#
# Usage: bench/loadgen.sh   (BENCH_DURATION s per run, default 10;
# LOADGEN_CONNECTIONS, default 64; RUNICORN: the binary, else built in
# release; oha from bench/setup.sh)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

rounds="${LOADGEN_ROUNDS:-3}"
conns="${LOADGEN_CONNECTIONS:-64}"
secs="$BENCH_DURATION"
require_tools
runicorn="$(runicorn_bin)"
oha="$(command -v oha || echo "$BENCH_DIR/.tools/bin/oha")"
[ -x "$oha" ] || die "oha missing: run bench/setup.sh"

cmd nginx_cmd
PORT="$(free_port)"
CMD=("${CMD[@]//@PORT@/$PORT}")
start_server nginx "${CMD[@]}"
wait_ready "$PORT" / || die "nginx did not start"
url="http://127.0.0.1:$PORT/"

# gen NAME CMD...: runs CMD on CPU 1; sets OUT (its stdout) and CPU_S (the
# user+system seconds of the processes it ran, from `times`).
gen() {
    local name="$1"; shift
    local times
    times="$( (taskset -c 1 "$@" >"$BENCH_TMP/$name.out" 2>"$BENCH_TMP/$name.err"; times) )" ||
        die "$name failed: $(cat "$BENCH_TMP/$name.err")"
    OUT="$(cat "$BENCH_TMP/$name.out")"
    CPU_S="$(tail -1 <<<"$times" | awk '{ for (i = 1; i <= 2; i++) { split($i, p, "m"); sub(/s$/, "", p[2]); t += p[1] * 60 + p[2] } } END { printf "%.3f", t }')"
}

declare -A rps cpu
record() { # record TOOL REQUESTS SECONDS
    local r c
    r="$(awk -v n="$2" -v s="$3" 'BEGIN { printf "%.0f", n / s }')"
    c="$(awk -v t="$CPU_S" -v n="$2" 'BEGIN { if (n > 0) printf "%.2f", t * 1e6 / n; else print "?" }')"
    rps[$1]+="$r "; cpu[$1]+="$c "
    log "  $1: $r req/s, $c µs CPU/request ($2 requests, $CPU_S s CPU)"
}

for round in $(seq 1 "$rounds"); do
    log "round $round/$rounds ($conns connections, ${secs}s each, nginx on CPU 0, generators on CPU 1)"
    gen wrk wrk -t1 -c"$conns" -d"${secs}s" --latency "$url"
    record wrk "$(awk '/ requests in / { print $1 }' <<<"$OUT")" \
        "$(awk '/ requests in / { sub(/s,$/, "", $4); print $4 }' <<<"$OUT")"
    gen oha "$oha" -z "${secs}s" -c "$conns" --no-tui --output-format json "$url"
    record oha "$(python3 -c 'import json,sys; d=json.load(sys.stdin); print(sum(d["statusCodeDistribution"].values()))' <<<"$OUT")" \
        "$(python3 -c 'import json,sys; print(json.load(sys.stdin)["summary"]["total"])' <<<"$OUT")"
    # No warm-up: the process's CPU then goes to the requests counted.
    gen runicorn "$runicorn" bench --url "$url" --client-threads 1 -c "$conns" -d "${secs}s" --warmup 0s --output json
    record runicorn-bench "$(python3 -c 'import json,sys; print(json.load(sys.stdin)["runs"][0]["requests"])' <<<"$OUT")" \
        "$(python3 -c 'import json,sys; print(json.load(sys.stdin)["runs"][0]["duration_s"])' <<<"$OUT")"
done
stop_server

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
printf '| generator (1 thread, CPU 1) | req/s (median of %s) | CPU µs/request (median) |\n|---|---|---|\n' "$rounds"
for tool in wrk oha runicorn-bench; do
    printf '| %s | %s | %s |\n' "$tool" "$(median <<<"${rps[$tool]}")" "$(median <<<"${cpu[$tool]}")"
done
