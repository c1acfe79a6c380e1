#!/usr/bin/env bash
# all.sh: every figure in one quiet run (run it when nothing else is busy on
# the machine). Installs what is missing, builds runicorn in release once
# (unless RUNICORN names a binary), then runs sync, gthread, green, async,
# abi and 5 interleaved rounds of the closest comparisons. A script that
# fails, or a server that never served (a FAILED row), is reported and the
# rest still run; the exit status is then non-zero. Results: bench/results/.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
bash "$here/setup.sh" || exit 1
if [ -z "${RUNICORN:-}" ]; then
    (cd "$root" && cargo build --release -q -p runicorn-cli) ||
        { echo "bench: cargo build --release -p runicorn-cli failed" >&2; exit 1; }
    RUNICORN="${CARGO_TARGET_DIR:-$root/target}/release/runicorn"
fi
export RUNICORN
failed=()
marker="$(mktemp)"
trap 'rm -f "$marker"' EXIT
for s in sync gthread green async abi; do
    echo "== $s" >&2
    bash "$here/$s.sh" || failed+=("$s")
done
echo "== rounds" >&2
bash "$here/rounds.sh" "${BENCH_ROUNDS:-5}" sync gthread green async || failed+=(rounds)
while IFS= read -r f; do
    failed+=("$(basename "$f"): $(grep -c FAILED "$f") FAILED rows")
done < <(find "$here/results" -name '*.txt' -newer "$marker" -exec grep -l FAILED {} +)
if [ "${#failed[@]}" -gt 0 ]; then
    printf 'bench: failed: %s\n' "${failed[@]}" >&2
    exit 1
fi
echo "bench: all figures written to $here/results/" >&2
