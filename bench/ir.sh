#!/usr/bin/env bash
# ir.sh BINARY... : instructions per request of each binary's worker, for
# each class, counted by callgrind: a figure that does not move with the
# machine's load (a shared or noisy machine), to set beside the req/s and
# CPU µs/request of before-after.sh. For each class (builtin:hello, -w 1;
# sync with one connection per request, the others one keep-alive
# connection) the server runs twice under valgrind, answering IR_WARMUP
# requests, then IR_WARMUP + IR_REQUESTS (ir_client.py, one after the
# other), then stopped with TERM; the worker's instructions (every thread)
# in the second run minus the first, over IR_REQUESTS, is its cost per
# request (boot, the stop and the warm-up cancel out; what a worker does on
# a timer while idle does not, so each figure is the median of IR_ROUNDS
# rounds, default 3, the binaries interleaved). IR_CLASSES picks the
# classes (default: sync gthread green async). The valgrind options go in
# VALGRIND_OPTS, not argv: the process title is written over argv, where
# valgrind would read them again in the forked worker.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
[ $# -ge 1 ] || die "usage: ir.sh BINARY..."
IR_REQUESTS="${IR_REQUESTS:-2000}"
IR_WARMUP="${IR_WARMUP:-300}"
IR_ROUNDS="${IR_ROUNDS:-3}"
read -r -a CLASSES <<<"${IR_CLASSES:-sync gthread green async}"
for t in valgrind python3 taskset setsid ss; do
    command -v "$t" >/dev/null 2>&1 || die "$t not found (apt-get install -y valgrind)"
done
for b in "$@"; do [ -x "$b" ] || die "not an executable: $b"; done
RUNICORN_PATH="$1"
begin_result ir
out <<EOF
- method: callgrind (valgrind $(valgrind --version | sed 's/valgrind-//')), builtin:hello -w 1 on 127.0.0.1; Ir of the worker process (all its threads) in a run of $((IR_WARMUP + IR_REQUESTS)) sequential requests minus a run of $IR_WARMUP, divided by $IR_REQUESTS, median of $IR_ROUNDS rounds (each round's figures in brackets); sync: one connection per request (Connection: close), others: one keep-alive connection
EOF
for b in "$@"; do
    printf -- '- binary: %s (%s)\n' "$b" "$(stat -c '%y' "$b" | cut -d. -f1)" | out
done

# ir_run BINARY CLASS N: the worker's Ir over a whole run that answered N
# requests ("" on failure).
ir_run() {
    local bin="$1" class="$2" n="$3" dir port worker flags=(-k "$2" -w 1) mode=""
    [ "$class" = gthread ] && flags+=(--threads 4)
    [ "$class" = sync ] && mode=close
    dir="$(mktemp -d "$BENCH_TMP/cg.XXXXXX")"
    port="$(free_port)"
    VALGRIND_OPTS="--callgrind-out-file=$dir/cg.%p" start_server "ir-$class" \
        valgrind --tool=callgrind "$bin" -b "127.0.0.1:$port" --log-level warning "${flags[@]}" builtin:hello
    if ! wait_ready "$port" / 120; then stop_server; return; fi
    worker="$(tree_pids "$SERVER_PID" | grep -vx "$SERVER_PID" | head -1)"
    local ok
    ok="$(python3 "$BENCH_DIR/ir_client.py" 127.0.0.1 "$port" "$n" $mode)"
    # TERM, then wait (valgrind is slow to exit) so the worker writes its counts.
    kill -TERM -- "-$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 600); do kill -0 -- "-$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    stop_server
    [ "$ok" = "$n" ] || return
    awk '/^(summary|totals):/ { print $2; exit }' "$dir/cg.$worker" 2>/dev/null
}

# ir_case BINARY CLASS: the worker's Ir per request ("?" on failure).
ir_case() {
    local a b
    a="$(ir_run "$1" "$2" "$IR_WARMUP")"
    b="$(ir_run "$1" "$2" $((IR_WARMUP + IR_REQUESTS)))"
    if [ -z "$a" ] || [ -z "$b" ]; then echo "?"; return; fi
    awk -v a="$a" -v b="$b" -v n="$IR_REQUESTS" 'BEGIN { printf "%.0f", (b - a) / n }'
}

header="| class |"
rule="|---|"
for b in "$@"; do header+=" $(basename "$b") Ir/req |"; rule+="---:|"; done
[ $# -lt 2 ] || { header+=" last/first |"; rule+="---:|"; }
printf '\n%s\n%s\n' "$header" "$rule" | out
median() { tr ' ' '\n' | grep -v '^?*$' | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "?"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.0f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

for class in "${CLASSES[@]}"; do
    line="| $class |" first="" last=""
    declare -A runs=()
    for i in $(seq 1 "$IR_ROUNDS"); do
        for b in "$@"; do
            log "ir: $class $(basename "$b") round $i"
            runs[$b]+=" $(ir_case "$b" "$class")"
        done
    done
    for b in "$@"; do
        v="$(median <<<"${runs[$b]}")"
        line+=" $v [${runs[$b]# }] |"
        [ -n "$first" ] || first="$v"
        last="$v"
    done
    unset runs
    [ $# -lt 2 ] || line+=" $(ratio "$last" "$first") |"
    printf '%s\n' "$line" | out
done
log "bench: wrote $RESULT_FILE"
