#!/usr/bin/env bash
# access-log.sh [ROUNDS] [SCENARIO...]: the access log's cost (issue 15: it
# must stay within 10%). One runicorn binary, builtin:hello, -w 1, each
# scenario served without an access log ("off") and with `--access-logfile
# FILE` in Gunicorn's default format ("file"), side by side in the same run:
# N interleaved rounds (the order alternates each round), then the medians
# of req/s, p99 and the server's CPU µs/request, and the after/before
# ratios. Each "file" case checks that the file got one line per request
# wrk counted (warm-up included), so a log that silently writes nothing
# cannot look free.
# Scenarios: gthread (--threads 4, 64 keep-alive conns), async (64),
# sync (16 conns, Connection: close), green (64). Default: gthread async.
# Short rounds are fine on a shared machine (BENCH_DURATION=3
# BENCH_WARMUP=1): quote the medians. Needs only wrk (no peers).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ROUNDS="${1:-${BENCH_ROUNDS:-5}}"
shift || true
SCENARIOS=("$@")
[ "${#SCENARIOS[@]}" -gt 0 ] || SCENARIOS=(gthread async)
require_tools
raise_nofile 20000
RUNICORN_PATH="$(runicorn_bin)"
begin_result access-log
LOG_FILE="$BENCH_TMP/access.log"
out <<EOF
- binary: $RUNICORN_PATH ($(stat -c '%y' "$RUNICORN_PATH" | cut -d. -f1)), $(cd "$ROOT_DIR" && git log --oneline -1 2>/dev/null || echo "?")
- file: $LOG_FILE (on $(df --output=fstype "$BENCH_TMP" | tail -1)), truncated before each case
EOF

# scenario NAME: sets FLAGS (runicorn flags), CONNS, WARGS.
scenario() {
    CONNS=64 WARGS=""
    case "$1" in
        sync) FLAGS=(-k sync -w 1) CONNS=16 WARGS="-H Connection:close" ;;
        gthread) FLAGS=(-k gthread -w 1 --threads 4) ;;
        green) FLAGS=(-k green -w 1) ;;
        async) FLAGS=(-k async -w 1) ;;
        *) die "unknown scenario '$1' (known: sync gthread green async)" ;;
    esac
}

median() { tr ' ' '\n' | grep -v '^?*$' | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "?"; else if (NR % 2) print v[(NR + 1) / 2]; else { m = (v[NR / 2] + v[NR / 2 + 1]) / 2; if (m == int(m)) print m; else printf "%.2f\n", m } }'; }

# lines_check: after a "file" case (the server stopped, so flushed), the
# file's line count against the requests wrk counted in the measured run.
lines_check() {
    local lines
    lines="$(wc -l <"$LOG_FILE")"
    if [ "$lines" -lt "$WRK_REQS" ]; then
        log "bench: only $lines access lines for $WRK_REQS measured requests"
        CHECKS+=("FAILED: $lines lines < $WRK_REQS requests")
    else
        CHECKS+=("$lines lines >= $WRK_REQS")
    fi
}

summary=()
CHECKS=()
for sc in "${SCENARIOS[@]}"; do
    scenario "$sc"
    table_head "$sc: ${FLAGS[*]}, $CONNS connections, $ROUNDS interleaved rounds (off: no access log; file: --access-logfile)"
    o_rps="" o_cpu="" f_rps="" f_cpu=""
    for i in $(seq 1 "$ROUNDS"); do
        for who in $( [ $((i % 2)) -eq 1 ] && echo "O F" || echo "F O"); do
            if [ "$who" = O ]; then
                cmd runicorn_cmd builtin:hello "${FLAGS[@]}"
                bench_case "r$i off" "$CONNS" / "$WARGS" -- "${CMD[@]}"
                o_rps+=" $LAST_RPS" o_cpu+=" $LAST_CPU"
            else
                : >"$LOG_FILE"
                cmd runicorn_cmd builtin:hello "${FLAGS[@]}" --access-logfile "$LOG_FILE"
                bench_case "r$i file" "$CONNS" / "$WARGS" -- "${CMD[@]}"
                f_rps+=" $LAST_RPS" f_cpu+=" $LAST_CPU"
                lines_check
            fi
        done
    done
    om="$(median <<<"$o_rps")" fm="$(median <<<"$f_rps")"
    oc="$(median <<<"$o_cpu")" fc="$(median <<<"$f_cpu")"
    summary+=("| $sc | ${FLAGS[*]} | $CONNS | $om | $fm | $(ratio "$fm" "$om") | $oc | $fc | $(ratio "$fc" "$oc") |")
done

out <<EOF

### medians over $ROUNDS rounds (${BENCH_DURATION}s each after ${BENCH_WARMUP}s warm-up)

| scenario | flags | conns | req/s off | req/s file | file/off | CPU µs/req off | CPU µs/req file | file/off |
|---|---|---:|---:|---:|---:|---:|---:|---:|
EOF
printf '%s\n' "${summary[@]}" | out
printf '\nline counts of the "file" cases: %s\n' "$(IFS=';'; echo "${CHECKS[*]}")" | out
log "bench: wrote $RESULT_FILE"
