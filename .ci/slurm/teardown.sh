#!/usr/bin/env bash
# Stops the one-node Slurm cluster started by .ci/slurm/setup.sh (jobs first, then daemons).
set -uo pipefail
STATE_DIR=${SLURM_CI_STATE_DIR:-/var/lib/taskscope-ci-slurm}

command -v scancel >/dev/null 2>&1 && scancel --user="$(id -un)" 2>/dev/null

stop_by_pidfile() {
    local pidfile=$1 name=$2
    [ -f "$pidfile" ] || return 0
    local pid
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    fi
    rm -f "$pidfile"
    echo "teardown.sh: stopped $name"
}
stop_by_pidfile "$STATE_DIR/slurmd.pid" slurmd
stop_by_pidfile "$STATE_DIR/slurmctld.pid" slurmctld
stop_by_pidfile /run/munge/munged.pid munged
# Forget saved job state so the next setup starts clean.
rm -rf "$STATE_DIR/ctld" "$STATE_DIR/d"
exit 0
