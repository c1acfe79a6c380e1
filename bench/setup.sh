#!/usr/bin/env bash
# Idempotent install of everything the benchmarks need on a fresh machine:
# wrk and nginx (Debian packages), a venv at bench/.venv with gunicorn, gevent
# and uvicorn, and the two Rust peer servers built in release.
# Usage: bench/setup.sh            (safe to rerun; skips what is already there)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

need_apt=()
command -v wrk >/dev/null 2>&1 || need_apt+=(wrk)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need_apt+=(nginx)
command -v taskset >/dev/null 2>&1 || need_apt+=(util-linux)
command -v ss >/dev/null 2>&1 || need_apt+=(iproute2)
command -v ps >/dev/null 2>&1 || need_apt+=(procps)
python3 -c 'import ensurepip, venv' 2>/dev/null || need_apt+=(python3-venv)
if [ "${#need_apt[@]}" -gt 0 ]; then
    sudo_=""; [ "$(id -u)" -eq 0 ] || sudo_="sudo"
    $sudo_ apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -q "${need_apt[@]}"
    # The Debian package starts a system nginx on :80; the benchmarks run their own.
    if command -v systemctl >/dev/null 2>&1; then $sudo_ systemctl disable --now nginx >/dev/null 2>&1 || true; fi
    if [ -f /run/nginx.pid ]; then $sudo_ kill "$(cat /run/nginx.pid)" 2>/dev/null || true; fi
fi

venv="$here/.venv"
if [ ! -x "$venv/bin/gunicorn" ] || [ ! -x "$venv/bin/uvicorn" ] || ! "$venv/bin/python" -c 'import gevent, packaging' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --upgrade pip
    # uvicorn[standard] brings uvloop and httptools, its fast path in production.
    "$venv/bin/pip" install -q gunicorn gevent packaging 'uvicorn[standard]'
fi

for peer in async-hyper-hello may-minihttp-hello; do
    # Each peer is its own workspace with a committed Cargo.lock; its target/ is gitignored.
    locked=""; [ -f "$here/peers/$peer/Cargo.lock" ] && locked="--locked"
    (cd "$here/peers/$peer" && CARGO_TARGET_DIR="$here/peers/$peer/target" cargo build --release -q $locked)
done

# oha, the third load generator bench/loadgen.sh compares with (gitignored).
if ! command -v oha >/dev/null 2>&1 && [ ! -x "$here/.tools/bin/oha" ]; then
    cargo install oha --locked --root "$here/.tools" -q
fi

echo "setup: ok"
echo "  wrk:      $(wrk -v 2>&1 | head -1)"
echo "  nginx:    $( (nginx -v || /usr/sbin/nginx -v) 2>&1 | head -1)"
echo "  gunicorn: $("$venv/bin/gunicorn" --version 2>&1)"
echo "  uvicorn:  $("$venv/bin/uvicorn" --version 2>&1)"
