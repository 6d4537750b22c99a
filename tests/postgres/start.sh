#!/usr/bin/env bash
# Start a throw-away PostgreSQL server for hwnas's shared-storage tests: its own data folder, TCP on
# 127.0.0.1 only, durability off (fsync) because nothing in it outlives the tests.
#
#   PG_DIR=/tmp/hwnas-pg tests/postgres/start.sh      # as root (runs the server as user postgres) or any user
#
# Writes $PG_DIR/url: postgresql://hwnas:<password>@127.0.0.1:<port>/postgres, a role that may create
# databases (the tests make a fresh one per test). Knobs (env): PG_PORT (55432). Idempotent: a server
# already running in $PG_DIR is kept. Needs the server binaries (Debian: apt-get install postgresql).
# Stop with tests/postgres/stop.sh.
set -euo pipefail
: "${PG_DIR:?set PG_DIR to a writable folder, e.g. /tmp/hwnas-pg}"
PORT=${PG_PORT:-55432}
if command -v initdb >/dev/null; then
  BIN=$(dirname "$(readlink -f "$(command -v initdb)")")
else  # Debian/Ubuntu keep the server binaries off PATH, one folder per major version
  BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
fi
[ -x "$BIN/initdb" ] && [ -x "$BIN/pg_ctl" ] || {
  echo "missing PostgreSQL server binaries (initdb, pg_ctl): apt-get install -y postgresql" >&2; exit 2; }
if [ "$(id -u)" = 0 ]; then
  OWNER=postgres  # the server refuses to run as root
  id "$OWNER" >/dev/null 2>&1 || { echo "no user '$OWNER' to run the server as" >&2; exit 2; }
  as_owner() { runuser -u "$OWNER" -- "$@"; }
else
  OWNER=$(id -un)
  as_owner() { "$@"; }
fi
t0=$(date +%s.%N)
mkdir -p "$PG_DIR"
PG_DIR=$(cd "$PG_DIR" && pwd)
chmod 755 "$PG_DIR"
mkdir -p "$PG_DIR/run" "$PG_DIR/log"
chown "$OWNER" "$PG_DIR/run" "$PG_DIR/log"
chmod 700 "$PG_DIR/run"  # the socket (trust auth for the owner) is reachable only by the owner
if [ ! -s "$PG_DIR/data/PG_VERSION" ]; then
  rm -rf "$PG_DIR/data"
  install -d -m 700 -o "$OWNER" "$PG_DIR/data"
  as_owner "$BIN/initdb" -D "$PG_DIR/data" -U postgres -E UTF8 --locale=C.UTF-8 \
    --auth-local=trust --auth-host=scram-sha-256 >"$PG_DIR/log/initdb.log" 2>&1 \
    || { tail -n 20 "$PG_DIR/log/initdb.log" >&2; exit 1; }
fi
[ -s "$PG_DIR/password" ] || (umask 077 && od -An -tx1 -N12 /dev/urandom | tr -d ' \n' > "$PG_DIR/password")
PASSWORD=$(cat "$PG_DIR/password")

if ! as_owner "$BIN/pg_ctl" -D "$PG_DIR/data" status >/dev/null 2>&1; then
  as_owner "$BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log/postgresql.log" -w -t 60 start -o \
    "-c listen_addresses=127.0.0.1 -c port=$PORT -c unix_socket_directories=$PG_DIR/run \
     -c fsync=off -c synchronous_commit=off -c full_page_writes=off" >/dev/null \
    || { echo "PostgreSQL did not start; log:" >&2; tail -n 20 "$PG_DIR/log/postgresql.log" >&2; exit 1; }
fi
PORT=$(sed -n 4p "$PG_DIR/data/postmaster.pid")  # the port the running server listens on
as_owner "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_DIR/run" -p "$PORT" -U postgres -d postgres <<SQL
SELECT 'CREATE ROLE hwnas LOGIN CREATEDB' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'hwnas')
\gexec
ALTER ROLE hwnas PASSWORD '$PASSWORD';
SQL
URL="postgresql://hwnas:$PASSWORD@127.0.0.1:$PORT/postgres"
"$BIN/psql" -X -q -d "$URL" -c 'SELECT 1' >/dev/null \
  || { echo "PostgreSQL is up but refuses the hwnas role over TCP" >&2; exit 1; }
echo "$URL" > "$PG_DIR/url"
echo "PostgreSQL up in $(awk "BEGIN {print $(date +%s.%N) - $t0}") s on 127.0.0.1:$PORT (URL in $PG_DIR/url)"
