#!/usr/bin/env bash
# benchmarks.sh: regenerates BENCHMARKS.md (issue 17's published results)
# from one run on this machine. Everything is measured by `runicorn bench`:
#
#   1. every worker class (sync, gthread, green, async) across the built-in
#      workloads hello, io, cpu, mixed, upload, stream:
#        runicorn bench --workload W -k sync,gthread,green,async \
#            --server-cpus 0 --client-cpus 1 --output json --plot W.svg
#   2. side by side in the same run, the peers on the same core (taskset -c 0,
#      started and stopped by lib.sh, whole process group killed on exit),
#      driven by the same generator on CPU 1:
#        runicorn bench --url URL --label NAME --server-pid PID --client-cpus 1
#      hello: nginx `return 200`, the minimal hyper server, may_minihttp,
#      Gunicorn sync / gthread / gevent (peers/wsgi_hello.py), uvicorn
#      (peers/asgi_hello.py), and runicorn serving the same WSGI app under
#      each class (`runicorn bench wsgi_hello:hello -k CLASS`);
#      io: the Python peers' sleep endpoints, the same wait as builtin:sleep;
#   3. bench/benchmarks_md.py turns the JSON reports (kept with the charts in
#      bench/results/benchmarks/) and environment.json into BENCHMARKS.md.
#
# Usage: bench/benchmarks.sh            (bench/setup.sh first: wrk, nginx, the
#                                       venv, the peers; then a release build)
# A full run takes about 40 minutes (172 points of 12 s, plus starts); run it
# on a quiet machine. The previous results are replaced only when it ends.
#
# Knobs (environment): BENCH_DURATION (s per point, default 10), BENCH_WARMUP
# (default 2), BENCH_CONNECTIONS (default 1,16,64,256), BENCH_WORKLOADS
# (default "hello io cpu mixed upload stream"), BENCH_PEERS (default every
# peer: "nginx hyper may_minihttp gunicorn-sync gunicorn-gthread
# gunicorn-gevent uvicorn runicorn-wsgi"), BENCH_TRIAL (a sentence: marks the
# document as a trial and says why, e.g. "2 s points on a busy machine"),
# BENCH_OUT (default bench/results/benchmarks), BENCHMARKS_MD (default
# BENCHMARKS.md at the root), BENCH_SKIP_SETUP=1 (do not run setup.sh),
# RUNICORN (a binary with librunicorn_python.so beside it; default: built in
# release with `cargo build --release -p runicorn-cli -p runicorn-python`).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CONNS="${BENCH_CONNECTIONS:-1,16,64,256}"
WORKLOADS="${BENCH_WORKLOADS:-hello io cpu mixed upload stream}"
PEERS="${BENCH_PEERS:-nginx hyper may_minihttp gunicorn-sync gunicorn-gthread gunicorn-gevent uvicorn runicorn-wsgi}"
CLASSES=(sync gthread green async)
OUT="${BENCH_OUT:-$RESULTS_DIR/benchmarks}"
MD="${BENCHMARKS_MD:-$ROOT_DIR/BENCHMARKS.md}"
# The threads of every thread-pooled server: gthread's pool, Gunicorn's
# gthread, and the blocking pool green and async run a Python app on.
THREADS=8
# The sleep peers' path when the io workload did not run (builtin:sleep's default).
IO_PATH_DEFAULT="/?ms=50"

# ---- setup -----------------------------------------------------------------

[ -n "${BENCH_SKIP_SETUP:-}" ] || bash "$BENCH_DIR/setup.sh" >&2 || die "bench/setup.sh failed"
require_tools
raise_nofile 20000
if [ -n "${RUNICORN:-}" ]; then
    RUNICORN_PATH="$RUNICORN"
else
    (cd "$ROOT_DIR" && cargo build --release -q -p runicorn-cli -p runicorn-python) >&2 ||
        die "cargo build --release -p runicorn-cli -p runicorn-python failed"
    RUNICORN_PATH="${CARGO_TARGET_DIR:-$ROOT_DIR/target}/release/runicorn"
fi
[ -x "$RUNICORN_PATH" ] || die "no runicorn binary at $RUNICORN_PATH"
"$RUNICORN_PATH" bench --help >/dev/null 2>&1 || die "$RUNICORN_PATH has no \`bench\` command"
RB=("$RUNICORN_PATH" bench)
# Python servers find the venv's packages (the WSGI app needs only the stdlib).
export VIRTUAL_ENV="$VENV"
export PATH="$VENV/bin:$PATH"

