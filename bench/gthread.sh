#!/usr/bin/env bash
# Issue 4 figures, against Gunicorn's gthread worker with the same worker and
# thread counts: (1) hello, keep-alive, 64 connections, -w 1 --threads 4;
# (2) sleep ?ms=100, 200 connections, -w 2 --threads 8, against the
# Little's-law limit 16 threads / 0.1 s = 160 req/s; (3) worker RSS idle and
# with 1,000 idle keep-alive connections (--keep-alive 300 so neither server
# drops them while they are counted).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init gthread

table_head "gthread: hello, keep-alive, 64 connections, -w 1 --threads 4 (issue 4)"
cmd gunicorn_cmd wsgi_hello:hello -k gthread -w 1 --threads 4
bench_case "gunicorn gthread -w 1 --threads 4" 64 / "" -- "${CMD[@]}"
if have_runicorn; then
    cmd runicorn_cmd builtin:hello -k gthread -w 1 --threads 4
    VS="gunicorn=$LAST_RPS" GOAL=">= 10x gunicorn" \
        bench_case "runicorn gthread -w 1 --threads 4" 64 / "" -- "${CMD[@]}"
fi

table_head "gthread: sleep ?ms=100, 200 connections, -w 2 --threads 8 (issue 4)"
cmd gunicorn_cmd wsgi_hello:sleep -k gthread -w 2 --threads 8
LITTLE=160 bench_case "gunicorn gthread -w 2 --threads 8" 200 "/?ms=100" "" -- "${CMD[@]}"
if have_runicorn; then
    cmd runicorn_cmd builtin:sleep -k gthread -w 2 --threads 8
    VS="gunicorn=$LAST_RPS" LITTLE=160 GOAL="within 5% of 160/s" \
        bench_case "runicorn gthread -w 2 --threads 8" 200 "/?ms=100" "" -- "${CMD[@]}"
fi

mem_head "gthread: RSS, -w 1 --threads 4, idle and with 1,000 idle keep-alive connections (issue 4)"
cmd gunicorn_cmd wsgi_hello:hello -k gthread -w 1 --threads 4 --worker-connections 2000 --keep-alive 300
mem_case "gunicorn gthread" 1000 / -- "${CMD[@]}"
if have_runicorn; then
    cmd runicorn_cmd builtin:hello -k gthread -w 1 --threads 4 --worker-connections 2000 --keep-alive 300
    mem_case "runicorn gthread" 1000 / -- "${CMD[@]}"
fi
log "bench: wrote $RESULT_FILE"
