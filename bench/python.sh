#!/usr/bin/env bash
# Issue 13 figures: Python WSGI apps under runicorn's four worker classes
# against Gunicorn (sync, gthread, gevent) and Granian's WSGI mode, the same
# app files (bench/python/) for all, one worker, server on CPU 0, wrk on CPU 1:
#
#   hello  wsgi_hello:app (a plain `def app(environ, start_response)`), 64 conns
#   flask  flask_app:app `/` (a Flask hello), 64 conns; then the worker RSS
#   wait   flask_app:app `/wait` (a Flask view waiting 50 ms on a socket),
#          64 conns: 8 threads everywhere, so the thread-bound limit is
#          8 / 0.05 s = 160 req/s; gevent's limit is the 64 connections,
#          64 / 0.05 s = 1,280 req/s; a sync worker's is 20 req/s
#
# Sync classes (runicorn sync, gunicorn sync) close every connection after
# its response: their rows send `Connection: close` on 64 connections.
# Every case runs ROUNDS short rounds, the cases interleaved and their order
# rotated each round; the tables give the medians (and every round, below).
#
# Usage: bench/python.sh [ROUNDS]   (default $BENCH_ROUNDS or 5)
# Knobs: BENCH_DURATION (s measured per round, default 5), BENCH_WARMUP
# (default 1), PY_SCENARIOS (default "hello flask wait"), PY_SERVERS (a
# regex on the labels, default all), PY_VENV (default bench/.venv-python,
# made from bench/python/requirements.txt when missing), RUNICORN (a binary
# with librunicorn_python.so next to it; default: built in release).
# Short rounds: 5 s measured after 1 s of warm-up unless told otherwise.
BENCH_DURATION="${BENCH_DURATION:-5}"
BENCH_WARMUP="${BENCH_WARMUP:-1}"
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROUNDS="${1:-${BENCH_ROUNDS:-5}}"
SCENARIOS="${PY_SCENARIOS:-hello flask wait}"
SERVERS_RE="${PY_SERVERS:-.}"
APPS_DIR="$BENCH_DIR/python"
PY_VENV="${PY_VENV:-$BENCH_DIR/.venv-python}"
THREADS=8
WAIT_S=0.05

# ---- setup ---------------------------------------------------------------

# The venv: pinned packages from PyPI, for the same Python the plugin links.
if [ ! -x "$PY_VENV/bin/granian" ] || [ ! -x "$PY_VENV/bin/gunicorn" ]; then
    log "bench: creating $PY_VENV from bench/python/requirements.txt"
    python3 -m venv "$PY_VENV"
    "$PY_VENV/bin/pip" install -q --upgrade pip
    "$PY_VENV/bin/pip" install -q -r "$APPS_DIR/requirements.txt"
fi
# machine_header reads package versions from $VENV.
VENV="$PY_VENV"

require_tools
raise_nofile 20000
if [ -n "${RUNICORN:-}" ]; then
    RUNICORN_PATH="$RUNICORN"
else
    target="${CARGO_TARGET_DIR:-$ROOT_DIR/target}"
    (cd "$ROOT_DIR" && cargo build --release -q -p runicorn-cli -p runicorn-python) >&2 ||
        die "cargo build --release -p runicorn-cli -p runicorn-python failed"
    RUNICORN_PATH="$target/release/runicorn"
fi
[ -f "$(dirname "$RUNICORN_PATH")/librunicorn_python.so" ] ||
    die "no librunicorn_python.so next to $RUNICORN_PATH (build -p runicorn-python)"

begin_result python
out <<EOF
- python apps: $("$PY_VENV/bin/python" --version 2>&1 | awk '{ print $2 }'); flask $(pkg_version flask), werkzeug $(pkg_version werkzeug), gunicorn $(pkg_version gunicorn), gevent $(pkg_version gevent), granian $(pkg_version granian) (bench/python/requirements.txt)
- rounds: $ROUNDS per case, cases interleaved, order rotated each round; figures are medians
EOF

# ---- cases ---------------------------------------------------------------
# One case per line: SCENARIO|LABEL|LIMIT|WRK_ARGS|COMMAND (words split on
# spaces; @APP@ is the app spec, @PORT@ the port). LIMIT: the thread- or
# connection-bound req/s for the wait scenario ("-" otherwise).

