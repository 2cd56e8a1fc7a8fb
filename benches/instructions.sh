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
#   CACHE=1 bash benches/instructions.sh         # also the cache misses a run
#   CODE=1 bash benches/instructions.sh          # also the code a run runs, in cache lines
#   LOCKED=1 bash benches/instructions.sh        # also the locked instructions a run runs
#
# With CACHE=1, callgrind also simulates the caches (about twice as slow) and each contender's
# line gives its first-level instruction misses (I1, default `32768,8,64`: Zen 3's 32 KiB,
# 8-way), its first-level data misses and its misses of a last level of LL (default
# `524288,8,64`: a 512 KiB, 8-way L2 such as this machine's, not its L3, which the guest
# reports as 320 MiB). Those counts repeat exactly, unlike times; they show what a change does
# to the memory a run touches (session 31: keeping 511 finished runs, 4.3 L2 misses a
# `chain_5` run; 10,000, 16.7) and to the code it runs (session 32: a `chain_5` run misses the
# I1 308 times, the baseline's 25).
#
# With CODE=1, each contender's line also gives the code one run runs: the 64-byte lines
# holding an instruction that runs at least every other run, and those instructions (counted
# from callgrind's per-instruction counts, `--dump-instr=yes`). Past the I1's 512 lines, a run
# evicts its own code (session 32: `chain_5` 627 lines, the baseline 275).
#
# With LOCKED=1, each contender's line also gives the locked instructions one run runs (a
# `lock` prefix, or `xchg` with memory: atomic read-modify-writes, each a full barrier), and
# a list after it of where they are, by function. On a line no other core writes, a locked
# instruction costs little amid other work (about 0.4 ns here: benches/README, session 33); on
# a line that other cores write, far more (item 4 of issue 17: what every run takes that is
# shared between runs). Found from callgrind's per-instruction
# counts and `objdump -d` of each object, whose addresses callgrind reports as the object's.
#
# Needs valgrind (and objdump for LOCKED=1). Builds the `engine` bench in the `bench` profile.
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

cache=()
if [ "${CACHE:-0}" = 1 ]; then
    cache=(--cache-sim=yes "--I1=${I1:-32768,8,64}" "--LL=${LL:-524288,8,64}")
fi
if [ "${CODE:-0}" = 1 ] || [ "${LOCKED:-0}" = 1 ]; then cache+=(--dump-instr=yes --compress-pos=no --compress-strings=no); fi

count() { # contender runs -> the process's instructions, I1 misses, D1 misses and LL misses
    SAGAFLOW_BENCH_COUNT="$shape:$1:$2" valgrind --tool=callgrind "${cache[@]}" \
        --callgrind-out-file="$out/$1.$2" "$bin" >/dev/null 2>"$out/log"
    # Events: Ir, or Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw with the cache simulated.
    sed -n 's/^summary: //p' "$out/$1.$2" |
        awk '{ if (NF >= 9) print $1, $4, $5 + $6, $8 + $9; else print $1, 0, 0, 0 }'
}

