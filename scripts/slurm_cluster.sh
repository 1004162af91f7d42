#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, to try (and test) the submitit_slurm path.
# Usage: sudo scripts/slurm_cluster.sh start|stop|status
#   then: python scripts/train.py -m hydra/launcher=slurm hydra.launcher.partition=debug loss=square,ce
# Needs root and Debian's packages: apt-get install -y slurm-wlm munge slurmdbd mariadb-server
# It writes /etc/slurm/slurm.conf and slurmdbd.conf (refusing to replace files it did not
# write) and starts munged, MariaDB, slurmdbd, slurmctld and slurmd. slurmdbd keeps job
# accounting, which submitit reads with `sacct` (without it, every poll logs a warning);
# without slurmdbd/MariaDB the cluster runs with accounting off. State and logs go to
# $SLURM_STATE (default /var/tmp/mlrefresh-slurm).
set -euo pipefail

STATE=${SLURM_STATE:-/var/tmp/mlrefresh-slurm}
CONF=/etc/slurm/slurm.conf
DBD_CONF=/etc/slurm/slurmdbd.conf
MARK="# written by mlrefresh scripts/slurm_cluster.sh"

die() { echo "slurm_cluster: $*" >&2; exit 2; }

ours() {  # refuse to overwrite a configuration this script did not write
  if [ -e "$1" ] && ! grep -qF "$MARK" "$1"; then
    die "$1 exists and was not written by this script; move it away first"
  fi
}

accounting() {  # MariaDB + slurmdbd, when installed; sets STORAGE, the slurm.conf lines
  STORAGE="AccountingStorageType=accounting_storage/none"
  if ! command -v slurmdbd >/dev/null || ! command -v mariadbd >/dev/null; then
    return
  fi
  ours "$DBD_CONF"
  if ! mysqladmin ping >/dev/null 2>&1; then
    if ! /etc/init.d/mariadb start </dev/null >/dev/null 2>&1; then
      echo "slurm_cluster: MariaDB did not start; running without accounting" >&2
      return
    fi
  fi
  if [ ! -e "$STATE/state/job_state" ]; then
    # slurmctld starts numbering jobs at 1 again: old accounting records with the same ids
    # would tell submitit (sacct) that a new job had long finished, so start those afresh too
    pkill -x slurmdbd 2>/dev/null && sleep 2
    mysql -e "DROP DATABASE IF EXISTS slurm_acct_db;"
  fi
  mysql -e "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurm';
            GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"
  cat > "$DBD_CONF" <<DBD
$MARK
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
LogFile=$STATE/slurmdbd.log
PidFile=$STATE/slurmdbd.pid
DBD
  chmod 600 "$DBD_CONF"
  pgrep -x slurmdbd >/dev/null || slurmdbd </dev/null >/dev/null 2>&1
  for _ in $(seq 1 30); do
    sacctmgr -n list cluster >/dev/null 2>&1 && break
    sleep 1
  done
  sacctmgr -i add cluster mlrefresh >/dev/null 2>&1 || true
  STORAGE="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost"
}

write_conf() {
  local host cpus mem
  host=$(hostname -s)
  cpus=$(nproc)
  mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
  ours "$CONF"
  mkdir -p /etc/slurm "$STATE/state" "$STATE/spool"
  accounting
  cat > "$CONF" <<CONF
$MARK
ClusterName=mlrefresh
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/state
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
$STORAGE
SchedulerParameters=defer_batch
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
}

start() {
  [ "$(id -u)" = 0 ] || die "run as root (sudo): it starts SLURM's daemons"
  command -v slurmctld >/dev/null || die "slurm-wlm is not installed; apt-get install -y slurm-wlm munge"
  mkdir -p /run/munge /var/lib/munge /var/log/munge
  chown -R munge:munge /run/munge /var/lib/munge /var/log/munge /etc/munge 2>/dev/null || true
  [ -s /etc/munge/munge.key ] || (mungekey --create 2>/dev/null || create-munge-key -f) >/dev/null
  pgrep -x munged >/dev/null || su -s /bin/sh munge -c munged || munged --force
  write_conf
  pgrep -x slurmctld >/dev/null || slurmctld
  pgrep -x slurmd >/dev/null || slurmd
  for _ in $(seq 1 30); do
    if sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
      # a job must run, not only the node be idle: else stop, so that tests skip
      if ! timeout 60 srun -N1 -t 1 true >/dev/null 2>&1; then
        stop >/dev/null
        die "the node is up but a test job (srun true) did not run; see $STATE/slurmd.log"
      fi
      echo "slurm_cluster: up: $(sinfo -h -o '%P %D node(s) %c CPUs %T')"
      return 0
    fi
    sleep 1
  done
  die "the node did not come up; see $STATE/slurmctld.log and $STATE/slurmd.log"
}

stop() {
  for d in slurmd slurmctld slurmdbd; do pkill -x "$d" 2>/dev/null || true; done
  echo "slurm_cluster: stopped (munged and MariaDB left running)"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) sinfo ;;
  *) die "usage: $0 start|stop|status" ;;
esac
