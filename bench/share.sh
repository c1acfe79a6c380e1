#!/usr/bin/env bash
# share.sh BEFORE AFTER [ROUNDS]: how evenly two gthread workers share
# kept-alive clients, for two runicorn binaries side by side in the same
# run. `runicorn bench --workload io` (builtin:sleep, 50 ms waits) under
# -k gthread -w 2 --threads 8 (16 requests at once) at 16, 32 and 64
# connections, server on CPU 0 and the generator on CPU 1, rounds
# interleaved (the order alternates). A kept-alive connection stays on the
# worker that accepted it, so when one worker takes most of a burst its
# threads queue while the other's idle: the share of the Little's-law limit
# (16 / W req/s) drops towards 50%. Prints every round and the medians.
# Short rounds: BENCH_DURATION (s, default 4), BENCH_WARMUP (default 1).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
[ $# -ge 2 ] || die "usage: share.sh BEFORE_BINARY AFTER_BINARY [ROUNDS]"
BEFORE="$1" AFTER="$2" ROUNDS="${3:-3}"
for b in "$BEFORE" "$AFTER"; do [ -x "$b" ] || die "not an executable: $b"; done
require_tools
raise_nofile 20000
RUNICORN_PATH="$AFTER"
begin_result share
out <<END
- before: $BEFORE ($(stat -c '%y' "$BEFORE" | cut -d. -f1))
- after: $AFTER ($(stat -c '%y' "$AFTER" | cut -d. -f1))

### gthread -w 2 --threads 8, builtin:sleep 50 ms, keep-alive: req/s and share of the Little's-law limit, $ROUNDS interleaved rounds

| round | binary | conns | req/s | limit req/s | share | p99 ms |
|---|---|---:|---:|---:|---:|---:|
END
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for i in $(seq 1 "$ROUNDS"); do
    order=(before after)
    [ $((i % 2)) -eq 0 ] && order=(after before)
    for which in "${order[@]}"; do
        bin="$BEFORE"
        [ "$which" = after ] && bin="$AFTER"
        "$AFTER" bench --workload io -k gthread -w 2 --threads 8 --connections 16,32,64 \
            -d "${BENCH_DURATION:-4}s" --warmup "${BENCH_WARMUP:-1}s" \
            --server-cpus 0 --client-cpus 1 --runicorn "$bin" --output json \
            >"$work/$which.$i.json" 2>"$work/$which.$i.err" ||
            die "runicorn bench failed: $(tail -1 "$work/$which.$i.err")"
        python3 - "$work/$which.$i.json" "r$i" "$which" <<'PY' | out
import json, sys
report = json.load(open(sys.argv[1]))
for run in report["runs"]:
    limit = run.get("little_limit_rps") or 0
    share = f"{100 * run['rps'] / limit:.0f}%" if limit else "?"
    print(f"| {sys.argv[2]} | {sys.argv[3]} | {run['connections']} | {run['rps']:.1f} | {limit:.1f} | {share} | {run['latency']['p99'] / 1000:.1f} |")
PY
    done
done
out <<END

### medians over $ROUNDS rounds

| conns | req/s before | req/s after | after/before | share before | share after | worst share before | worst share after | p99 ms before | p99 ms after |
|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
END
python3 - "$work" "$ROUNDS" <<'PY' | out
import json, statistics, sys
work, rounds = sys.argv[1], int(sys.argv[2])
rows = {}
for which in ("before", "after"):
    for i in range(1, rounds + 1):
        for run in json.load(open(f"{work}/{which}.{i}.json"))["runs"]:
            rows.setdefault(run["connections"], {}).setdefault(which, []).append(
                (run["rps"], run["rps"] / (run.get("little_limit_rps") or float("inf")),
                 run["latency"]["p99"] / 1000))
for conns in sorted(rows):
    b = rows[conns]["before"]; a = rows[conns]["after"]
    rb = statistics.median(x[0] for x in b); ra = statistics.median(x[0] for x in a)
    sb = statistics.median(x[1] for x in b); sa = statistics.median(x[1] for x in a)
    wb = min(x[1] for x in b); wa = min(x[1] for x in a)
    pb = statistics.median(x[2] for x in b); pa = statistics.median(x[2] for x in a)
    print(f"| {conns} | {rb:.1f} | {ra:.1f} | {ra / rb:.2f} | {100 * sb:.0f}% | {100 * sa:.0f}% "
          f"| {100 * wb:.0f}% | {100 * wa:.0f}% | {pb:.1f} | {pa:.1f} |")
PY
log "bench: wrote $RESULT_FILE"
