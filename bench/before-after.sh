#!/usr/bin/env bash
# before-after.sh BEFORE AFTER [ROUNDS] [SCENARIO...]: two runicorn binaries
# (say, main before a change and the branch after it) side by side in the
# same run: N interleaved rounds per scenario (the order alternates each
# round), then the medians of req/s, p99 and the server's CPU µs/request.
# Scenarios (builtin:hello, -w 1): sync (16 conns, Connection: close),
# gthread (--threads 4, 64 keep-alive conns), gthread1 (--threads 4, one
# keep-alive conn), green (64), async (64). Default: all five, 5 rounds.
# Scenario gthreadclose (not in the default): gthread as above, 64
# connections, Connection: close (a new connection per request: the
# accept path's cost).
# Scenario drip (not in the default) is a slow client instead of wrk: the
# server's CPU (ms) for one ~60 KiB head sent a byte at a time
# (drip_client.py, DRIP_GAP_US apart, default 50) under each class.
# Short rounds are fine on a shared machine (BENCH_DURATION=3
# BENCH_WARMUP=1): quote the medians. Needs only wrk (no peers).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
[ $# -ge 2 ] || die "usage: before-after.sh BEFORE_BINARY AFTER_BINARY [ROUNDS] [SCENARIO...]"
BEFORE="$1" AFTER="$2"
shift 2
ROUNDS="${1:-${BENCH_ROUNDS:-5}}"
shift || true
SCENARIOS=("$@")
[ "${#SCENARIOS[@]}" -gt 0 ] || SCENARIOS=(sync gthread gthread1 green async)
for b in "$BEFORE" "$AFTER"; do [ -x "$b" ] || die "not an executable: $b"; done
require_tools
raise_nofile 20000
RUNICORN_PATH="$AFTER"
begin_result before-after
out <<EOF
- before: $BEFORE ($(stat -c '%y' "$BEFORE" | cut -d. -f1))
- after: $AFTER ($(stat -c '%y' "$AFTER" | cut -d. -f1))
EOF

# scenario NAME: sets FLAGS (runicorn flags), CONNS, WARGS.
scenario() {
    CONNS=64 WARGS=""
    case "$1" in
        sync) FLAGS=(-k sync -w 1) CONNS=16 WARGS="-H Connection:close" ;;
        gthread) FLAGS=(-k gthread -w 1 --threads 4) ;;
        gthread1) FLAGS=(-k gthread -w 1 --threads 4) CONNS=1 ;;
        gthreadclose) FLAGS=(-k gthread -w 1 --threads 4) WARGS="-s $BENCH_DIR/close.lua" ;;
        green) FLAGS=(-k green -w 1) ;;
        async) FLAGS=(-k async -w 1) ;;
        *) die "unknown scenario '$1' (known: sync gthread gthread1 gthreadclose green async drip)" ;;
    esac
}

median() { tr ' ' '\n' | grep -v '^?*$' | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "?"; else if (NR % 2) print v[(NR + 1) / 2]; else { m = (v[NR / 2] + v[NR / 2 + 1]) / 2; if (m == int(m)) print m; else printf "%.2f\n", m } }'; }

# drip_cpu BINARY CLASS: the server tree's CPU in ms for one dripped head.
drip_cpu() {
    local flags=(-k "$2" -w 1) before after line
    [ "$2" = gthread ] && flags+=(--threads 4)
    RUNICORN_PATH="$1" cmd runicorn_cmd builtin:hello "${flags[@]}"
    if ! start_case "drip" / "${CMD[@]}"; then echo "?"; return; fi
    before="$(tree_ticks "$SERVER_PID")"
    line="$(taskset -c 1 python3 "$BENCH_DIR/drip_client.py" 127.0.0.1 "$PORT" 60 "${DRIP_GAP_US:-50}")"
    after="$(tree_ticks "$SERVER_PID")"
    stop_server
    case "$line" in "HTTP/1.1 200"*) ;; *) echo "?"; return ;; esac
    awk -v t=$((after - before)) -v hz="$CLK_TCK" 'BEGIN { printf "%.0f", t * 1000 / hz }'
}

# drip_table: the drip scenario, every class, ROUNDS rounds each.
drip_table() {
    out <<END

### drip: server CPU ms for one ~60 KiB head sent a byte at a time (${DRIP_GAP_US:-50} µs apart), $ROUNDS rounds

| class | CPU ms before (rounds) | CPU ms after (rounds) | median before | median after | after/before |
|---|---|---|---:|---:|---:|
END
    local class b a i bm am
    for class in sync gthread green async; do
        b="" a=""
        for i in $(seq 1 "$ROUNDS"); do
            b+=" $(drip_cpu "$BEFORE" "$class")"
            a+=" $(drip_cpu "$AFTER" "$class")"
        done
        bm="$(median <<<"$b")" am="$(median <<<"$a")"
        printf '| %s |%s |%s | %s | %s | %s |\n' "$class" "$b" "$a" "$bm" "$am" "$(ratio "$am" "$bm")" | out
    done
}

summary=()
for sc in "${SCENARIOS[@]}"; do
    if [ "$sc" = drip ]; then drip_table; continue; fi
    scenario "$sc"
    table_head "$sc: ${FLAGS[*]}, $CONNS connections, $ROUNDS interleaved rounds"
    b_rps="" b_p99="" b_cpu="" a_rps="" a_p99="" a_cpu=""
    for i in $(seq 1 "$ROUNDS"); do
        for who in $( [ $((i % 2)) -eq 1 ] && echo "B A" || echo "A B"); do
            if [ "$who" = B ]; then
                RUNICORN_PATH="$BEFORE" cmd runicorn_cmd builtin:hello "${FLAGS[@]}"
                bench_case "r$i before" "$CONNS" / "$WARGS" -- "${CMD[@]}"
                b_rps+=" $LAST_RPS" b_p99+=" $LAST_P99" b_cpu+=" $LAST_CPU"
            else
                RUNICORN_PATH="$AFTER" cmd runicorn_cmd builtin:hello "${FLAGS[@]}"
                bench_case "r$i after" "$CONNS" / "$WARGS" -- "${CMD[@]}"
                a_rps+=" $LAST_RPS" a_p99+=" $LAST_P99" a_cpu+=" $LAST_CPU"
            fi
        done
    done
    bm="$(median <<<"$b_rps")" am="$(median <<<"$a_rps")"
    bc="$(median <<<"$b_cpu")" ac="$(median <<<"$a_cpu")"
    summary+=("| $sc | ${FLAGS[*]} | $CONNS | $bm | $am | $(ratio "$am" "$bm") | $bc | $ac | $(ratio "$ac" "$bc") |")
done

[ "${#summary[@]}" -gt 0 ] || { log "bench: wrote $RESULT_FILE"; exit 0; }
out <<EOF

### medians over $ROUNDS rounds (${BENCH_DURATION}s each after ${BENCH_WARMUP}s warm-up)

| scenario | flags | conns | req/s before | req/s after | after/before | CPU µs/req before | CPU µs/req after | after/before |
|---|---|---:|---:|---:|---:|---:|---:|---:|
EOF
printf '%s\n' "${summary[@]}" | out
log "bench: wrote $RESULT_FILE"
