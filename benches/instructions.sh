#!/usr/bin/env bash
# Instructions per run of an in-memory shape, sagaflow against the hand-written tokio baseline
# of `engine.rs` (for `chain_5`, also the chain written with `workflow!`), counted by callgrind:
# repeatable under load, unlike times (to 1-2%: the two workers' parking differs from run to
# run). Each contender runs twice, with LOW and HIGH runs;
# the difference divided by HIGH - LOW is what one run costs, without what the process does
# once (start-up, the runtime, the first engine). sagaflow's figure is net of the bench's own
# run ids (`ids`: made and dropped alone), which its timed loop makes before the clock starts.
#
#   bash benches/instructions.sh                 # chain_5, 10,000 and 30,000 runs
#   SHAPE=chain_100 LOW=200 HIGH=600 bash benches/instructions.sh
#
# Needs valgrind. Builds the `engine` bench in the `bench` profile.
set -euo pipefail
cd "$(dirname "$0")/.."
shape=${SHAPE:-chain_5}
low=${LOW:-10000}
high=${HIGH:-30000}

bin=$(cargo bench --bench engine --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "engine" and m.get("executable"):
        print(m["executable"])')
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

count() { # contender runs -> total instructions of the process
    SAGAFLOW_BENCH_COUNT="$shape:$1:$2" valgrind --tool=callgrind \
        --callgrind-out-file="$out/$1.$2" "$bin" >/dev/null 2>"$out/log"
    sed -n 's/^summary: //p' "$out/$1.$2"
}

contenders="sagaflow ids tokio"
# `chain_5` is also written with `workflow!` (`sagaflow_macro`).
if [ "$shape" = chain_5 ]; then contenders="sagaflow sagaflow_macro ids tokio"; fi
declare -A per_run
for contender in $contenders; do
    a=$(count "$contender" "$low")
    b=$(count "$contender" "$high")
    per_run[$contender]=$(( (b - a) / (high - low) ))
    echo "$shape $contender: ${per_run[$contender]} instructions a run ($low runs: $a, $high runs: $b)"
done
for contender in $contenders; do
    case $contender in ids | tokio) continue ;; esac
    net=$(( per_run[$contender] - per_run[ids] ))
    echo "$shape $contender net of ids: $net instructions a run"
    python3 -c "print(f'$shape $contender / tokio: {$net / ${per_run[tokio]}:.3f}')"
done
