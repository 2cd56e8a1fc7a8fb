#!/usr/bin/env bash
# Issue 13's side by side with DBOS on one PostgreSQL server, as recorded in benches/README.md
# ("Side by side with DBOS"): sagaflow's `cargo bench --bench postgres`, DBOS Python
# (bench.py, in a virtual environment this script makes under /tmp) and DBOS Rust (the package
# benches/dbos-rust), alternating, PASSES times (2 by default). About 5 minutes on a quiet machine.
#
#   bash benches/dbos/run.sh 2>&1 | tee dbos-results.txt
#
# SAGAFLOW_PG_URL names the server for sagaflow (default: the local one, database test; trust
# auth, user postgres). DBOS gets a database of its own on the same server, dbos_bench, made
# here and dropped at the end (DBOS migrates its schema `dbos` into it).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
passes=${PASSES:-2}
host=127.0.0.1 port=5432 user=postgres db=dbos_bench
dbos_url_py="postgresql://$user@$host:$port/$db"
dbos_url_rs="postgres://$user@$host:$port/$db"
venv=${DBOS_VENV:-/tmp/sagaflow-dbos-venv}
# Pinned so that reruns measure the same DBOS; the version the figures in benches/README.md name.
dbos_py=${DBOS_PY_VERSION:-3.4.0}

if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check "dbos==$dbos_py"

(cd "$root" && cargo bench --bench postgres --no-run --quiet)
# The DBOS Rust package builds into a folder of the workspace's target (CARGO_TARGET_DIR's, if
# set), so that neither build's artefacts disturb the other's.
rust_target=${CARGO_TARGET_DIR:-$root/target}/dbos-rust
(cd "$root/benches/dbos-rust" && CARGO_TARGET_DIR=$rust_target cargo build --release --quiet)
rust_bin=$rust_target/release/dbos-rust-bench

dropdb --if-exists -h "$host" -p "$port" -U "$user" "$db"
createdb -h "$host" -p "$port" -U "$user" "$db"
trap 'dropdb --if-exists -h "$host" -p "$port" -U "$user" "$db"' EXIT

echo "machine: $(nproc) cores, $(uname -sr), $(rustc --version), Python $("$venv/bin/python" -c 'import platform; print(platform.python_version())'), dbos (PyPI) $dbos_py"
psql -h "$host" -p "$port" -U "$user" -d "$db" -Atc "SELECT version()" | sed 's/^/server: /'
for pass in $(seq 1 "$passes"); do
  echo "=== pass $pass: sagaflow (cargo bench --bench postgres)"
  (cd "$root" && cargo bench --bench postgres --quiet 2>/dev/null)
  echo "=== pass $pass: DBOS Python"
  DBOS_BENCH_URL=$dbos_url_py "$venv/bin/python" "$here/bench.py"
  echo "=== pass $pass: DBOS Rust"
  DBOS_BENCH_URL=$dbos_url_rs "$rust_bin"
done