# The code a run runs: from the per-instruction counts of LOW and HIGH runs, the instructions
# run at least (HIGH - LOW) / 2 times more, and the 64-byte lines holding them.
code() { # low-run file, high-run file
    python3 - "$1" "$2" "$(( high - low ))" <<'PY'
import sys
from collections import Counter
def counts(path):
    seen, obj, skip = Counter(), None, False
    for line in open(path):
        if line.startswith("ob="):
            obj = line[3:].strip()
        elif line.startswith("calls="):
            skip = True  # the next line is the call's inclusive cost, not an instruction's
        elif line.startswith("0x"):
            if not skip:
                fields = line.split()
                seen[(obj, int(fields[0], 16))] += int(fields[2]) if len(fields) > 2 else 0
            skip = False
    return seen
low, high, runs = counts(sys.argv[1]), counts(sys.argv[2]), int(sys.argv[3])
hot = [k for k, n in high.items() if (n - low.get(k, 0)) * 2 >= runs]
lines = {(obj, addr // 64) for obj, addr in hot}
print(f", code {len(lines)} lines ({len(lines) * 64 / 1024:.1f} KiB), {len(hot)} instructions")
PY
}

# The locked instructions a run runs: those run at least (HIGH - LOW) / 2 times more, counted
# per run, then the ten places that run the most of them.
locked() { # low-run file, high-run file
    python3 - "$1" "$2" "$(( high - low ))" <<'PY'
import re, subprocess, sys
from collections import Counter
def counts(path):
    seen, where, obj, fn, fl, skip = Counter(), {}, None, None, None, False
    for line in open(path):
        if line.startswith("ob="):
            obj = line[3:].strip()
        elif line.startswith("fn="):
            fn = line[3:].strip()
        elif line.startswith(("fl=", "fi=", "fe=")):
            fl = line[3:].strip()
        elif line.startswith("calls="):
            skip = True
        elif line.startswith("0x"):
            if not skip:
                fields = line.split()
                key = (obj, int(fields[0], 16))
                seen[key] += int(fields[2]) if len(fields) > 2 else 0
                where[key] = (fn, fl, fields[1])
            skip = False
    return seen, where
lock = re.compile(r"^\s*([0-9a-f]+):\s+(lock |xchg\s.*\()")
def locked_in(obj, cache={}):
    if obj not in cache:
        out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", obj],
                             capture_output=True, text=True).stdout
        cache[obj] = {int(m.group(1), 16) for m in map(lock.match, out.splitlines()) if m}
    return cache[obj]
(low, _), (high, where), runs = counts(sys.argv[1]), counts(sys.argv[2]), int(sys.argv[3])
per_place, total = Counter(), 0
for key, n in high.items():
    extra = n - low.get(key, 0)
    if extra * 2 >= runs and key[0] and key[1] in locked_in(key[0]):
        total += extra
        fn, fl, line = where[key]
        short = re.sub(r"::h[0-9a-f]{16}$", "", fn or "?")
        per_place[f"{short[:90]} ({(fl or '?').split('/src/')[-1]}:{line})"] += extra
print(f", {total / runs:.1f} locked instructions")
for place, n in per_place.most_common(10):
    print(f"    {n / runs:4.1f}  {place}", file=sys.stderr)
PY
}

contenders="sagaflow ids tokio"
# `chain_5` is also written with `workflow!` (`sagaflow_macro`), and the baseline's chain also
# with a run's bookkeeping by hand (`tokio_kept`, a task a step, and `tokio_kept_inline`, the
# steps awaited in the run's own task; both make the same ids).
if [ "$shape" = chain_5 ]; then contenders="sagaflow sagaflow_macro ids tokio tokio_kept tokio_kept_inline"; fi
declare -A per_run
for contender in $contenders; do
    read -r a a_i1 a_d1 a_ll <<<"$(count "$contender" "$low")"
    read -r b b_i1 b_d1 b_ll <<<"$(count "$contender" "$high")"
    per_run[$contender]=$(( (b - a) / (high - low) ))
    misses=""
    if [ "${CACHE:-0}" = 1 ]; then
        misses=$(python3 -c "n = $high - $low; print(f', {($b_i1 - $a_i1) / n:.1f} I1 misses, {($b_d1 - $a_d1) / n:.1f} D1 misses, {($b_ll - $a_ll) / n:.1f} LL misses')")
    fi
    if [ "${CODE:-0}" = 1 ]; then
        misses+=$(code "$out/$contender.$low" "$out/$contender.$high")
    fi
    places=""
    if [ "${LOCKED:-0}" = 1 ]; then
        misses+=$(locked "$out/$contender.$low" "$out/$contender.$high" 2>"$out/places")
        places=$(cat "$out/places")
    fi
    echo "$shape $contender: ${per_run[$contender]} instructions a run$misses ($low runs: $a, $high runs: $b)"
    if [ -n "$places" ]; then echo "$places"; fi
done
kept="" inline=""
if [ -n "${per_run[tokio_kept]:-}" ]; then kept=$(( per_run[tokio_kept] - per_run[ids] )); fi
if [ -n "${per_run[tokio_kept_inline]:-}" ]; then inline=$(( per_run[tokio_kept_inline] - per_run[ids] )); fi
for contender in $contenders; do
    case $contender in ids | tokio | tokio_kept) continue ;; esac
    net=$(( per_run[$contender] - per_run[ids] ))
    echo "$shape $contender net of ids: $net instructions a run"
    python3 -c "print(f'$shape $contender / tokio: {$net / ${per_run[tokio]}:.3f}')"
    if [ "$contender" = tokio_kept_inline ]; then continue; fi
    if [ -n "$kept" ]; then
        python3 -c "print(f'$shape $contender / tokio_kept (net of ids, {$kept}): {$net / $kept:.3f}')"
    fi
    if [ -n "$inline" ]; then
        python3 -c "print(f'$shape $contender / tokio_kept_inline (net of ids, {$inline}): {$net / $inline:.3f}')"
    fi
done