NEW="$OUT.new"
rm -rf "$NEW"
mkdir -p "$NEW"
FAILED=()

# The command that regenerates this, with the knobs given.
regen_command() {
    local knobs=() v
    for v in BENCH_DURATION BENCH_WARMUP BENCH_CONNECTIONS BENCH_WORKLOADS BENCH_PEERS BENCH_TRIAL; do
        [ -n "${!v:-}" ] || continue
        if [[ "${!v}" =~ ^[A-Za-z0-9_.,:/+-]+$ ]]; then knobs+=("$v=${!v}")
        elif [[ "${!v}" != *"'"* ]]; then knobs+=("$v='${!v}'")
        else knobs+=("$v=$(printf '%q' "${!v}")"); fi
    done
    printf '%s\n' "bench/setup.sh && ${knobs[*]+"${knobs[*]} "}bench/benchmarks.sh"
}

# environment.json: the machine, every version, the method, the command.
write_environment() {
    local nginx_v
    nginx_v="$("$NGINX_BIN" -v 2>&1 | sed 's/.*nginx\///')"
    ENV_DATE="$(date -u '+%Y-%m-%d %H:%M UTC')" \
    ENV_CPU="$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)" \
    ENV_CPUS="$(nproc)" \
    ENV_MEM_KIB="$(awk '/^MemTotal/ { print $2 }' /proc/meminfo)" \
    ENV_KERNEL="$(uname -sr)" \
    ENV_RUSTC="$(rustc --version 2>/dev/null || echo "?")" \
    ENV_PYTHON="$("$VENV/bin/python" --version 2>&1 | awk '{ print $2 }')" \
    ENV_RUNICORN="$("$RUNICORN_PATH" --version 2>/dev/null || echo "?")" \
    ENV_COMMIT="$(git -C "$ROOT_DIR" rev-parse --short HEAD 2>/dev/null || echo "?")$(git -C "$ROOT_DIR" diff --quiet HEAD -- . ':!BENCHMARKS.md' ':!bench/results' 2>/dev/null || echo " (dirty tree)")" \
    ENV_VERSIONS="nginx=$nginx_v;gunicorn=$(pkg_version gunicorn);gevent=$(pkg_version gevent);uvicorn=$(pkg_version uvicorn);uvloop=$(pkg_version uvloop);httptools=$(pkg_version httptools);hyper=$(lock_version "$PEERS_DIR/async-hyper-hello/Cargo.lock" hyper);tokio=$(lock_version "$PEERS_DIR/async-hyper-hello/Cargo.lock" tokio);may_minihttp=$(lock_version "$PEERS_DIR/may-minihttp-hello/Cargo.lock" may_minihttp);may=$(lock_version "$PEERS_DIR/may-minihttp-hello/Cargo.lock" may)" \
    ENV_LOAD="$(cut -d' ' -f1-3 /proc/loadavg)" \
    ENV_COMMAND="$(regen_command)" \
    ENV_DURATION="$BENCH_DURATION" ENV_WARMUP="$BENCH_WARMUP" ENV_CONNS="$CONNS" ENV_THREADS="$THREADS" \
    ENV_TRIAL="${BENCH_TRIAL:-}" \
        python3 - "$NEW/environment.json" <<'EOF'
import json, os, sys
e = os.environ
json.dump({
    "date": e["ENV_DATE"], "cpu_model": e["ENV_CPU"], "cpus": int(e["ENV_CPUS"]),
    "memory_kib": int(e["ENV_MEM_KIB"]), "kernel": e["ENV_KERNEL"], "rustc": e["ENV_RUSTC"],
    "python": e["ENV_PYTHON"], "runicorn": e["ENV_RUNICORN"], "commit": e["ENV_COMMIT"],
    "versions": dict(kv.split("=", 1) for kv in e["ENV_VERSIONS"].split(";")),
    "load_at_start": e["ENV_LOAD"], "command": e["ENV_COMMAND"],
    "duration_s": float(e["ENV_DURATION"]), "warmup_s": float(e["ENV_WARMUP"]),
    "connections": [int(c) for c in e["ENV_CONNS"].split(",")], "threads": int(e["ENV_THREADS"]),
    "trial": e["ENV_TRIAL"],
}, open(sys.argv[1], "w"), indent=2)
EOF
}

