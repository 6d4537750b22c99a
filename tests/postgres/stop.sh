#!/usr/bin/env bash
# Stop the server tests/postgres/start.sh started (pg_ctl on its data folder; never by process name).
#   PG_DIR=/tmp/hwnas-pg tests/postgres/stop.sh
set -uo pipefail
: "${PG_DIR:?set PG_DIR to the folder given to start.sh}"
pid_file=$PG_DIR/data/postmaster.pid
[ -s "$pid_file" ] || exit 0
p=$(head -n 1 "$pid_file")
kill -0 "$p" 2>/dev/null || exit 0
kill -INT "$p"  # PostgreSQL's "fast" shutdown: roll back open transactions, then exit
for _ in $(seq 40); do kill -0 "$p" 2>/dev/null || break; sleep 0.25; done
if kill -0 "$p" 2>/dev/null; then kill -9 "$p"; echo "killed postgres $p"; else echo "stopped postgres $p"; fi
exit 0
