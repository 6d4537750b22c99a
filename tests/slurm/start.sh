#!/usr/bin/env bash
# Start a throw-away single-node Slurm cluster on localhost for hwnas's launcher tests (run as root).
#
#   SLURM_DIR=/tmp/hwnas-slurm tests/slurm/start.sh
#   export SLURM_CONF=/tmp/hwnas-slurm/slurm.conf   # for sbatch/squeue and the submitting Python process
#
# Everything (config, state, spool, logs, pid files) lives under $SLURM_DIR; munged's socket and pid file
# live there too, so a system munged, if any, is left alone. Knobs (env): SLURM_PARTITION (debug),
# SLURM_CPUS (nproc), SLURM_MEM_MB (4000), SLURM_CTLD_PORT (6817), SLURMD_PORT (6818).
# No accounting daemon: sacct does not work, so a job killed hard (OOM, SIGKILL) is never reported as
# failed to submitit; callers put a timeout on what they run. Stop with tests/slurm/stop.sh.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
: "${SLURM_DIR:?set SLURM_DIR to a writable folder, e.g. /tmp/hwnas-slurm}"
for exe in munged slurmctld slurmd sinfo; do
  command -v "$exe" >/dev/null || [ -x "/usr/sbin/$exe" ] || {
    echo "missing $exe: apt-get install -y --no-install-recommends slurm-wlm munge" >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "start.sh must run as root (the daemons and munged's key need it)" >&2; exit 2; }

mkdir -p "$SLURM_DIR"/{state,spool,log,run,munge}
SLURM_DIR=$(cd "$SLURM_DIR" && pwd)
export SLURM_CONF=$SLURM_DIR/slurm.conf
sed -e "s|@SLURM_DIR@|$SLURM_DIR|g" \
    -e "s|@PARTITION@|${SLURM_PARTITION:-debug}|g" \
    -e "s|@CPUS@|${SLURM_CPUS:-$(nproc)}|g" \
    -e "s|@MEM_MB@|${SLURM_MEM_MB:-4000}|g" \
    -e "s|@CTLD_PORT@|${SLURM_CTLD_PORT:-6817}|g" \
    -e "s|@SLURMD_PORT@|${SLURMD_PORT:-6818}|g" \
    "$HERE/slurm.conf.in" > "$SLURM_CONF"
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

/usr/sbin/slurmctld -f "$SLURM_CONF"             # forks; pid in $SLURM_DIR/run/slurmctld.pid
/usr/sbin/slurmd -f "$SLURM_CONF" -N localhost   # -N: the node is "localhost", whatever `hostname` says
for _ in $(seq 60); do
  sinfo -h -N -o '%T' 2>/dev/null | grep -q -E '^(idle|mixed|allocated)' && break
  sleep 0.5
done
if ! sinfo -h -N -o '%T' 2>/dev/null | grep -q -E '^(idle|mixed|allocated)'; then
  echo "the node did not come up; logs:" >&2
  tail -n 20 "$SLURM_DIR"/log/*.log >&2 || true
  exit 1
fi
echo "cluster up in $(awk "BEGIN {print $(date +%s.%N) - $t0}") s; export SLURM_CONF=$SLURM_CONF"
sinfo
