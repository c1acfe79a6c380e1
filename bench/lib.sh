# shellcheck shell=bash
# Shared functions for the benchmark scripts. Source it; do not run it.
#
# Model: the server under test runs pinned to CPU 0 (taskset -c 0) in its own
# session/process group; wrk runs pinned to CPU 1 with one thread. Every port
# is picked at run time and checked free with `ss`; everything is 127.0.0.1.
# CPU per request = (utime+stime of every process in the server's tree, plus
# the cutime+cstime the tree reaped, sampled before and after the measured
# run) / requests wrk counted. Every server started is killed (its whole
# process group) on exit, even on error or Ctrl-C.
#
# Knobs (environment): BENCH_DURATION (s, default 10), BENCH_WARMUP (s, default 2),
# RUNICORN (path to the binary; default built with cargo in release).

set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT_DIR="$(cd "$BENCH_DIR/.." && pwd)"
PEERS_DIR="$BENCH_DIR/peers"
RESULTS_DIR="$BENCH_DIR/results"
VENV="$BENCH_DIR/.venv"
BENCH_DURATION="${BENCH_DURATION:-10}"
BENCH_WARMUP="${BENCH_WARMUP:-2}"
CLK_TCK="$(getconf CLK_TCK)"
NGINX_BIN="$(command -v nginx || echo /usr/sbin/nginx)"
HYPER_PEER="$PEERS_DIR/async-hyper-hello/target/release/async-hyper-hello"
MAY_PEER="$PEERS_DIR/may-minihttp-hello/target/release/may-minihttp-hello"

# pgids of servers still running, killed by bench_cleanup.
BENCH_PGIDS=()
BENCH_TMP="$(mktemp -d "${TMPDIR:-/tmp}/runicorn-bench.XXXXXX")"

log() { printf '%s\n' "$*" >&2; }
die() { log "bench: $*"; exit 1; }

bench_cleanup() {
    local pg
    for pg in "${BENCH_PGIDS[@]+"${BENCH_PGIDS[@]}"}"; do
        kill -KILL -- "-$pg" 2>/dev/null || true
    done
    BENCH_PGIDS=()
    rm -rf "$BENCH_TMP"
}
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

# Raise the fd limit to what the big-connection runs need (wrk, servers and
# the idle holder inherit it).
raise_nofile() {
    local want="${1:-20000}" hard
    hard="$(ulimit -Hn)"
    [ "$hard" = unlimited ] || [ "$hard" -ge "$want" ] || want="$hard"
    ulimit -n "$want"
}

require_tools() {
    local t
    for t in wrk taskset ss setsid ps python3; do
        command -v "$t" >/dev/null 2>&1 || die "$t not found: run bench/setup.sh"
    done
    [ "$(nproc)" -ge 2 ] || die "need 2 CPUs (server on CPU 0, wrk on CPU 1); this machine has $(nproc)"
}

# The runicorn binary: $RUNICORN, else built in release into $CARGO_TARGET_DIR
# (or target/). Built once per run.
runicorn_bin() {
    if [ -n "${RUNICORN:-}" ]; then printf '%s\n' "$RUNICORN"; return; fi
    local target="${CARGO_TARGET_DIR:-$ROOT_DIR/target}"
    if [ -z "${RUNICORN_BUILT:-}" ]; then
        (cd "$ROOT_DIR" && cargo build --release -q -p runicorn-cli) >&2 ||
            die "cargo build --release -p runicorn-cli failed"
        RUNICORN_BUILT=1
    fi
    [ -x "$target/release/runicorn" ] || die "no binary at $target/release/runicorn"
    printf '%s\n' "$target/release/runicorn"
}

# A TCP port nobody listens on, outside the ephemeral range (so wrk's own
# client ports never collide with it).
free_port() {
    local port
    for _ in $(seq 1 200); do
        port=$((20000 + RANDOM % 12000))
        if [ -z "$(ss -Htanl "sport = :$port")" ] && [ -z "$(ss -Htan "sport = :$port")" ]; then
            printf '%s\n' "$port"; return
        fi
    done
    die "no free port found"
}

# start_server NAME CMD... : runs CMD pinned to CPU 0 in a new session (so its
# pid is the process group id), output in $BENCH_TMP/NAME.log. Sets SERVER_PID.
start_server() {
    local name="$1"; shift
    setsid taskset -c 0 "$@" >"$BENCH_TMP/$name.log" 2>&1 </dev/null &
    SERVER_PID=$!
    BENCH_PGIDS+=("$SERVER_PID")
    SERVER_NAME="$name"
}