G="$PY_VENV/bin/gunicorn --chdir $APPS_DIR -b 127.0.0.1:@PORT@ --log-level warning -w 1"
GR="$PY_VENV/bin/granian --interface wsgi --working-dir $APPS_DIR --host 127.0.0.1 --port @PORT@ --log-level warning --workers 1"
R="$RUNICORN_PATH -b 127.0.0.1:@PORT@ --log-level warning --pythonpath $APPS_DIR -w 1"
CLOSE="-H Connection:close"

sync_limit="$(awk -v t="$WAIT_S" 'BEGIN { printf "%d", 1 / t }')"
thread_limit="$(awk -v n="$THREADS" -v t="$WAIT_S" 'BEGIN { printf "%d", n / t }')"
conn_limit="$(awk -v n=64 -v t="$WAIT_S" 'BEGIN { printf "%d", n / t }')"

servers() { # servers SCENARIO: the case lines of one scenario
    local s="$1" sl="-" tl="-" cl="-"
    if [ "$s" = wait ]; then sl="$sync_limit" tl="$thread_limit" cl="$conn_limit"; fi
    cat <<EOF
$s|gunicorn sync|$sl|$CLOSE|$G -k sync @APP@
$s|gunicorn gthread --threads $THREADS|$tl||$G -k gthread --threads $THREADS @APP@
$s|gunicorn gevent|$cl||$G -k gevent --worker-connections 1000 @APP@
$s|granian wsgi --blocking-threads $THREADS|$tl||$GR --blocking-threads $THREADS @APP@
$s|runicorn sync|$sl|$CLOSE|$R -k sync @APP@
$s|runicorn gthread --threads $THREADS|$tl||$R -k gthread --threads $THREADS @APP@
$s|runicorn green --blocking-threads $THREADS|$tl||$R -k green --blocking-threads $THREADS @APP@
$s|runicorn async --blocking-threads $THREADS|$tl||$R -k async --blocking-threads $THREADS @APP@
EOF
}

app_of() { case "$1" in hello) echo wsgi_hello:app ;; *) echo flask_app:app ;; esac; }
path_of() { case "$1" in wait) echo /wait ;; *) echo / ;; esac; }
title_of() {
    case "$1" in
        hello) echo "plain WSGI hello (wsgi_hello:app), 64 connections" ;;
        flask) echo "Flask hello (flask_app:app /), 64 connections" ;;
        wait) echo "Flask view waiting 50 ms on a socket (flask_app:app /wait), 64 connections; limit = concurrency / 0.05 s" ;;
    esac
}

CASES=()
for s in $SCENARIOS; do
    while IFS= read -r line; do
        label="$(cut -d'|' -f2 <<<"$line")"
        [[ "$label" =~ $SERVERS_RE ]] && CASES+=("$line")
    done < <(servers "$s")
done
[ "${#CASES[@]}" -gt 0 ] || die "no case matches PY_SCENARIOS='$SCENARIOS' PY_SERVERS='$SERVERS_RE'"

# Python servers need the venv on the path of the app and the interpreter.
export VIRTUAL_ENV="$PY_VENV"
export PATH="$PY_VENV/bin:$PATH"

# ---- rounds --------------------------------------------------------------

declare -A RPS P99 CPU ERRS RSS_M RSS_W
n="${#CASES[@]}"
out <<EOF

### every round

