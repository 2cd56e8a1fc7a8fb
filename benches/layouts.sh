#!/usr/bin/env bash
# The engine bench's times under several code layouts of the same source, and the ratio of each
# contender to the tokio baseline per layout, with the median over the layouts.
#
# Why: rustc orders a crate's code by hashes of its symbols, which depend on the package's path
# (through its metadata hash). The same source built from two directories therefore lays its
# code out differently, and on this machine that alone moved `chain_100/sagaflow` from 16.2 to
# 18.5 µs and `chain_5/sagaflow` from 1.42-1.49 to 1.70-1.81 µs (benches/README.md, session
# 31): as much as the goals being measured. Any change to the code is a new layout too, so one
# build against another compares two draws. Here each tree is copied to LAYOUTS directories, a
# layout each, built, and run in rounds (every layout of every tree once a round, in turn).
#
#   bash benches/layouts.sh                       # this checkout's working tree, 5 layouts, chain_5
#   bash benches/layouts.sh /tmp/a /tmp/b         # two trees side by side (A/B of a change)
#   LAYOUTS=3 ROUNDS=2 FILTER='^chain_100/(sagaflow|tokio)$' bash benches/layouts.sh
#   BUILD=0 ROUNDS=3 bash benches/layouts.sh /tmp/a /tmp/b    # more rounds, the same binaries
#
# A tree is a directory holding a checkout (its `target/` and `.git/` are not copied). The
# copies and one shared target directory go under LAYOUT_DIR (default /tmp/sagaflow-layouts):
# the dependencies build once (about 3 minutes), each layout in about 45 s. Needs rsync and
# python3.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
layouts=${LAYOUTS:-5}
rounds=${ROUNDS:-1}
filter=${FILTER:-'^chain_5/(sagaflow|sagaflow_macro|tokio)$'}
measure=${MEASURE:-3}
work=${LAYOUT_DIR:-/tmp/sagaflow-layouts}
trees=("$@")
if [ ${#trees[@]} -eq 0 ]; then trees=("$root"); fi
mkdir -p "$work/bin"
export CARGO_TARGET_DIR="$work/target"

for i in "${!trees[@]}"; do
    # BUILD=0: more rounds of the binaries built last time, for the same trees in the same order.
    if [ "${BUILD:-1}" = 0 ]; then continue; fi
    tree=$(cd "${trees[$i]}" && pwd)
    for k in $(seq "$layouts"); do
        dir="$work/tree$i/layout$k/sagaflow"
        mkdir -p "$dir"
        rsync -a --delete --exclude /target --exclude /.git "$tree/" "$dir/"
        bin=$(cd "$dir" && cargo bench --bench engine --no-run --message-format=json 2>/dev/null |
            python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "engine" and m.get("executable"):
        print(m["executable"])')
        cp "$bin" "$work/bin/tree$i-layout$k"
        echo "built tree $i ($tree), layout $k" >&2
    done
done

out="$work/times"
: >"$out"
for round in $(seq "$rounds"); do
    for k in $(seq "$layouts"); do
        for i in "${!trees[@]}"; do
            "$work/bin/tree$i-layout$k" --bench "$filter" --warm-up-time 1 \
                --measurement-time "$measure" 2>/dev/null |
                awk -v t="$i" -v k="$k" -v r="$round" '
                    /%/ { next }  # the change since the previous run
                    $2 == "time:" { print t, k, r, $1, $5, $6; next }
                    $1 == "time:" { print t, k, r, name, $4, $5; next }  # a long name, a line of its own
                    NF == 1 { name = $1 }' >>"$out"
        done
    done
done

python3 - "$out" "${trees[@]}" <<'PY'
import statistics, sys
from collections import defaultdict

path, trees = sys.argv[1], sys.argv[2:]
scale = {"ns": 1e-3, "µs": 1.0, "us": 1.0, "ms": 1e3, "s": 1e6}
times = defaultdict(list)  # (tree, layout, round) -> [(bench, µs)]
for line in open(path):
    tree, layout, rnd, bench, value, unit = line.split()
    times[(int(tree), int(layout), int(rnd))].append((bench, float(value) * scale[unit]))
for t, tree in enumerate(trees):
    print(f"tree {t}: {tree}")
    ratios, absolute = defaultdict(list), defaultdict(list)
    for (tt, layout, rnd), rows in sorted(times.items()):
        if tt != t:
            continue
        by_shape = defaultdict(dict)
        for bench, us in rows:
            shape, contender = bench.split("/", 1)
            by_shape[shape][contender] = us
            absolute[bench].append(us)
        cells = []
        for shape, contenders in by_shape.items():
            base = contenders.get("tokio")
            for contender, us in contenders.items():
                cell = f"{shape}/{contender} {us:.3f} µs"
                if base and contender != "tokio":
                    ratios[f"{shape}/{contender}"].append(us / base)
                    cell += f" ({us / base:.2f}x)"
                cells.append(cell)
        print(f"  layout {layout} round {rnd}: " + ", ".join(cells))
    for bench, values in sorted(absolute.items()):
        print(f"  {bench}: median {statistics.median(values):.3f} µs, "
              f"{min(values):.3f}-{max(values):.3f} over {len(values)}")
    for bench, values in sorted(ratios.items()):
        print(f"  {bench} / tokio: median {statistics.median(values):.2f}x, "
              f"{min(values):.2f}-{max(values):.2f}x over {len(values)}")
PY
