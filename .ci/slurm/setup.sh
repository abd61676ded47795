#!/usr/bin/env bash
# Starts a one-node Slurm cluster on this machine for the cluster tests, without systemd.
#
# Installs Debian's slurm-wlm and munge if missing, writes a slurm.conf whose only node is
# this host (addressed as 127.0.0.1), starts munged, slurmctld and slurmd as plain daemons and
# waits until `sbatch --wrap hostname` runs a job. Idempotent: a running cluster is left alone.
# Needs root (apt, /etc/slurm, daemons). `.ci/slurm/teardown.sh` stops it again.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

STATE_DIR=${SLURM_CI_STATE_DIR:-/var/lib/taskscope-ci-slurm}
CONF=/etc/slurm/slurm.conf

if [ "$(id -u)" != "0" ]; then
    echo "setup.sh: needs root (installs packages and starts daemons)" >&2
    exit 1
fi

if ! command -v slurmctld >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
    apt-get update -q
    apt-get install -y -q slurm-wlm munge
fi

if pgrep -x slurmd >/dev/null && pgrep -x slurmctld >/dev/null && sinfo -h -o %T 2>/dev/null | grep -qE "idle|mixed|alloc"; then
    echo "setup.sh: slurm already running"
    exit 0
fi

mkdir -p "$STATE_DIR"/{ctld,d,log} /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
chmod 0755 /run/munge

# munge: the package ships a key; create one if it does not (e.g. a minimal image).
if [ ! -s /etc/munge/munge.key ]; then
    mungekey --create --keyfile /etc/munge/munge.key 2>/dev/null \
        || dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key
if ! pgrep -u munge -x munged >/dev/null; then
    runuser -u munge -- /usr/sbin/munged --force
fi
munge -n | unmunge >/dev/null

# The node's real shape, as slurmd sees it; the node name must be this host's short name.
NODE_LINE=$(slurmd -C | head -1)
NODE_NAME=$(hostname -s)
CPUS=$(echo "$NODE_LINE" | sed -n 's/.* CPUs=\([0-9]*\).*/\1/p')
# Leave a little memory unclaimed so slurmd never rejects the node for having less than declared.
REAL_MEM=$(echo "$NODE_LINE" | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
REAL_MEM=$(( REAL_MEM * 9 / 10 ))

mkdir -p /etc/slurm
cat > "$CONF" <<CONF
# Written by .ci/slurm/setup.sh: a one-node test cluster on localhost.
ClusterName=taskscope-ci
SlurmctldHost=${NODE_NAME}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=${STATE_DIR}/ctld
SlurmdSpoolDir=${STATE_DIR}/d
SlurmctldPidFile=${STATE_DIR}/slurmctld.pid
SlurmdPidFile=${STATE_DIR}/slurmd.pid
SlurmctldLogFile=${STATE_DIR}/log/slurmctld.log
SlurmdLogFile=${STATE_DIR}/log/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
# No cgroup plugins: the container has no systemd to delegate cgroups from.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MpiDefault=none
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=60
KillWait=5
Waittime=0
NodeName=${NODE_NAME} NodeAddr=127.0.0.1 CPUs=${CPUS} RealMemory=${REAL_MEM} State=UNKNOWN
PartitionName=debug Nodes=${NODE_NAME} Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
# Slurm 22.05 has no "disabled" cgroup plugin; with no cgroup.conf and no cgroup plugins in
# slurm.conf, slurmd only probes the v1 hierarchy and never creates cgroups.
rm -f /etc/slurm/cgroup.conf

pgrep -x slurmctld >/dev/null || /usr/sbin/slurmctld -f "$CONF"
pgrep -x slurmd >/dev/null || /usr/sbin/slurmd -f "$CONF"

for _ in $(seq 1 60); do
    if sinfo -h -o %T 2>/dev/null | grep -qE "^(idle|mixed|allocated)"; then
        break
    fi
    sleep 0.5
done
scontrol update NodeName="$NODE_NAME" State=RESUME >/dev/null 2>&1 || true

OUT=$(mktemp)
JOB=$(sbatch --parsable --output="$OUT" --wrap hostname)
for _ in $(seq 1 60); do
    [ -s "$OUT" ] && break
    sleep 0.5
done
if [ "$(cat "$OUT")" != "$(hostname)" ] && [ "$(cat "$OUT")" != "$NODE_NAME" ]; then
    echo "setup.sh: test job $JOB did not run; state:" >&2
    sinfo >&2; squeue >&2; tail -20 "$STATE_DIR"/log/*.log >&2
    exit 1
fi
rm -f "$OUT"
echo "setup.sh: slurm up on ${NODE_NAME} (${CPUS} CPUs); test job ${JOB} ran"
