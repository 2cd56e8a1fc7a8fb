#!/usr/bin/env bash
# The whole measurement of issue 13, as recorded in benches/README.md: builds the program, starts
# a PgBouncer in transaction mode in front of the server when `pgbouncer` is installed (Debian's
# package; the check is skipped without it), runs the program (about 3 minutes), stops PgBouncer.
#
#   bash benches/pg-client/run.sh > results.md
#
# SAGAFLOW_PG_URL names the server (default postgres://postgres@127.0.0.1:5432/test; the
# PgBouncer settings below assume that one: trust auth, user postgres, database test).
set -euo pipefail
cd "$(dirname "$0")"
url=${SAGAFLOW_PG_URL:-postgres://postgres@127.0.0.1:5432/test}
cargo build --release --quiet

bouncer_pid=
if command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ]; then
  pgbouncer=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)
  dir=$(mktemp -d)
  cat >"$dir/pgbouncer.ini" <<EOF
[databases]
; Every database name goes to the server's database test, each name with a pool of its own (the
; program runs each way of sending statements on a name of its own).
* = host=127.0.0.1 port=5432 dbname=test user=postgres

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = 6432
unix_socket_dir =
auth_type = trust
auth_file = $dir/userlist.txt
pool_mode = transaction
default_pool_size = 2
max_client_conn = 200
ignore_startup_parameters = extra_float_digits,options
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
EOF
  echo '"postgres" ""' >"$dir/userlist.txt"
  # PgBouncer refuses to run as root.
  if [ "$(id -u)" = 0 ]; then
    chown -R postgres "$dir"
    runuser -u postgres -- "$pgbouncer" -d "$dir/pgbouncer.ini"
  else
    "$pgbouncer" -d "$dir/pgbouncer.ini"
  fi
  for _ in $(seq 50); do [ -s "$dir/pgbouncer.pid" ] && break; sleep 0.1; done
  bouncer_pid=$(cat "$dir/pgbouncer.pid")
  trap 'kill "$bouncer_pid" 2>/dev/null || true' EXIT
  echo "PgBouncer $("$pgbouncer" --version | head -1 | cut -d' ' -f2), pool_mode = transaction, default_pool_size = 2, on 127.0.0.1:6432" >&2
  export SAGAFLOW_PGBOUNCER_URL=postgres://postgres@127.0.0.1:6432/test
fi

SAGAFLOW_PG_URL=$url "${CARGO_TARGET_DIR:-target}/release/sagaflow-pg-client-bench"
