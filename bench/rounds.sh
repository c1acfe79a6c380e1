#!/usr/bin/env bash
# rounds.sh [ROUNDS] [SCENARIO...]: N interleaved rounds of runicorn against
# its nearest peer (the order alternates each round), then the medians; on a
# noisy machine the median of interleaved rounds is the figure to quote.
# Scenarios (hello unless said): sync (vs gunicorn sync, -w 1, 16 conns,
# Connection: close), gthread (vs gunicorn gthread, -w 1 --threads 4, 64
# keep-alive conns), green (vs may_minihttp, 64 conns), async (vs hyper, 64
# conns), abi (builtin:hello vs the ABI example under gthread; needs ABI_APP).
# Defaults: 5 rounds of green and async.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ROUNDS="${1:-${BENCH_ROUNDS:-5}}"
shift || true
SCENARIOS=("$@")
[ "${#SCENARIOS[@]}" -gt 0 ] || SCENARIOS=(green async)
bench_init rounds
have_runicorn || die "rounds.sh compares runicorn with a peer: unset BENCH_NO_RUNICORN"

# scenario NAME: sets P_LABEL/P_CMD (peer), R_LABEL/R_CMD (runicorn), CONNS, SPATH, WARGS.
scenario() {
    CONNS=64 SPATH=/ WARGS=""
    case "$1" in
        sync)
            cmd gunicorn_cmd wsgi_hello:hello -k sync -w 1; P_LABEL="gunicorn sync -w 1"; P_CMD=("${CMD[@]}")
            cmd runicorn_cmd builtin:hello -k sync -w 1; R_LABEL="runicorn sync -w 1"; R_CMD=("${CMD[@]}")
            CONNS=16 WARGS="-H Connection:close" ;;
        gthread)
            cmd gunicorn_cmd wsgi_hello:hello -k gthread -w 1 --threads 4; P_LABEL="gunicorn gthread -w 1 --threads 4"; P_CMD=("${CMD[@]}")
            cmd runicorn_cmd builtin:hello -k gthread -w 1 --threads 4; R_LABEL="runicorn gthread -w 1 --threads 4"; R_CMD=("${CMD[@]}") ;;
        green)
            cmd may_cmd; P_LABEL="may_minihttp"; P_CMD=("${CMD[@]}")
            cmd runicorn_cmd builtin:hello -k green -w 1; R_LABEL="runicorn green -w 1"; R_CMD=("${CMD[@]}") ;;
        async)
            cmd hyper_cmd; P_LABEL="hyper current_thread"; P_CMD=("${CMD[@]}")
            cmd runicorn_cmd builtin:hello -k async -w 1; R_LABEL="runicorn async -w 1"; R_CMD=("${CMD[@]}") ;;
        abi)
            [ -n "${ABI_APP:-}" ] || die "scenario abi needs ABI_APP=/path/libhello.so:app"
            cmd runicorn_cmd builtin:hello -k gthread -w 1 --threads 4; P_LABEL="runicorn gthread builtin:hello"; P_CMD=("${CMD[@]}")
            cmd runicorn_cmd "$ABI_APP" -k gthread -w 1 --threads 4; R_LABEL="runicorn gthread ABI hello"; R_CMD=("${CMD[@]}") ;;
        *) die "unknown scenario '$1' (known: sync gthread green async abi)" ;;
    esac
}

median() { tr ' ' '\n' | grep -v '^?*$' | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "?"; else if (NR % 2) print v[(NR + 1) / 2]; else { m = (v[NR / 2] + v[NR / 2 + 1]) / 2; if (m == int(m)) print m; else printf "%.2f\n", m } }'; }

summary=()
for sc in "${SCENARIOS[@]}"; do
    scenario "$sc"
    table_head "rounds: $sc, $ROUNDS interleaved rounds, $CONNS connections"
    p_rps="" p_p99="" p_cpu="" r_rps="" r_p99="" r_cpu=""
    for i in $(seq 1 "$ROUNDS"); do
        for who in $( [ $((i % 2)) -eq 1 ] && echo "P R" || echo "R P"); do
            if [ "$who" = P ]; then
                bench_case "r$i $P_LABEL" "$CONNS" "$SPATH" "$WARGS" -- "${P_CMD[@]}"
                p_rps+=" $LAST_RPS" p_p99+=" $LAST_P99" p_cpu+=" $LAST_CPU"
            else
                bench_case "r$i $R_LABEL" "$CONNS" "$SPATH" "$WARGS" -- "${R_CMD[@]}"
                r_rps+=" $LAST_RPS" r_p99+=" $LAST_P99" r_cpu+=" $LAST_CPU"
            fi
        done
    done
    pm="$(median <<<"$p_rps")" rm_="$(median <<<"$r_rps")"
    summary+=("| $sc | $P_LABEL | $pm | $(median <<<"$p_p99") | $(median <<<"$p_cpu") | |")
    summary+=("| $sc | $R_LABEL | $rm_ | $(median <<<"$r_p99") | $(median <<<"$r_cpu") | $(ratio "$rm_" "$pm")× peer |")
done

out <<EOF

### rounds: medians over $ROUNDS rounds

| scenario | server | median req/s | median p99 ms | median CPU µs/req | runicorn / peer |
|---|---|---:|---:|---:|---|
EOF
printf '%s\n' "${summary[@]}" | out
log "bench: wrote $RESULT_FILE"
