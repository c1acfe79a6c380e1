#!/usr/bin/env bash
# Issue 3 figures: builtin:hello under `-k sync` with -w 1 and -w 2 against
# Gunicorn's sync worker (same worker counts), wrk -c16 with `Connection:
# close` (neither server keeps connections alive); then idle RSS of the master
# and of one worker, next to Gunicorn's.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init sync

table_head "sync: hello, 16 connections, Connection: close (issue 3)"
for w in 1 2; do
    cmd gunicorn_cmd wsgi_hello:hello -k sync -w "$w"
    bench_case "gunicorn sync -w $w" 16 / "-H Connection:close" -- "${CMD[@]}"
    if have_runicorn; then
        cmd runicorn_cmd builtin:hello -k sync -w "$w"
        VS="gunicorn=$LAST_RPS" bench_case "runicorn sync -w $w" 16 / "-H Connection:close" -- "${CMD[@]}"
    fi
done

mem_head "sync: idle RSS, -w 1 (issue 3)"
cmd gunicorn_cmd wsgi_hello:hello -k sync -w 1
mem_case "gunicorn sync -w 1" 0 / -- "${CMD[@]}"
if have_runicorn; then
    cmd runicorn_cmd builtin:hello -k sync -w 1
    mem_case "runicorn sync -w 1" 0 / -- "${CMD[@]}"
fi
log "bench: wrote $RESULT_FILE"
