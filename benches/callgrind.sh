#!/usr/bin/env bash
# Instructions per task of `benches/profile.rs` patterns under callgrind, single-threaded (tokio
# current-thread, or a smol Executor on the block_on thread): the steady measure on a shared
# machine where wall time is not. Each pattern is shown with its ratio to the raw spawn of the
# same runtime and producer placement (exec: to raw spawn+await in a loop; map, map_unordered
# and apply also to buffer_unordered without spawning at the same C), measured alike.
#
#   bash benches/callgrind.sh [N] [pattern ...]
#
# A pattern is [smol:]MODE[@C][/task]:
#   MODE   raw raw-loop exec spawn queued map map_unordered apply buffered (see profile.rs)
#   smol:  on a smol Executor instead of tokio current-thread
#   @C     the pool's limit and map's num_concurrent (default: LIMIT and C below)
#   /task  the producer runs in a runtime task instead of the block_on future
# Default patterns: issue 15's targets on both runtimes (about 3 minutes at N=20000).
# Env: LIMIT (default 1000), C (default 1000), YIELDS (each task yields this often; 0).
# Also: SPAWNS=1 bash benches/callgrind.sh ... adds runtime spawns per task (one plain run).
# DURATIONS=1 measures pools built with track_durations(true); FEATURES=metrics builds the
# bench with more features (metrics: the `metrics` feature, no recorder installed).
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-20000}
shift || true
default="exec queued queued/task spawn@16 spawn@16/task map map_unordered apply map_unordered/task"
default="$default smol:exec smol:queued smol:queued/task smol:spawn@16 smol:map_unordered smol:apply"
patterns=${*:-$default}
bin=$(cargo bench --bench profile --features "tokio,smol${FEATURES:+,$FEATURES}" --no-run --message-format=json 2>/dev/null \
    | sed -n 's/.*"executable":"\([^"]*profile[^"]*\)".*/\1/p' | tail -n1)
[[ -x "$bin" ]] || { echo "callgrind.sh: could not build benches/profile.rs" >&2; exit 1; }
command -v valgrind >/dev/null || { echo "callgrind.sh: needs valgrind (apt-get install valgrind)" >&2; exit 1; }
LIMIT=${LIMIT:-1000}
C=${C:-1000}

declare -A cache
# Instructions per task of one pattern, into $got: one round each of n and 2n tasks, the
# difference is the cost of n tasks without the set-up. (No subshell, so the cache keeps.)
instr() {
    local spec=$1
    [[ -n "${cache[$spec]:-}" ]] && { got=${cache[$spec]}; return; }
    local rt=tokio rest=$spec mode limit=$LIMIT c=$C producer=block_on
    [[ $rest == smol:* ]] && { rt=smol; rest=${rest#smol:}; }
    [[ $rest == */task ]] && { producer=task; rest=${rest%/task}; }
    [[ $rest == *@* ]] && { limit=${rest#*@}; c=$limit; rest=${rest%@*}; }
    mode=$rest
    local out i1 i2
    out=$(mktemp)
    for k in 1 2; do
        N=$((n * k)) ROUNDS=1 DURATIONS=${DURATIONS:-0} LIMIT=$limit C=$c RT=$rt PRODUCER=$producer \
            valgrind --tool=callgrind --callgrind-out-file="$out.$k" "$bin" "$mode" >/dev/null 2>&1
    done
    i1=$(sed -n 's/^summary: //p' "$out.1"); i2=$(sed -n 's/^summary: //p' "$out.2")
    rm -f "$out" "$out.1" "$out.2"
    cache[$spec]=$(((i2 - i1) / n))
    got=${cache[$spec]}
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }'; }

printf '%-24s %11s %9s %12s   (N=%d, LIMIT=%s, C=%s, YIELDS=%s)\n' \
    pattern instr/task "÷ raw" "÷ buffered" "$n" "$LIMIT" "$C" "${YIELDS:-0}"
for p in $patterns; do
    rt="" ; [[ $p == smol:* ]] && rt="smol:"
    place="" ; [[ $p == */task ]] && place="/task"
    base="${rt}raw${place}"
    mode=${p#smol:}; mode=${mode%/task}; at=""
    [[ $mode == *@* ]] && { at="@${mode#*@}"; mode=${mode%@*}; }
    [[ $mode == exec ]] && base="${rt}raw-loop${place}"
    instr "$p"; v=$got
    instr "$base"; b=$got
    vs_buffered=""
    if [[ $mode == map || $mode == map_unordered || $mode == apply ]]; then
        instr "${rt}buffered${at}${place}"
        vs_buffered=$(ratio "$v" "$got")
    fi
    printf '%-24s %11d %9s %12s\n' "$p" "$v" "$(ratio "$v" "$b")" "$vs_buffered"
    if [[ "${SPAWNS:-}" == 1 ]]; then
        spec=${p#smol:}; spec=${spec%/task}; lim=$LIMIT; c=$C
        [[ $spec == *@* ]] && { lim=${spec#*@}; c=$lim; spec=${spec%@*}; }
        N=$n ROUNDS=1 LIMIT=$lim C=$c RT=${rt:+smol} PRODUCER=${place:+task} SPAWNS=1 \
            "$bin" "$spec" | sed -n 's/^runtime spawns per task: /    runtime spawns per task: /p'
    fi
done