# stop_server: TERM the process group, wait up to 10 s, then KILL.
stop_server() {
    local pg="$SERVER_PID"
    kill -TERM -- "-$pg" 2>/dev/null || true
    for _ in $(seq 1 100); do
        kill -0 -- "-$pg" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL -- "-$pg" 2>/dev/null || true
    wait "$pg" 2>/dev/null || true
    forget_pgid "$pg"
}

forget_pgid() {
    local keep=() p
    for p in "${BENCH_PGIDS[@]+"${BENCH_PGIDS[@]}"}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    BENCH_PGIDS=("${keep[@]+"${keep[@]}"}")
}

# http_ok PORT PATH: one GET answered with a 2xx status line?
http_ok() {
    # shellcheck disable=SC2016 # the inner script expands its own $1 and $2
    timeout 2 bash -c '
        exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        printf "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" "$2" >&3
        IFS= read -r line <&3 || exit 1
        case "$line" in "HTTP/1."?" 2"*) exit 0;; *) exit 1;; esac
    ' _ "$1" "$2" 2>/dev/null
}

# wait_ready PORT PATH [SECONDS]: until the server answers 2xx (deadline 30 s).
# Returns 1 (with the server log's tail on stderr) if it exits or never answers.
wait_ready() {
    local port="$1" path="$2" secs="${3:-30}" end
    end=$((SECONDS + secs))
    while ! http_ok "$port" "$path"; do
        if ! kill -0 "$SERVER_PID" 2>/dev/null || [ "$SECONDS" -ge "$end" ]; then
            log "bench: $SERVER_NAME is not serving on :$port; its log ends with:"
            tail -5 "$BENCH_TMP/$SERVER_NAME.log" | sed 's/^/    /' >&2
            return 1
        fi
        sleep 0.05
    done
}

# tree_pids PID: PID and all its descendants (from `ps`, which copes with
# processes that exit while it reads /proc).
tree_pids() {
    ps -e -o pid=,ppid= | awk -v root="$1" '
        { parent[$1] = $2 }
        END {
            if (!(root in parent)) exit
            keep[root] = 1; changed = 1
            while (changed) { changed = 0
                for (p in parent) if (!(p in keep) && (parent[p] in keep)) { keep[p] = 1; changed = 1 } }
            for (p in keep) print p
        }' | sort -n
}

# tree_ticks PID: utime+stime over the tree, plus cutime+cstime of the tree's
# members (children they reaped), in clock ticks.
tree_ticks() {
    local total=0 p line rest
    for p in $(tree_pids "$1"); do
        line="$(cat "/proc/$p/stat" 2>/dev/null)" || continue
        rest="${line##*) }"
        # shellcheck disable=SC2086
        set -- $rest
        total=$((total + ${12} + ${13} + ${14} + ${15}))
    done
    printf '%s\n' "$total"
}

