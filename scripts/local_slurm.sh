#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for the launcher's tests and for trying `LAUNCHER=slurm`:
# munged, slurmctld and slurmd on localhost, the machine's CPUs as the node's, no accounting database.
#   scripts/local_slurm.sh            install (Debian slurm-wlm, munge) if missing, start, wait for an idle node
#   scripts/local_slurm.sh --no-install   start only (exit 1 if the packages are missing)
#   scripts/local_slurm.sh --stop     stop the daemons it started
# Needs root (Debian's daemons and /etc/slurm/slurm.conf). It never replaces a slurm.conf it did not write.
set -euo pipefail

CONF=/etc/slurm/slurm.conf
MARK="# written by projlab scripts/local_slurm.sh"
STATE=/var/lib/projlab-slurm          # spool, state, logs and pid files of this cluster
PACKAGES=(slurm-wlm munge)

say() { echo "local_slurm: $*"; }

stop() {
    for pidfile in "$STATE/slurmd.pid" "$STATE/slurmctld.pid"; do
        [[ -f $pidfile ]] && kill "$(cat "$pidfile")" 2>/dev/null || true
    done
    say "stopped"
}

install() {
    if command -v slurmctld >/dev/null && command -v munged >/dev/null; then return; fi
    if [[ ${1:-} == --no-install ]]; then say "slurm-wlm or munge is not installed"; exit 1; fi
    say "installing ${PACKAGES[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${PACKAGES[@]}" >/dev/null
}

write_conf() {
    if [[ -f $CONF ]] && ! grep -qF "$MARK" "$CONF"; then
        say "$CONF exists and is not this script's; leaving it (and this machine's SLURM) alone"
        exit 1
    fi
    local host cpus
    host=$(hostname -s)
    cpus=$(nproc --all)
    mkdir -p "$STATE/ctld" "$STATE/d" /etc/slurm
    cat > "$CONF" <<EOF
$MARK
ClusterName=projlab
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ReturnToService=2
# a cancelled job's processes get SIGTERM, then SIGKILL after KillWait s: time to record a failed result
KillWait=20
MinJobAge=300
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
    say "wrote $CONF ($host, $cpus CPUs)"
}

alive() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

start() {
    if ! pgrep -x munged >/dev/null; then
        [[ -f /etc/munge/munge.key ]] || runuser -u munge -- mungekey --create
        mkdir -p /run/munge && chown munge:munge /run/munge
        runuser -u munge -- /usr/sbin/munged
    fi
    alive "$STATE/slurmctld.pid" || slurmctld
    alive "$STATE/slurmd.pid" || slurmd
    local node
    node=$(hostname -s)
    for _ in $(seq 60); do
        if [[ $(sinfo -h -n "$node" -o %t 2>/dev/null) == idle ]]; then
            say "node $node idle: $(sinfo -h -o '%P %D %c CPUs' | head -1)"
            return
        fi
        # a node left down by an earlier stop comes back
        scontrol update nodename="$node" state=resume >/dev/null 2>&1 || true
        sleep 1
    done
    say "the node did not become idle in 60 s; see $STATE/slurmctld.log and $STATE/slurmd.log"
    exit 1
}

case "${1:-}" in
    --stop) stop ;;
    *) install "${1:-}"; write_conf; start ;;
esac
