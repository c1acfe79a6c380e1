#!/usr/bin/env bash
# peer-cost.sh BEFORE AFTER [ROUNDS]: issue 12 part 4's figure. Two runicorn
# binaries (gthread -w 1 --threads 4, green -w 1, builtin:hello) and the
# peers they are judged against (hyper current_thread, may_minihttp) in the
# same run, at 64 keep-alive connections and at one; N rounds, the
# contenders' order rotated each round; medians of req/s, p99 and the
# server's CPU µs/request, and each runicorn row's CPU per request over its
# peer's (gthread's peer is hyper, green's may_minihttp). PEER_CONNS picks
# the connection counts (default "64 1"), PEER_CLASSES the runicorn classes
# (default "gthread green"; async is also known). Needs wrk and the two
# Rust peers built in release (bench/setup.sh, or cargo build --release in
# each of bench/peers/async-hyper-hello and bench/peers/may-minihttp-hello);
# not gunicorn.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
[ $# -ge 2 ] || die "usage: peer-cost.sh BEFORE_BINARY AFTER_BINARY [ROUNDS]"
BEFORE="$1" AFTER="$2"
ROUNDS="${3:-${BENCH_ROUNDS:-5}}"
read -r -a CONN_COUNTS <<<"${PEER_CONNS:-64 1}"
read -r -a CLASSES <<<"${PEER_CLASSES:-gthread green}"
for b in "$BEFORE" "$AFTER" "$HYPER_PEER" "$MAY_PEER"; do [ -x "$b" ] || die "not an executable: $b"; done
require_tools
raise_nofile 20000
RUNICORN_PATH="$AFTER"
begin_result peer-cost
out <<EOF
- before: $BEFORE ($(stat -c '%y' "$BEFORE" | cut -d. -f1))
- after: $AFTER ($(stat -c '%y' "$AFTER" | cut -d. -f1))
EOF

# contender KEY: sets LABEL and CMD.
contender() {
    local class="${1#*-}"
    case "$1" in
        hyper) LABEL="hyper current_thread"; cmd hyper_cmd ;;
        may) LABEL="may_minihttp"; cmd may_cmd ;;
        before-* | after-*)
            local bin="$BEFORE" flags=(-k "$class" -w 1)
            [ "${1%%-*}" = after ] && bin="$AFTER"
            [ "$class" = gthread ] && flags+=(--threads 4)
            LABEL="runicorn ${1%%-*} ${flags[*]}"
            RUNICORN_PATH="$bin" cmd runicorn_cmd builtin:hello "${flags[@]}" ;;
        *) die "unknown contender $1" ;;
    esac
}

# peer_of KEY: the peer a runicorn contender is judged against.
peer_of() {
    case "${1#*-}" in
        green) echo may ;;
        *) echo hyper ;;
    esac
}

median() { tr ' ' '\n' | grep -v '^?*$' | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "?"; else if (NR % 2) print v[(NR + 1) / 2]; else { m = (v[NR / 2] + v[NR / 2 + 1]) / 2; if (m == int(m)) print m; else printf "%.2f\n", m } }'; }

KEYS=(hyper may)
for class in "${CLASSES[@]}"; do KEYS+=("before-$class" "after-$class"); done

summary=()
for conns in "${CONN_COUNTS[@]}"; do
    table_head "$conns keep-alive connection(s), $ROUNDS rounds, order rotated each round"
    declare -A rps=() p99=() cpu=()
    for i in $(seq 1 "$ROUNDS"); do
        n="${#KEYS[@]}"
        for j in $(seq 0 $((n - 1))); do
            key="${KEYS[$(((i + j) % n))]}"
            contender "$key"
            bench_case "r$i $LABEL" "$conns" / "" -- "${CMD[@]}"
            rps[$key]+=" $LAST_RPS" p99[$key]+=" $LAST_P99" cpu[$key]+=" $LAST_CPU"
        done
    done
    for key in "${KEYS[@]}"; do
        contender "$key"
        c="$(median <<<"${cpu[$key]}")"
        vs=""
        case "$key" in
            before-* | after-*)
                peer="$(peer_of "$key")"
                vs="$(ratio "$c" "$(median <<<"${cpu[$peer]}")")× $peer" ;;
        esac
        summary+=("| $conns | $LABEL | $(median <<<"${rps[$key]}") | $(median <<<"${p99[$key]}") | $c | $vs |")
    done
    unset rps p99 cpu
done

out <<EOF

### medians over $ROUNDS rounds (${BENCH_DURATION}s each after ${BENCH_WARMUP}s warm-up); load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)

| conns | server | req/s | p99 ms | CPU µs/req | CPU/req over the peer's |
|---:|---|---:|---:|---:|---|
EOF
printf '%s\n' "${summary[@]}" | out
log "bench: wrote $RESULT_FILE"