# rss_kib PID: VmRSS in KiB (0 when gone).
rss_kib() { awk '/^VmRSS:/ { print $2; found = 1 } END { if (!found) print 0 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# server_rss: "MASTER_KIB WORKER_KIB..." of the current server: the session
# leader is the master (taskset execs into it); the workers are its children.
# A single-process server reports its RSS as master and "-" as worker.
server_rss() {
    local master="$SERVER_PID" workers=() p
    for p in $(tree_pids "$master"); do [ "$p" = "$master" ] || workers+=("$(rss_kib "$p")"); done
    if [ "${#workers[@]}" -eq 0 ]; then printf '%s -\n' "$(rss_kib "$master")"
    else printf '%s %s\n' "$(rss_kib "$master")" "$(IFS=/; echo "${workers[*]}")"; fi
}

# established PORT: client connections the server has open on PORT now.
established() { ss -Htn state established "sport = :$1" | wc -l; }

# run_wrk CONNS SECONDS URL [wrk args...]: sets WRK_RPS, WRK_P99_MS, WRK_REQS,
# WRK_ERRS (socket errors + non-2xx), WRK_CPU (wrk's own CPU, % of its one
# core: near 100 means the load generator, not the server, is the limit),
# WRK_OUT (raw output).
run_wrk() {
    local conns="$1" secs="$2" url="$3"; shift 3
    # `times` in the same subshell prints wrk's user and system time last;
    # the line before it is the wall time wrk ran, in nanoseconds.
    WRK_OUT="$(t0="$(date +%s%N)" && taskset -c 1 wrk -t1 -c"$conns" -d"${secs}s" --timeout 10s --latency \
        "$@" "$url" 2>&1 && echo "wall_ns $(($(date +%s%N) - t0))" && times)" || die "wrk failed: $WRK_OUT"
    WRK_CPU="$(awk '
        $1 == "wall_ns" { wall = $2 / 1e9; getline; getline
            for (i = 1; i <= 2; i++) { split($i, p, "m"); sub(/s$/, "", p[2]); t += p[1] * 60 + p[2] } }
        END { if (wall > 0) printf "%.0f", 100 * t / wall; else print "?" }' <<<"$WRK_OUT")"
    WRK_RPS="$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' <<<"$WRK_OUT")"
    WRK_REQS="$(awk '/ requests in / { print $1 }' <<<"$WRK_OUT")"
    WRK_P99_MS="$(awk '$1 == "99%" {
        v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
        if (u == "us") v /= 1000; else if (u == "s") v *= 1000; else if (u == "m") v *= 60000
        printf "%.2f", v }' <<<"$WRK_OUT")"
    WRK_ERRS="$(awk '
        /Socket errors:/ { gsub(/,/, ""); e += $4 + $6 + $8 + $10 }
        /Non-2xx or 3xx/ { e += $NF }
        END { print e + 0 }' <<<"$WRK_OUT")"
    : "${WRK_RPS:=0}" "${WRK_REQS:=0}" "${WRK_P99_MS:=?}"
}

# measure CONNS URL [wrk args...]: warm up, then one measured wrk run with the
# server's CPU sampled around it. Sets the WRK_* values and CPU_US_PER_REQ.
measure() {
    local conns="$1" url="$2"; shift 2
    [ "$BENCH_WARMUP" = 0 ] || run_wrk "$conns" "$BENCH_WARMUP" "$url" "$@"
    local before after
    before="$(tree_ticks "$SERVER_PID")"
    run_wrk "$conns" "$BENCH_DURATION" "$url" "$@"
    after="$(tree_ticks "$SERVER_PID")"
    if [ "${WRK_REQS:-0}" -gt 0 ]; then
        CPU_US_PER_REQ="$(awk -v t=$((after - before)) -v hz="$CLK_TCK" -v n="$WRK_REQS" 'BEGIN { printf "%.1f", t * 1e6 / hz / n }')"
    else
        CPU_US_PER_REQ="?"
    fi
}

# start_case LABEL PATH CMD... : start CMD (every @PORT@ in it replaced by a
# free port) and wait until PATH answers. Sets PORT. Returns 1 if it never
# serves (the server is stopped then).
start_case() {
    local label="$1" path="$2"; shift 2
    local args=() a
    PORT="$(free_port)"
    for a in "$@"; do args+=("${a//@PORT@/$PORT}"); done
    start_server "$(printf '%s' "$label" | tr -c 'a-zA-Z0-9_-' _)" "${args[@]}"
    wait_ready "$PORT" "$path" || { stop_server; return 1; }
}

# bench_case LABEL CONNS PATH WRK_ARGS -- CMD... : start CMD, measure, stop;
# print a table row. WRK_ARGS is one string of extra wrk arguments (split on
# spaces; may be empty). The last column is built from optional variables:
# VS="name=rps ..." (ratios to peers), LITTLE=N (share of the Little's-law
# limit N req/s), GOAL="text". Sets LAST_RPS, LAST_P99, LAST_CPU ("0"/"?"
# when the server failed to start).
bench_case() {
    local label="$1" conns="$2" path="$3" wrk_args="$4"; shift 4
    [ "$1" = -- ] && shift
    if ! start_case "$label" "$path" "$@"; then
        LAST_RPS=0 LAST_P99="?" LAST_CPU="?"
        row "$label" "$conns" "-" "-" "-" "-" "-" "FAILED: did not serve $path (log tail on stderr)"
        return 0
    fi
    # shellcheck disable=SC2086
    measure "$conns" "http://127.0.0.1:$PORT$path" $wrk_args
    stop_server
    # shellcheck disable=SC2034 # read by the scripts
    LAST_RPS="$WRK_RPS" LAST_P99="$WRK_P99_MS" LAST_CPU="$CPU_US_PER_REQ"
    row "$label" "$conns" "$WRK_RPS" "$WRK_P99_MS" "$CPU_US_PER_REQ" "$WRK_CPU" "$WRK_ERRS" "$(note "$WRK_RPS")"
}