# fail WHAT WORKLOAD LABEL REASON: a point that could not be measured, kept
# as a report with one Failure (BENCHMARKS.md lists it).
fail() {
    local file="$1" workload="$2" label="$3" reason="$4"
    FAILED+=("$label ($workload): $reason")
    log "bench: $label ($workload): $reason"
    python3 -c 'import json, sys; json.dump({"runs": [], "failures": [{"workload": sys.argv[2], "class": sys.argv[3], "reason": sys.argv[4]}]}, open(sys.argv[1], "w"))' \
        "$file" "$workload" "$label" "$reason"
}

# bench_json FILE WORKLOAD LABEL ARGS...: `runicorn bench ARGS --output json`
# into FILE; a failure (exit 1: a class did not start) keeps what it printed.
bench_json() {
    local file="$1" workload="$2" label="$3"; shift 3
    local common=(-c "$CONNS" -d "${BENCH_DURATION}s" --warmup "${BENCH_WARMUP}s" --client-cpus 1 --output json)
    log "== $label: runicorn bench $*"
    if ! "${RB[@]}" "${common[@]}" "$@" >"$file" 2>"$file.err"; then
        if [ -s "$file" ] && python3 -c 'import json, sys; json.load(open(sys.argv[1]))' "$file" 2>/dev/null; then
            FAILED+=("$label ($workload): $(tail -1 "$file.err")")
        else
            fail "$file" "$workload" "$label" "runicorn bench failed: $(tail -1 "$file.err")"
        fi
    fi
    rm -f "$file.err"
}

# ---- 1. the worker classes on the built-in workloads ------------------------

write_environment
IO_PATH="$IO_PATH_DEFAULT"
for w in $WORKLOADS; do
    # Server arguments go after `--`; none: the built-in app's defaults.
    bench_json "$NEW/$w.json" "$w" "runicorn $w" --workload "$w" \
        -k "$(IFS=,; echo "${CLASSES[*]}")" --threads "$THREADS" --server-cpus 0 --plot "$NEW/$w.svg"
    if [ "$w" = io ]; then
        IO_PATH="$(python3 "$BENCH_DIR/benchmarks_md.py" request-path "$NEW/io.json" || echo "$IO_PATH_DEFAULT")"
    fi
done

# ---- 2. the peers, on the same cores, driven the same way --------------------

# peer_case WORKLOAD LABEL PATH CMD...: start CMD on CPU 0 (@PORT@ replaced),
# drive it with --url, stop it.
peer_case() {
    local workload="$1" label="$2" path="$3"; shift 3
    local file="$NEW/peer-$workload-$label.json"
    if ! start_case "$label" "$path" "$@"; then
        fail "$file" "$workload" "$label" "did not serve $path (its log is above)"
        return 0
    fi
    bench_json "$file" "$workload" "$label" --url "http://127.0.0.1:$PORT$path" \
        --label "$label" --server-pid "$SERVER_PID"
    stop_server
}

G=("$VENV/bin/gunicorn" --chdir "$PEERS_DIR" -b "127.0.0.1:@PORT@" --log-level warning -w 1)
U=("$VENV/bin/uvicorn" --app-dir "$PEERS_DIR" --host 127.0.0.1 --port "@PORT@" --log-level warning --no-access-log)

