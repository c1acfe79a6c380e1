#!/usr/bin/env bash
# ir-profile.sh BINARY [CLASS] [N] [CONNS]: where a worker's instructions per
# request go, for builtin:hello, counted by callgrind. Two runs of BINARY
# under callgrind (-w 1; gthread with --threads 4), serving 300 and 300 + N
# (default 2000) requests over CONNS keep-alive connections (default 1;
# bench/ir_client.py, each connection's requests one after the other, the
# connections in threads); the worker's instructions in the second run minus
# the first, over N, per function (self cost; INCLUSIVE=1 for inclusive),
# via bench/python/cg_diff.py. The same difference as ir.sh, broken down.
# Dumps are kept under $PROFILE_DIR (default target/callgrind-hello).
# PROFILE_FLAGS adds runicorn flags (split on spaces), e.g.
# PROFILE_FLAGS="--access-logfile /tmp/access.log" for the access log's share.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
[ $# -ge 1 ] || die "usage: ir-profile.sh BINARY [CLASS] [N] [CONNS]"
RUNICORN_PATH="$1"
CLASS="${2:-gthread}"
N="${3:-2000}"
CONNS="${4:-1}"
WARM=300
command -v valgrind >/dev/null || die "valgrind not found (apt-get install valgrind)"
[ -x "$RUNICORN_PATH" ] || die "not an executable: $RUNICORN_PATH"
OUT_DIR="$(mkdir -p "${PROFILE_DIR:-${CARGO_TARGET_DIR:-$ROOT_DIR/target}/callgrind-hello}" && cd "${PROFILE_DIR:-${CARGO_TARGET_DIR:-$ROOT_DIR/target}/callgrind-hello}" && pwd)"
flags=(-k "$CLASS" -w 1)
[ "$CLASS" = gthread ] && flags+=(--threads 4)
read -r -a extra_flags <<<"${PROFILE_FLAGS:-}"
flags+=("${extra_flags[@]}")

# profile_run COUNT: serve COUNT requests under callgrind; prints the
# worker's dump file (callgrind's default name: runicorn writes its process
# title over argv, where an explicit --callgrind-out-file would be lost).
profile_run() {
    local count="$1" dir="$OUT_DIR/run-$CLASS-$1" worker
    rm -rf "$dir" && mkdir -p "$dir"
    PORT="$(free_port)"
    (cd "$dir" && start_server "profile-$count" valgrind --tool=callgrind \
        "$RUNICORN_PATH" -b "127.0.0.1:$PORT" --log-level warning --timeout 600 "${flags[@]}" builtin:hello
        echo "$SERVER_PID" >"$dir/.pid")
    SERVER_PID="$(cat "$dir/.pid")" SERVER_NAME="profile-$count"
    BENCH_PGIDS+=("$SERVER_PID")
    # profile_run runs in a command substitution, a subshell that does not
    # inherit lib.sh's EXIT trap: without its own, a `die` below (valgrind
    # too slow to serve, requests lost) left the server running.
    trap 'kill -KILL -- "-$SERVER_PID" 2>/dev/null || true' EXIT
    wait_ready "$PORT" / 240 || die "runicorn did not serve under valgrind"
    worker="$(tree_pids "$SERVER_PID" | grep -vx "$SERVER_PID" | head -1)"
    # wait_ready's GET is one request: COUNT - 1 more.
    local ok
    ok="$(taskset -c 1 python3 "$BENCH_DIR/ir_client.py" 127.0.0.1 "$PORT" "$((count - 1))" keep "$CONNS")"
    [ "$ok" = "$((count - 1))" ] || die "only $ok of $((count - 1)) requests answered"
    kill -TERM -- "-$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 600); do kill -0 -- "-$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    stop_server
    [ -s "$dir/callgrind.out.$worker" ] || die "no dump for the worker ($dir/callgrind.out.$worker)"
    printf '%s\n' "$dir/callgrind.out.$worker"
}

total_ir() { awk '/^(summary|totals):/ { print $2; exit }' "$1"; }

a="$(profile_run "$WARM")"
b="$(profile_run "$((WARM + N))")"
printf '%s %s, %s connection(s): %s instructions per request (worker, over %s requests)\n' "$(basename "$RUNICORN_PATH")" \
    "$CLASS" "$CONNS" "$(awk -v a="$(total_ir "$a")" -v b="$(total_ir "$b")" -v n="$N" 'BEGIN { printf "%.0f", (b - a) / n }')" "$N"
python3 "$BENCH_DIR/python/cg_diff.py" "$a" "$b" "$N" "${PROFILE_TOP:-45}"
