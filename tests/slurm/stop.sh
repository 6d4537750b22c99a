#!/usr/bin/env bash
# Stop the daemons tests/slurm/start.sh started, by the PIDs in their pid files (never by name).
#   SLURM_DIR=/tmp/hwnas-slurm tests/slurm/stop.sh
set -uo pipefail
: "${SLURM_DIR:?set SLURM_DIR to the folder given to start.sh}"
export SLURM_CONF=$SLURM_DIR/slurm.conf
[ -f "$SLURM_CONF" ] && scancel --user="$(id -un)" 2>/dev/null   # queued or running test jobs
for f in "$SLURM_DIR/run/slurmd.pid" "$SLURM_DIR/run/slurmctld.pid" "$SLURM_DIR/run/slurmdbd.pid" \
         "$SLURM_DIR/mysql/mariadb.pid" "$SLURM_DIR/munge/munged.pid"; do
  [ -s "$f" ] || continue
  p=$(cat "$f")
  kill -0 "$p" 2>/dev/null || continue
  kill "$p"
  for _ in $(seq 60); do kill -0 "$p" 2>/dev/null || break; sleep 0.25; done
  if kill -0 "$p" 2>/dev/null; then kill -9 "$p"; echo "killed $p ($f)"; else echo "stopped $p ($f)"; fi
done
exit 0