| round | scenario | server | req/s | p99 ms | CPU µs/req | wrk CPU % | errors | master / worker RSS KiB |
|---:|---|---|---:|---:|---:|---:|---:|---|
EOF
for r in $(seq 1 "$ROUNDS"); do
    for k in $(seq 0 $((n - 1))); do
        i=$(((k + r - 1) % n))
        IFS='|' read -r scen label limit wargs cmdline <<<"${CASES[$i]}"
        cmdline="${cmdline//@APP@/$(app_of "$scen")}"
        path="$(path_of "$scen")"
        # shellcheck disable=SC2206 # the command line is split on spaces
        words=($cmdline)
        if ! start_case "$label" "$path" "${words[@]}"; then
            printf '| %s | %s | %s | FAILED | | | | | |\n' "$r" "$scen" "$label" | out
            continue
        fi
        # shellcheck disable=SC2086
        [ "$BENCH_WARMUP" = 0 ] || run_wrk 64 "$BENCH_WARMUP" "http://127.0.0.1:$PORT$path" $wargs
        if [ "$limit" != - ]; then
            # The warm-up's connections left queued requests behind (64 at
            # a sync worker's 20/s are 3.2 s of work): let them drain, or
            # the measured run would count the server serving them.
            sleep "$(awk -v n=64 -v l="$limit" 'BEGIN { printf "%.1f", n / l + 0.5 }')"
        fi
        # shellcheck disable=SC2086
        BENCH_WARMUP=0 measure 64 "http://127.0.0.1:$PORT$path" $wargs
        rss="-"
        if [ "$scen" = flask ]; then
            settle
            read -r rss_m rss_w <<<"$(server_rss)"
            RSS_M[$i]+=" $rss_m" RSS_W[$i]+=" ${rss_w%%/*}"
            rss="$rss_m / $rss_w"
        fi
        stop_server
        RPS[$i]+=" $WRK_RPS" P99[$i]+=" $WRK_P99_MS" CPU[$i]+=" $CPU_US_PER_REQ"
        ERRS[$i]=$((${ERRS[$i]:-0} + WRK_ERRS))
        printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$r" "$scen" "$label" \
            "$WRK_RPS" "$WRK_P99_MS" "$CPU_US_PER_REQ" "$WRK_CPU" "$WRK_ERRS" "$rss" | out
    done
done

# ---- medians -------------------------------------------------------------

median() { tr ' ' '\n' | grep -v '^?*$' | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "?"; else if (NR % 2) print v[(NR + 1) / 2]; else { m = (v[NR / 2] + v[NR / 2 + 1]) / 2; if (m == int(m)) print m; else printf "%.1f\n", m } }'; }

{
    for s in $SCENARIOS; do
        printf '\n### %s: medians over %s rounds\n\n' "$(title_of "$s")" "$ROUNDS"
        printf '| server | req/s | p99 ms | CPU µs/req | errors | note |\n|---|---:|---:|---:|---:|---|\n'
        g_rps="" g_cpu=""
        for i in $(seq 0 $((n - 1))); do
            IFS='|' read -r scen label limit wargs _ <<<"${CASES[$i]}"
            [ "$scen" = "$s" ] || continue
            rps="$(median <<<"${RPS[$i]:-}")" cpu="$(median <<<"${CPU[$i]:-}")"
            case "$label" in granian*) g_rps="$rps" g_cpu="$cpu" ;; esac
            notes=()
            [ -z "$wargs" ] || notes+=("closes every connection (sync class)")
            if [ "$limit" != - ]; then
                notes+=("$(awk -v a="$rps" -v b="$limit" 'BEGIN { printf "%.1f", 100 * a / b }')% of the limit $limit/s")
            fi
            if [[ "$label" == runicorn* ]] && [ -n "$g_rps" ]; then
                notes+=("$(ratio "$rps" "$g_rps")× granian req/s, $(ratio "$cpu" "$g_cpu")× granian CPU/req")
            fi
            printf '| %s | %s | %s | %s | %s | %s |\n' "$label" "$rps" "$(median <<<"${P99[$i]:-}")" "$cpu" \
                "${ERRS[$i]:-?}" "$(IFS=';'; printf '%s' "${notes[*]+"${notes[*]}"}" | sed 's/;/; /g')"
        done
        if [ "$s" = flask ]; then
            printf '\n### worker RSS with the Flask app loaded, after the Flask hello run (medians, KiB)\n\n'
            printf '| server | master RSS KiB | worker RSS KiB |\n|---|---:|---:|\n'
            for i in $(seq 0 $((n - 1))); do
                IFS='|' read -r scen label _ <<<"${CASES[$i]}"
                [ "$scen" = flask ] || continue
                printf '| %s | %s | %s |\n' "$label" "$(median <<<"${RSS_M[$i]:-}")" "$(median <<<"${RSS_W[$i]:-}")"
            done
        fi
    done
    printf '\nload average at the end: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
} | out
log "bench: wrote $RESULT_FILE"
