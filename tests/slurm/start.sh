#!/usr/bin/env bash
# Start a throw-away single-node Slurm cluster with accounting on localhost for hwnas's launcher tests
# (run as root):
#
#   SLURM_DIR=/tmp/hwnas-slurm tests/slurm/start.sh
#   export SLURM_CONF=/tmp/hwnas-slurm/slurm.conf   # for sbatch/squeue/sacct and the submitting Python process
#
# Daemons: munged (as user munge), MariaDB (as user mysql, 127.0.0.1 only), slurmdbd, slurmctld, slurmd.
# Everything (config, state, spool, database, sockets, logs, pid files) lives under $SLURM_DIR, so
# system daemons of the same kind, if any, are left alone. Accounting makes sacct work: a job killed hard
# (OOM, SIGKILL) is reported FAILED to submitit instead of leaving the launch waiting forever.
# Knobs (env): SLURM_PARTITION (debug), SLURM_CPUS (nproc), SLURM_MEM_MB (4000), SLURM_CTLD_PORT (6817),
# SLURMD_PORT (6818), SLURMDBD_PORT (6819), SLURM_MYSQL_PORT (3307). Idempotent: daemons already running
# from $SLURM_DIR are kept. Stop with tests/slurm/stop.sh.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
: "${SLURM_DIR:?set SLURM_DIR to a writable folder, e.g. /tmp/hwnas-slurm}"
for exe in munged munge slurmctld slurmd slurmdbd sinfo sacctmgr mariadbd mariadb-install-db mariadb; do
  command -v "$exe" >/dev/null || [ -x "/usr/sbin/$exe" ] || {
    echo "missing $exe: apt-get install -y --no-install-recommends slurm-wlm slurmdbd munge mariadb-server" >&2
    exit 2
  }
done
[ "$(id -u)" = 0 ] || { echo "start.sh must run as root (the daemons and munged's key need it)" >&2; exit 2; }

mkdir -p "$SLURM_DIR"/{state,spool,log,run,munge,mysql}
SLURM_DIR=$(cd "$SLURM_DIR" && pwd)
chmod 755 "$SLURM_DIR"  # munged and MariaDB run as their own users and must reach their folders
export SLURM_CONF=$SLURM_DIR/slurm.conf
[ -s "$SLURM_DIR/mysql.password" ] \
  || (umask 077 && od -An -tx1 -N12 /dev/urandom | tr -d ' \n' > "$SLURM_DIR/mysql.password")
MYSQL_PORT=${SLURM_MYSQL_PORT:-3307}
render() {
  sed -e "s|@SLURM_DIR@|$SLURM_DIR|g" \
      -e "s|@PARTITION@|${SLURM_PARTITION:-debug}|g" \
      -e "s|@CPUS@|${SLURM_CPUS:-$(nproc)}|g" \
      -e "s|@MEM_MB@|${SLURM_MEM_MB:-4000}|g" \
      -e "s|@CTLD_PORT@|${SLURM_CTLD_PORT:-6817}|g" \
      -e "s|@SLURMD_PORT@|${SLURMD_PORT:-6818}|g" \
      -e "s|@DBD_PORT@|${SLURMDBD_PORT:-6819}|g" \
      -e "s|@MYSQL_PORT@|$MYSQL_PORT|g" \
      -e "s|@MYSQL_PASSWORD@|$(cat "$SLURM_DIR/mysql.password")|g" \
      "$1"
}
render "$HERE/slurm.conf.in" > "$SLURM_CONF"
(umask 077 && render "$HERE/slurmdbd.conf.in" > "$SLURM_DIR/slurmdbd.conf")  # slurmdbd wants it private
running() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
fail() { echo "$1; logs:" >&2; shift; tail -n 20 "$@" >&2 || true; exit 1; }
within() {  # within <seconds> <command...>: retry the command until it succeeds or the time is up
  local end=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do [ $SECONDS -lt $end ] || return 1; sleep 0.25; done
}
node_up() { sinfo -h -N -o '%T' | grep -q -E '^(idle|mixed|allocated)'; }
t0=$(date +%s.%N)

# munge: a private daemon (own socket, pid file, log), the packaged key; runs as user munge.
chown munge:munge "$SLURM_DIR/munge" && chmod 700 "$SLURM_DIR/munge"
MUNGE_SOCKET=$SLURM_DIR/munge/munge.socket.2
if [ ! -S "$MUNGE_SOCKET" ] || ! munge -S "$MUNGE_SOCKET" -n </dev/null >/dev/null 2>&1; then
  runuser -u munge -- /usr/sbin/munged --socket="$MUNGE_SOCKET" \
    --pid-file="$SLURM_DIR/munge/munged.pid" --log-file="$SLURM_DIR/munge/munged.log" \
    --seed-file="$SLURM_DIR/munge/munged.seed" --force
fi
munge -S "$MUNGE_SOCKET" -n </dev/null | unmunge -S "$MUNGE_SOCKET" >/dev/null

# MariaDB for slurmdbd: its own data folder, TCP on 127.0.0.1 only, none of the system's option files.
DB=$SLURM_DIR/mysql
MYSQL_SOCKET=$DB/mysqld.sock
chown mysql:mysql "$DB" && chmod 750 "$DB"
if [ ! -d "$DB/data/mysql" ]; then
  mariadb-install-db --no-defaults --user=mysql --datadir="$DB/data" --skip-test-db \
    >"$SLURM_DIR/log/mariadb-install.log" 2>&1 || fail "mariadb-install-db failed" "$SLURM_DIR/log/mariadb-install.log"
fi
if ! running "$DB/mariadb.pid"; then
  # mariadbd stays in the foreground: detach it, with no inherited output pipe that a caller would wait on
  setsid /usr/sbin/mariadbd --no-defaults --user=mysql --datadir="$DB/data" --socket="$MYSQL_SOCKET" \
    --pid-file="$DB/mariadb.pid" --bind-address=127.0.0.1 --port="$MYSQL_PORT" --skip-name-resolve \
    --log-error="$DB/mariadb.err" --innodb-buffer-pool-size=64M </dev/null >/dev/null 2>&1 &
fi
within 60 mariadb-admin --no-defaults --socket="$MYSQL_SOCKET" ping || fail "MariaDB did not come up" "$DB/mariadb.err"
# root@localhost authenticates by unix socket (we are root): no root password anywhere
mariadb --no-defaults --socket="$MYSQL_SOCKET" -u root <<SQL
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1';
ALTER USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$(cat "$SLURM_DIR/mysql.password")';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
SQL

running "$SLURM_DIR/run/slurmdbd.pid" || /usr/sbin/slurmdbd   # reads slurmdbd.conf beside $SLURM_CONF; forks
within 60 sacctmgr -n list cluster || fail "slurmdbd did not come up" "$SLURM_DIR/log/slurmdbd.log"

running "$SLURM_DIR/run/slurmctld.pid" || /usr/sbin/slurmctld -f "$SLURM_CONF"   # forks
running "$SLURM_DIR/run/slurmd.pid" || /usr/sbin/slurmd -f "$SLURM_CONF" -N localhost  # -N: whatever `hostname` says
within 60 node_up || fail "the node did not come up" "$SLURM_DIR"/log/slurm*.log
# slurmctld registers the cluster with slurmdbd; sacct answering proves the accounting path end to end
within 60 sacct -n -X || fail "sacct does not answer" "$SLURM_DIR"/log/slurm*.log
echo "Slurm (with accounting) up in $(awk "BEGIN {print $(date +%s.%N) - $t0}") s; export SLURM_CONF=$SLURM_CONF"
sinfo
