#!/usr/bin/env bash
# Issue 5 figures, server pinned to one core: (1) hello, keep-alive, 64
# connections, against may_minihttp's hello (same may settings: 1 worker
# thread, pinning off, 64 KiB stacks) and Gunicorn's gevent worker; (2) sleep
# ?ms=100 with 1,000 connections against the Little's-law limit (1,000 / 0.1 s
# = 10,000 req/s) and gevent; (3) RSS with 10,000 idle keep-alive connections.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init green

table_head "green: hello, keep-alive, 64 connections, -w 1 (issue 5)"
cmd may_cmd
bench_case "may_minihttp hello (peer)" 64 / "" -- "${CMD[@]}"
may_rps="$LAST_RPS"
cmd gunicorn_cmd wsgi_hello:hello -k gevent -w 1 --worker-connections 1000
bench_case "gunicorn gevent -w 1" 64 / "" -- "${CMD[@]}"
gevent_rps="$LAST_RPS"
if have_runicorn; then
    cmd runicorn_cmd builtin:hello -k green -w 1
    VS="may_minihttp=$may_rps gevent=$gevent_rps" GOAL=">= 0.90x may_minihttp, >= 10x gevent" \
        bench_case "runicorn green -w 1" 64 / "" -- "${CMD[@]}"
fi

table_head "green: sleep ?ms=100, 1,000 connections, -w 1 (issue 5)"
cmd gunicorn_cmd wsgi_hello:sleep -k gevent -w 1 --worker-connections 2000
LITTLE=10000 bench_case "gunicorn gevent -w 1" 1000 "/?ms=100" "" -- "${CMD[@]}"
if have_runicorn; then
    cmd runicorn_cmd builtin:sleep -k green -w 1 --worker-connections 2000
    VS="gevent=$LAST_RPS" LITTLE=10000 GOAL="within 10% of 10,000/s" \
        bench_case "runicorn green -w 1" 1000 "/?ms=100" "" -- "${CMD[@]}"
fi

mem_head "green: RSS, -w 1, idle and with 10,000 idle keep-alive connections (issue 5)"
cmd gunicorn_cmd wsgi_hello:hello -k gevent -w 1 --worker-connections 20000 --keep-alive 300
mem_case "gunicorn gevent" 10000 / -- "${CMD[@]}"
if have_runicorn; then
    cmd runicorn_cmd builtin:hello -k green -w 1 --worker-connections 20000 --keep-alive 300
    mem_case "runicorn green" 10000 / -- "${CMD[@]}"
fi
log "bench: wrote $RESULT_FILE"