# note RPS: the last column from VS, LITTLE and GOAL (see bench_case).
note() {
    local rps="$1" parts=() v
    for v in ${VS:-}; do parts+=("$(ratio "$rps" "${v#*=}")× ${v%%=*}"); done
    [ -z "${LITTLE:-}" ] || parts+=("$(awk -v a="$rps" -v b="$LITTLE" 'BEGIN { printf "%.1f", 100 * a / b }')% of Little's law ($LITTLE/s)")
    [ -z "${GOAL:-}" ] || parts+=("goal: $GOAL")
    local IFS=';'
    printf '%s' "${parts[*]+"${parts[*]}"}" | sed 's/;/; /g'
}

# settle: give a just-started or just-loaded server a moment before an RSS
# reading (a measurement pause, not synchronisation).
settle() { sleep "${BENCH_SETTLE:-1}"; }

# mem_case LABEL N PATH -- CMD... : RSS of master and workers when idle, then
# (N > 0) while idle_conns.py holds N idle keep-alive connections. Two rows.
mem_case() {
    local label="$1" n="$2" path="$3"; shift 3
    [ "$1" = -- ] && shift
    if ! start_case "$label" "$path" "$@"; then
        mem_row "$label" "FAILED: did not serve $path" "-" "-" "-"
        return 0
    fi
    settle
    # shellcheck disable=SC2046
    mem_row "$label" "idle" "$(established "$PORT")" $(server_rss)
    if [ "$n" -gt 0 ]; then
        local out="$BENCH_TMP/holder.out" end holder line=""
        : >"$out"
        setsid taskset -c 1 python3 "$BENCH_DIR/idle_conns.py" 127.0.0.1 "$PORT" "$n" "$path" >"$out" 2>&1 </dev/null &
        holder=$!
        BENCH_PGIDS+=("$holder")
        end=$((SECONDS + 150))
        while :; do
            line="$(grep -m1 '^ready' "$out" || true)"
            [ -z "$line" ] || break
            if ! kill -0 "$holder" 2>/dev/null || [ "$SECONDS" -ge "$end" ]; then
                line="holder failed: $(tail -1 "$out")"; break
            fi
            sleep 0.2
        done
        settle
        local conns rss
        conns="$(established "$PORT")"
        rss="$(server_rss)"
        kill -KILL -- "-$holder" 2>/dev/null || true
        wait "$holder" 2>/dev/null || true
        forget_pgid "$holder"
        # shellcheck disable=SC2086
        mem_row "$label" "$n idle keep-alive (${line#ready })" "$conns" $rss
    fi
    stop_server
}

# ---- output --------------------------------------------------------------

# begin_result NAME: opens bench/results/<UTC timestamp>-NAME.txt; everything
# printed with out() goes to stdout and to that file.
begin_result() {
    mkdir -p "$RESULTS_DIR"
    RESULT_FILE="$RESULTS_DIR/$(date -u +%Y%m%dT%H%M%SZ)-$1.txt"
    : >"$RESULT_FILE"
    machine_header | out
}

out() { tee -a "$RESULT_FILE"; }

table_head() {
    out <<EOF

### $1

| server | conns | req/s | p99 ms | CPU µs/req | wrk CPU % | errors | note |
|---|---:|---:|---:|---:|---:|---:|---|
EOF
}

row() { printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$@" | out; }

mem_head() {
    out <<EOF

### $1

| server | state | open conns | master RSS KiB | worker RSS KiB (each) |
|---|---|---:|---:|---|
EOF
}

mem_row() { printf '| %s | %s | %s | %s | %s |\n' "$@" | out; }

# ratio A B: A/B with two decimals ("?" when B is 0 or missing).
ratio() { awk -v a="${1:-0}" -v b="${2:-0}" 'BEGIN { if (b + 0 == 0) print "?"; else printf "%.2f", a / b }'; }

pkg_version() { "$VENV/bin/python" -c "import importlib.metadata as m; print(m.version('$1'))" 2>/dev/null || echo "absent"; }
lock_version() { awk -v n="$2" '$0 == "name = \"" n "\"" { getline; gsub(/version = |"/, ""); print; exit }' "$1" 2>/dev/null || echo "?"; }

machine_header() {
    local runicorn_v="not built"
    [ -z "${RUNICORN_PATH:-}" ] || runicorn_v="$("$RUNICORN_PATH" --version 2>/dev/null || echo "?")"
    cat <<EOF
# runicorn benchmark: $(basename "$RESULT_FILE" .txt)

- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')
- machine: $(nproc) CPUs, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
- kernel: $(uname -sr)
- rustc: $(rustc --version 2>/dev/null || echo "?")
- runicorn: $runicorn_v, commit $(git -C "$ROOT_DIR" rev-parse --short HEAD 2>/dev/null || echo "?")$(git -C "$ROOT_DIR" diff --quiet HEAD 2>/dev/null || echo " (dirty tree)")
- wrk: $(wrk -v 2>&1 | head -1 | awk '{ print $2 }'); nginx: $([ -x "$NGINX_BIN" ] && "$NGINX_BIN" -v 2>&1 | sed 's/.*nginx\///' || echo absent)
- python: $([ -x "$VENV/bin/python" ] && "$VENV/bin/python" --version 2>&1 | awk '{ print $2 }' || echo "absent (no bench/.venv)"); gunicorn $(pkg_version gunicorn), gevent $(pkg_version gevent), uvicorn $(pkg_version uvicorn), uvloop $(pkg_version uvloop), httptools $(pkg_version httptools)
- peers: hyper $(lock_version "$PEERS_DIR/async-hyper-hello/Cargo.lock" hyper), tokio $(lock_version "$PEERS_DIR/async-hyper-hello/Cargo.lock" tokio), may_minihttp $(lock_version "$PEERS_DIR/may-minihttp-hello/Cargo.lock" may_minihttp), may $(lock_version "$PEERS_DIR/may-minihttp-hello/Cargo.lock" may)
- method: server pinned to CPU 0, \`taskset -c 1 wrk -t1 -cN -d${BENCH_DURATION}s --latency\` after a ${BENCH_WARMUP}s warm-up; CPU µs/req = (utime+stime of the server's process tree) / requests; load average at start: $(cut -d' ' -f1-3 /proc/loadavg)
EOF
}

# ---- servers -------------------------------------------------------------
# Each *_cmd prints the command words for bench_case, one per line, with
# @PORT@ placeholders; `cmd FN ARGS...` reads them into the array CMD.

gunicorn_cmd() { # gunicorn_cmd APP [gunicorn flags...]
    local app="$1"; shift
    printf '%s\n' "$VENV/bin/gunicorn" --chdir "$PEERS_DIR" -b "127.0.0.1:@PORT@" --log-level warning "$@" "$app"
}

uvicorn_cmd() { # uvicorn_cmd APP [uvicorn flags...]
    local app="$1"; shift
    printf '%s\n' "$VENV/bin/uvicorn" --app-dir "$PEERS_DIR" --host 127.0.0.1 --port "@PORT@" \
        --log-level warning --no-access-log "$@" "$app"
}

runicorn_cmd() { # runicorn_cmd APP [runicorn flags...]
    local app="$1"; shift
    printf '%s\n' "$RUNICORN_PATH" -b "127.0.0.1:@PORT@" --log-level warning "$@" "$app"
}

nginx_cmd() { # nginx_cmd: nginx.conf.in filled for a fresh temp dir and the port
    printf '%s\n' bash "$BENCH_DIR/nginx-run.sh" "$BENCH_TMP/nginx.$RANDOM" "@PORT@"
}

hyper_cmd() { printf '%s\n' "$HYPER_PEER" "127.0.0.1:@PORT@"; }
may_cmd() { printf '%s\n' "$MAY_PEER" "127.0.0.1:@PORT@"; }

# shellcheck disable=SC2034 # CMD is read by the scripts
cmd() { mapfile -t CMD < <("$@"); }

# bench_init NAME: checks tools, builds/locates runicorn, raises the fd limit,
# opens the result file.
bench_init() {
    require_tools
    raise_nofile 20000
    if [ ! -x "$HYPER_PEER" ] || [ ! -x "$MAY_PEER" ] || [ ! -x "$VENV/bin/gunicorn" ]; then
        die "peers missing: run bench/setup.sh"
    fi
    if [ -n "${BENCH_NO_RUNICORN:-}" ]; then RUNICORN_PATH=""; else RUNICORN_PATH="$(runicorn_bin)"; fi
    begin_result "$1"
}

# have_runicorn: false when BENCH_NO_RUNICORN is set (peers-only smoke runs).
have_runicorn() { [ -n "${RUNICORN_PATH:-}" ]; }
