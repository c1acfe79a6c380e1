#!/usr/bin/env bash
# Issue 6 figures, server pinned to one core: (1) hello, keep-alive, 64
# connections, against a minimal hyper 1.x server on a current_thread tokio
# runtime, uvicorn with the equivalent ASGI app — as `pip install uvicorn`
# gives it (asyncio + h11: the goal's peer) and with its `[standard]` extras
# (uvloop + httptools: its fast path, for context) — and
# nginx `return 200` as the practical ceiling; (2) sleep ?ms=100 with 1,000
# connections against the Little's-law limit (10,000 req/s).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init async

table_head "async: hello, keep-alive, 64 connections, -w 1 (issue 6)"
cmd nginx_cmd
bench_case "nginx return 200, 1 worker (ceiling)" 64 / "" -- "${CMD[@]}"
nginx_rps="$LAST_RPS"
cmd hyper_cmd
bench_case "hyper 1.x current_thread (peer)" 64 / "" -- "${CMD[@]}"
hyper_rps="$LAST_RPS"
cmd uvicorn_cmd asgi_hello:hello --loop asyncio --http h11
bench_case "uvicorn (pip install uvicorn: asyncio, h11)" 64 / "" -- "${CMD[@]}"
uvicorn_rps="$LAST_RPS"
cmd uvicorn_cmd asgi_hello:hello --loop uvloop --http httptools
bench_case "uvicorn[standard] (uvloop, httptools)" 64 / "" -- "${CMD[@]}"
uvicorn_std_rps="$LAST_RPS"
if have_runicorn; then
    cmd runicorn_cmd builtin:hello -k async -w 1
    VS="hyper=$hyper_rps uvicorn=$uvicorn_rps uvicorn[standard]=$uvicorn_std_rps nginx=$nginx_rps" \
        GOAL=">= 1x hyper, >= 10x uvicorn" \
        bench_case "runicorn async -w 1" 64 / "" -- "${CMD[@]}"
fi

table_head "async: sleep ?ms=100, 1,000 connections, -w 1 (issue 6)"
cmd uvicorn_cmd asgi_hello:sleep --loop uvloop --http httptools
LITTLE=10000 bench_case "uvicorn[standard] (uvloop, httptools)" 1000 "/?ms=100" "" -- "${CMD[@]}"
if have_runicorn; then
    cmd runicorn_cmd builtin:sleep -k async -w 1 --worker-connections 2000
    VS="uvicorn=$LAST_RPS" LITTLE=10000 GOAL="within 10% of 10,000/s" \
        bench_case "runicorn async -w 1" 1000 "/?ms=100" "" -- "${CMD[@]}"
fi
log "bench: wrote $RESULT_FILE"
