#!/usr/bin/env bash
# Issue 7 figure: the cost of the app ABI. The same hello served statically
# linked (`builtin:hello`) and through the C ABI (the example app
# examples/hello built in release as a cdylib), under sync (-w 1, 16
# connections, Connection: close) and gthread (-w 1 --threads 4, keep-alive,
# 64 connections). Override the library with ABI_LIB=path/to/lib.so and the
# app spec with ABI_APP=spec (default "$ABI_LIB:app").
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init abi

# abi_lib: build examples/hello in release and print the path of its .so.
abi_lib() {
    local manifest="$ROOT_DIR/examples/hello/Cargo.toml" target lib
    [ -f "$manifest" ] || { log "bench: $manifest not found: the hello example is not written yet"; return 1; }
    cargo build --release -q --manifest-path "$manifest" >&2 || { log "bench: building examples/hello failed"; return 1; }
    target="$(cargo metadata --format-version 1 --no-deps --manifest-path "$manifest" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
    lib="$(find "$target/release" -maxdepth 1 -name 'lib*hello*.so' -printf '%T@ %p\n' 2>/dev/null |
        sort -rn | head -1 | cut -d' ' -f2-)"
    [ -n "$lib" ] || { log "bench: no lib*hello*.so in $target/release"; return 1; }
    printf '%s\n' "$lib"
}

ABI_LIB="${ABI_LIB:-$(abi_lib || true)}"
ABI_APP="${ABI_APP:-${ABI_LIB:+$ABI_LIB:app}}"
have_runicorn || die "abi.sh measures runicorn only: unset BENCH_NO_RUNICORN"
out <<<"- ABI app: ${ABI_APP:-none (examples/hello could not be built)}"

table_head "abi: hello statically linked vs through the C ABI, sync -w 1, 16 connections, Connection: close (issue 7)"
cmd runicorn_cmd builtin:hello -k sync -w 1
bench_case "runicorn sync builtin:hello" 16 / "-H Connection:close" -- "${CMD[@]}"
if [ -n "$ABI_APP" ]; then
    cmd runicorn_cmd "$ABI_APP" -k sync -w 1
    VS="builtin=$LAST_RPS" bench_case "runicorn sync ABI hello" 16 / "-H Connection:close" -- "${CMD[@]}"
fi

table_head "abi: hello statically linked vs through the C ABI, gthread -w 1 --threads 4, keep-alive, 64 connections (issue 7)"
cmd runicorn_cmd builtin:hello -k gthread -w 1 --threads 4
bench_case "runicorn gthread builtin:hello" 64 / "" -- "${CMD[@]}"
if [ -n "$ABI_APP" ]; then
    cmd runicorn_cmd "$ABI_APP" -k gthread -w 1 --threads 4
    VS="builtin=$LAST_RPS" bench_case "runicorn gthread ABI hello" 64 / "" -- "${CMD[@]}"
fi
log "bench: wrote $RESULT_FILE"
