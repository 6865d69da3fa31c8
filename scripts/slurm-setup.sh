#!/usr/bin/env bash
# Installs and starts a single-node Slurm (Debian's slurmctld, slurmd, slurm-client and
# munge) on this machine, for `repro run --executor slurm` and its integration tests.
#
# Idempotent: packages already installed are not installed again, the configuration is
# rewritten only when it differs, and daemons already running are left running (pass
# --restart to restart them after a configuration change). Needs root. No systemd is
# assumed: the daemons are started directly.
#
# Usage: scripts/slurm-setup.sh [--restart]
set -euo pipefail

restart=0
[ "${1:-}" = "--restart" ] && restart=1

if [ "$(id -u)" -ne 0 ]; then
  echo "slurm-setup.sh: must run as root (it installs packages and starts daemons)" >&2
  exit 2
fi

missing=()
for cmd in slurmctld slurmd sbatch munged; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
done
if [ "${#missing[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q slurmctld slurmd slurm-client munge
fi

host=$(hostname)
cpus=$(nproc)

mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/slurm

conf=$(cat <<EOF
# Written by repro's scripts/slurm-setup.sh: a single-node cluster for tests.
ClusterName=repro
SlurmctldHost=${host}
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
MpiDefault=none
# Quick turnaround for a test cluster: jobs over their limit end at once, and a job
# that a scancel or requeue ends is reported within seconds.
KillWait=5
OverTimeLimit=0
MinJobAge=30
# A requeued job may start again after the credential lifetime (default 120 s).
AuthInfo=cred_expire=10
SchedulerType=sched/backfill
NodeName=${host} CPUs=${cpus} RealMemory=20000 State=UNKNOWN
PartitionName=main Nodes=${host} Default=YES MaxTime=INFINITE State=UP
EOF
)
cgroup="CgroupPlugin=autodetect
IgnoreSystemd=yes"

changed=0
write_if_changed() { # path content
  if [ ! -f "$1" ] || [ "$(cat "$1")" != "$2" ]; then
    printf '%s\n' "$2" >"$1"
    changed=1
  fi
}
write_if_changed /etc/slurm/slurm.conf "$conf"
write_if_changed /etc/slurm/cgroup.conf "$cgroup"

# munge: a key, its run folder, and the daemon started as the munge user.
if [ ! -s /etc/munge/munge.key ]; then
  mkdir -p /etc/munge
  dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
fi
chown munge:munge /etc/munge/munge.key
chmod 400 /etc/munge/munge.key
mkdir -p /run/munge /var/lib/munge /var/log/munge
chown munge:munge /run/munge /var/lib/munge /var/log/munge /etc/munge
chmod 755 /run/munge
if ! pgrep -x munged >/dev/null; then
  su -s /bin/sh munge -c /usr/sbin/munged
fi

running() { pgrep -x "$1" >/dev/null; }
stop() { # daemon
  local pid
  for pid in $(pgrep -x "$1"); do kill "$pid"; done
  for _ in $(seq 50); do running "$1" || return 0; sleep 0.1; done
}
if [ "$restart" -eq 1 ] || [ "$changed" -eq 1 ]; then
  running slurmd && stop slurmd
  running slurmctld && stop slurmctld
fi
running slurmctld || slurmctld
running slurmd || slurmd

# Wait for the node to come up, then make sure it takes jobs.
up=0
for _ in $(seq 60); do
  state=$(sinfo -h -N -o '%T' 2>/dev/null | head -1 || true)
  case "$state" in
    idle* | mixed* | allocated* | completing*) up=1; break ;;
    down* | drain*) scontrol update NodeName="$host" State=RESUME >/dev/null 2>&1 || true ;;
  esac
  sleep 0.5
done
sinfo
if [ "$up" -ne 1 ]; then
  echo "slurm-setup.sh: node $host did not come up (state: ${state:-unknown}); see /var/log/slurm/slurmctld.log and /var/log/slurm/slurmd.log" >&2
  exit 1
fi
