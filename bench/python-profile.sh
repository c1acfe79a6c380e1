#!/usr/bin/env bash
# python-profile.sh [APP] [CLASS] [N]: instructions per request of a Python
# app served by runicorn (one worker), counted by callgrind, which is stable
# on a noisy machine where wall-clock figures are not. Two runs under
# callgrind: one serving 300 requests, one serving 300 + N (default 2000),
# each on one keep-alive connection (bench/python/send_requests.py), with
# PYTHONHASHSEED=0; the worker's instruction count of the second minus the
# first, over N, is the cost of a request without start-up. Prints that and
# the functions it goes to (bench/python/cg_diff.py; INCLUSIVE=1 for
# inclusive costs). Defaults: wsgi_hello:app under gthread (--threads 8;
# green and async get --blocking-threads 8). PATH_INFO: REQ_PATH (default /).
# Needs valgrind and the bench venv (bench/python.sh makes it).
#
# The worker's dump uses callgrind's default file name: runicorn writes its
# process title over the argv area, where valgrind keeps its own options, so
# an explicit --callgrind-out-file would be lost by the time a worker exits.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
APP="${1:-wsgi_hello:app}"
CLASS="${2:-gthread}"
N="${3:-2000}"
WARM=300
REQ_PATH="${REQ_PATH:-/}"
PY_VENV="${PY_VENV:-$BENCH_DIR/.venv-python}"
command -v valgrind >/dev/null || die "valgrind not found (apt-get install valgrind)"
[ -x "$PY_VENV/bin/python" ] || die "no venv at $PY_VENV: run bench/python.sh once, or set PY_VENV"
if [ -n "${RUNICORN:-}" ]; then
    RUNICORN_PATH="$RUNICORN"
else
    (cd "$ROOT_DIR" && cargo build --release -q -p runicorn-cli -p runicorn-python) >&2 || die "build failed"
    RUNICORN_PATH="${CARGO_TARGET_DIR:-$ROOT_DIR/target}/release/runicorn"
fi
OUT_DIR="$(cd "${PROFILE_DIR:-${CARGO_TARGET_DIR:-$ROOT_DIR/target}}" && pwd)/callgrind"
extra=()
case "$CLASS" in
    gthread) extra=(--threads 8) ;;
    green | async) extra=(--blocking-threads 8) ;;
esac
export VIRTUAL_ENV="$PY_VENV" PYTHONHASHSEED=0

# profile_run COUNT: serve COUNT requests under callgrind; prints the
# worker's dump file.
profile_run() {
    local count="$1" dir="$OUT_DIR/run-$1" worker
    rm -rf "$dir" && mkdir -p "$dir"
    PORT="$(free_port)"
    (cd "$dir" && start_server "profile-$count" valgrind --tool=callgrind \
        "$RUNICORN_PATH" -b "127.0.0.1:$PORT" --log-level warning --timeout 600 --graceful-timeout 120 \
        --pythonpath "$BENCH_DIR/python" -w 1 -k "$CLASS" "${extra[@]}" "$APP"
        echo "$SERVER_PID" >"$dir/.pid")
    SERVER_PID="$(cat "$dir/.pid")" SERVER_NAME="profile-$count"
    BENCH_PGIDS+=("$SERVER_PID")
    wait_ready "$PORT" "$REQ_PATH" 240 || die "runicorn did not serve under valgrind"
    worker="$(tree_pids "$SERVER_PID" | grep -vx "$SERVER_PID" | head -1)"
    taskset -c 1 "$PY_VENV/bin/python" "$BENCH_DIR/python/send_requests.py" 127.0.0.1 "$PORT" "$((count - 1))" "$REQ_PATH" ||
        die "requests failed"
    stop_server
    [ -s "$dir/callgrind.out.$worker" ] || die "no dump for the worker ($dir/callgrind.out.$worker)"
    printf '%s\n' "$dir/callgrind.out.$worker"
}

total_ir() { awk '/^(summary|totals):/ { print $2; exit }' "$1"; }

a="$(profile_run "$WARM")"
b="$(profile_run "$((WARM + N))")"
printf '%s %s %s: %s instructions per request (worker, over %s requests)\n' "$APP" "$CLASS" "$REQ_PATH" \
    "$(awk -v a="$(total_ir "$a")" -v b="$(total_ir "$b")" -v n="$N" 'BEGIN { printf "%.0f", (b - a) / n }')" "$N"
python3 "$BENCH_DIR/python/cg_diff.py" "$a" "$b" "$N" "${PROFILE_TOP:-45}"
