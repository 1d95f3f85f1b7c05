#!/usr/bin/env bash
# Instructions per task of each `benches/profile.rs` pattern under callgrind, on tokio
# current-thread: the steady measure on a shared machine where wall time is not.
#   bash benches/callgrind.sh [N] [pattern ...]
# Patterns: raw raw-loop exec spawn queued map (default: exec queued map spawn raw).
# Env: LIMIT (pool limit for spawn/queued/map; default 1000), C (map workers; default 1000).
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-20000}
shift || true
patterns=${*:-exec queued map spawn raw}
bin=$(cargo bench --bench profile --features tokio --no-run --message-format=json 2>/dev/null \
    | sed -n 's/.*"executable":"\([^"]*profile[^"]*\)".*/\1/p' | tail -n1)
export LIMIT=${LIMIT:-1000}
for p in $patterns; do
    out=$(mktemp)
    # One round each of n and 2n tasks: the difference is the cost of n tasks, without set-up.
    for k in 1 2; do
        N=$((n * k)) ROUNDS=1 valgrind --tool=callgrind --callgrind-out-file="$out.$k" "$bin" "$p" >/dev/null 2>&1
    done
    i1=$(sed -n 's/^summary: //p' "$out.1"); i2=$(sed -n 's/^summary: //p' "$out.2")
    printf '%-9s %6d instr/task (N=%d, LIMIT=%s)\n' "$p" $(((i2 - i1) / n)) "$n" "$LIMIT"
    rm -f "$out" "$out.1" "$out.2"
done
