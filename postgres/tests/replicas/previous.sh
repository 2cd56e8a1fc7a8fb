#!/usr/bin/env bash
# Builds the previous release's test binary of postgres/tests/replicas.rs, for the rolling
# upgrade (`replicas_rolled_one_by_one_to_this_build_lose_no_run`), and prints its path.
#
#   SAGAFLOW_PREVIOUS_REPLICAS=$(bash postgres/tests/replicas/previous.sh) \
#       cargo test -p sagaflow-postgres --test replicas
#
# PREVIOUS names the commit: the last one of the release before this one. Move it forward
# when a release is made; its replicas must take the settings `replicas/replica.rs` gives
# (every key but `starts`). The source is taken from git (the clone must hold that commit) and
# built in a target directory of its own under the main one, one per commit
# (`previous/target-<commit>`): cargo names a workspace crate's artifacts by its path in the
# workspace, and `git archive` gives the files their commit's time, so a checkout of another
# commit in a shared target directory would take the older build for fresh (it did, once
# PREVIOUS moved). The binary is copied out and kept for the next run.
set -euo pipefail
PREVIOUS=6c91e12
root=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
target=${CARGO_TARGET_DIR:-$root/target}
case "$target" in /*) ;; *) target=$root/$target ;; esac
out=$target/previous/replicas-$PREVIOUS
if [ -x "$out" ]; then
    echo "$out"
    exit 0
fi
if ! git -C "$root" cat-file -e "$PREVIOUS^{commit}" 2>/dev/null; then
    echo "previous.sh: commit $PREVIOUS is not in this clone (a shallow clone?); fetch it or clone in full" >&2
    exit 1
fi
src=$target/previous/src-$PREVIOUS
rm -rf "$src"
mkdir -p "$src"
git -C "$root" archive "$PREVIOUS" | tar -x -C "$src"
echo "previous.sh: building the replicas test of $PREVIOUS in $src" >&2
exe=$(cd "$src" && CARGO_TARGET_DIR=$target/previous/target-$PREVIOUS cargo test -p sagaflow-postgres --test replicas \
    --no-run --message-format=json-render-diagnostics |
    python3 -c '
import json, sys
for line in sys.stdin:
    msg = json.loads(line)
    if msg.get("reason") == "compiler-artifact" and msg.get("executable") and msg["target"]["name"] == "replicas":
        print(msg["executable"])
')
if [ -z "$exe" ] || [ ! -x "$exe" ]; then
    echo "previous.sh: no replicas test binary from the build of $PREVIOUS" >&2
    exit 1
fi
cp "$exe" "$out.tmp"
mv "$out.tmp" "$out"
rm -rf "$src"
echo "$out"
