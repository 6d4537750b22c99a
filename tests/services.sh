#!/usr/bin/env bash
# The real services hwnas's storage and launcher tests run against: a PostgreSQL server and a one-node
# Slurm cluster with accounting (munged, MariaDB, slurmdbd, slurmctld, slurmd), all on 127.0.0.1; and
# the headless Chromium the report.html test renders the report in (installed only: nothing to start).
#
#   tests/services.sh install   # Debian/Ubuntu packages, as root (idempotent; skipped when present)
#   tests/services.sh start     # both services under $HWNAS_SERVICES_DIR (default /tmp/hwnas-services)
#   source /tmp/hwnas-services/env   # HWNAS_TEST_PG_URL, HWNAS_TEST_SLURM_CONF: the tests read these
#   tests/services.sh stop      # stops every daemon it started, by PID
#
# `make services` is install + start. Every file (data, config, sockets, logs, pid files) lives under
# $HWNAS_SERVICES_DIR; system services of the same kind, if any, are left alone. Ports (env): PG_PORT
# (55432), SLURM_CTLD_PORT (16817), SLURMD_PORT (16818), SLURMDBD_PORT (16819), SLURM_MYSQL_PORT (13306).
# A service that does not come up makes `start` fail with its log: CI must never run without them.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
case "${1:-}" in install | start | stop) ;; *) echo "usage: $0 install|start|stop" >&2; exit 2 ;; esac
if [ "$(id -u)" != 0 ]; then  # the Slurm daemons and apt need root: sudo where it needs no password
  sudo -n true 2>/dev/null || { echo "services: $0 $1 needs root (sudo $0 $1)" >&2; exit 2; }
  exec sudo -n --preserve-env=HWNAS_SERVICES_DIR,PG_PORT,SLURM_CTLD_PORT,SLURMD_PORT,SLURMDBD_PORT,SLURM_MYSQL_PORT,SLURM_PARTITION \
    bash "$0" "$@"
fi
DIR=${HWNAS_SERVICES_DIR:-/tmp/hwnas-services}
PACKAGES=(postgresql slurm-wlm slurmdbd munge mariadb-server chromium)
export PG_DIR=$DIR/postgres SLURM_DIR=$DIR/slurm
export PG_PORT=${PG_PORT:-55432} SLURM_CTLD_PORT=${SLURM_CTLD_PORT:-16817} SLURMD_PORT=${SLURMD_PORT:-16818}
export SLURMDBD_PORT=${SLURMDBD_PORT:-16819} SLURM_MYSQL_PORT=${SLURM_MYSQL_PORT:-13306}
export SLURM_PARTITION=${SLURM_PARTITION:-hwnastest}

install() {
  local missing=() p
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} = 0 ]; then echo "services: packages present (${PACKAGES[*]})"; return; fi
  # Packages must not start their system-wide daemons (ports 5432, 3306, 6817-6819): ours run privately.
  local policy=/usr/sbin/policy-rc.d added=0
  if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy" && added=1; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q -o Acquire::Retries=3 \
    && apt-get install -y -q --no-install-recommends -o Acquire::Retries=3 "${missing[@]}" \
    || { [ $added = 0 ] || rm -f "$policy"; echo "services: apt-get install ${missing[*]} failed" >&2; exit 1; }
  [ $added = 0 ] || rm -f "$policy"
  echo "services: installed ${missing[*]}"
}

start() {
  mkdir -p "$DIR" && chmod 755 "$DIR"
  bash "$HERE/postgres/start.sh"
  bash "$HERE/slurm/start.sh"
  cat > "$DIR/env" <<ENV
# written by tests/services.sh start; source it before running the tests
export HWNAS_TEST_PG_URL='$(cat "$PG_DIR/url")'
export HWNAS_TEST_SLURM_CONF='$SLURM_DIR/slurm.conf'
ENV
  echo "services: up; run: source $DIR/env"
}

stop() {
  [ ! -d "$SLURM_DIR" ] || bash "$HERE/slurm/stop.sh"
  [ ! -d "$PG_DIR" ] || bash "$HERE/postgres/stop.sh"
  rm -f "$DIR/env"
}

"$1"