# peer_workload WORKLOAD PATH WSGI ASGI NATIVE: every peer of BENCH_PEERS
# that has this workload (NATIVE=1: the Rust servers and nginx, hello only).
peer_workload() {
    local w="$1" path="$2" wsgi="$3" asgi="$4" native="$5" p class extra
    for p in $PEERS; do
        case "$p" in
            nginx | hyper | may_minihttp) [ "$native" = 1 ] || continue ;;
        esac
        case "$p" in
            nginx) cmd nginx_cmd; peer_case "$w" nginx "$path" "${CMD[@]}" ;;
            hyper) cmd hyper_cmd; peer_case "$w" hyper "$path" "${CMD[@]}" ;;
            may_minihttp) cmd may_cmd; peer_case "$w" may_minihttp "$path" "${CMD[@]}" ;;
            gunicorn-sync) peer_case "$w" gunicorn-sync "$path" "${G[@]}" -k sync "$wsgi" ;;
            gunicorn-gthread) peer_case "$w" gunicorn-gthread "$path" "${G[@]}" -k gthread --threads "$THREADS" "$wsgi" ;;
            gunicorn-gevent) peer_case "$w" gunicorn-gevent "$path" "${G[@]}" -k gevent --worker-connections 1000 "$wsgi" ;;
            uvicorn) peer_case "$w" uvicorn "$path" "${U[@]}" "$asgi" ;;
            runicorn-wsgi)
                if [ ! -f "$(dirname "$RUNICORN_PATH")/librunicorn_python.so" ]; then
                    fail "$NEW/wsgi-$w-missing.json" "$w" runicorn-wsgi "no librunicorn_python.so next to $RUNICORN_PATH"
                    continue
                fi
                for class in "${CLASSES[@]}"; do
                    # The same thread count as Gunicorn's gthread: green and
                    # async run a Python app on their blocking pool.
                    extra=()
                    case "$class" in green | async) extra=(--blocking-threads "$THREADS") ;; esac
                    bench_json "$NEW/wsgi-$w-$class.json" "$w" "runicorn-wsgi $class" "$wsgi" \
                        -k "$class" --threads "$THREADS" --server-cpus 0 --path "$path" \
                        -- --chdir "$PEERS_DIR" "${extra[@]+"${extra[@]}"}"
                done
                ;;
            *) die "unknown peer $p in BENCH_PEERS" ;;
        esac
    done
}

for w in $WORKLOADS; do
    case "$w" in
        hello) peer_workload hello / wsgi_hello:hello asgi_hello:hello 1 ;;
        io) peer_workload io "$IO_PATH" wsgi_hello:sleep asgi_hello:sleep 0 ;;
    esac
done

# ---- 3. the comparison charts and the document -------------------------------

# One chart per comparison table (runicorn bench's own charts of W.json are
# the classes alone): the rows merged into one report, plotted by --from.
for chart in hello-native hello-python io-python; do
    w="${chart%-*}" group="${chart#*-}"
    # Nothing to compare when no peer of the table ran.
    compgen -G "$NEW/peer-$w-*.json" >/dev/null || compgen -G "$NEW/wsgi-$w-*.json" >/dev/null || continue
    if python3 "$BENCH_DIR/benchmarks_md.py" merge "$NEW" "$w" "$group" >"$NEW/$chart.report"; then
        "${RB[@]}" --from "$NEW/$chart.report" --output json --plot "$NEW/$chart.svg" >/dev/null ||
            FAILED+=("chart $chart.svg: runicorn bench --from failed")
    fi
    rm -f "$NEW/$chart.report"
done

# The load generator's own overhead against wrk and oha (issue 17's "Trust").
if ! RUNICORN="$RUNICORN_PATH" bash "$BENCH_DIR/loadgen.sh" >"$NEW/loadgen.md" 2>"$BENCH_TMP/loadgen.err"; then
    FAILED+=("loadgen.sh: $(tail -1 "$BENCH_TMP/loadgen.err")")
    rm -f "$NEW/loadgen.md"
fi

# The load at the end, next to the one at the start: how quiet the machine was.
python3 - "$NEW/environment.json" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'EOF'
import json, sys
env = json.load(open(sys.argv[1]))
env["load_at_end"] = sys.argv[2]
json.dump(env, open(sys.argv[1], "w"), indent=2)
EOF

rm -rf "$OUT.old"
[ ! -d "$OUT" ] || mv "$OUT" "$OUT.old"
mv "$NEW" "$OUT"
rm -rf "$OUT.old"
link_base="$(realpath --relative-to="$(dirname "$MD")" "$OUT")"
python3 "$BENCH_DIR/benchmarks_md.py" render "$OUT" --link-base "$link_base" >"$BENCH_TMP/BENCHMARKS.md" ||
    die "bench/benchmarks_md.py render $OUT failed"
mv "$BENCH_TMP/BENCHMARKS.md" "$MD"
log "bench: wrote $MD from $OUT"
if [ "${#FAILED[@]}" -gt 0 ]; then
    log "bench: ${#FAILED[@]} point(s) failed:"
    printf '  %s\n' "${FAILED[@]}" >&2
    exit 1
fi
