#!/usr/bin/env bash
# A real Slurm cluster on this one machine, from Debian's packages, for sweep's tests and demos.
#
#   slurm/local-cluster.sh up [--no-accounting] [--nodes N]   start it (default: 4 nodes, accounting on)
#   slurm/local-cluster.sh down                               stop everything it started
#   slurm/local-cluster.sh status                             daemons, mode, sinfo; exit 0 iff healthy
#   slurm/local-cluster.sh env                                print the path of the env file
#   slurm/local-cluster.sh stop-daemon|start-daemon slurmctld|slurmdbd   fault injection for tests
#
# Then `source "$(slurm/local-cluster.sh env)"` and use sbatch/srun/squeue/sacct as usual.
#
# What it looks like: nodes gpu01..gpuNN (all on this host, one slurmd each), partition `gpu`,
# each node 2 sockets x 8 cores x 1 thread = 16 CPUs, RealMemory=32000 MB and Gres=gpu:h200:8
# backed by fake NVIDIA character devices (major 195) under the state directory: jobs get
# CUDA_VISIBLE_DEVICES and GPU binding works, but no GPU program can run. CPU binding is accepted,
# not enforced (no task/affinity), except in binding mode (SWEEP_SLURM_SMT=2 below: nodes of this
# host's real CPUs as 2-thread cores, masks and cpusets enforced). With accounting (default), slurmdbd + a private MariaDB give
# `sacct` with steps; with --no-accounting, `sacct -c` reads jobcomp/filetxt (jobs only).
#
# Runs as root, without systemd; installs missing packages with apt-get. Every daemon is started
# directly, with its pid/log/spool files under ${SWEEP_SLURM_DIR:-/tmp/sweep-slurm}, and stopped
# by the PID in its pid file (never by name).
#
# Environment: SWEEP_SLURM_DIR (state directory), SWEEP_SLURM_PORT_BASE (default 16800; uses
# base+6 MariaDB, base+17 slurmctld, base+19 slurmdbd, base+100.. one per slurmd),
# SWEEP_SLURM_FORCE_PROCTRACK=linuxproc (use the no-cgroup mode even where cgroups would work),
# SWEEP_SLURM_SMT=2 (binding mode: each node is this host's real CPUs as cores of 2 hardware
# threads, ThreadsPerCore=2, with task/cgroup ConstrainCores=yes + task/affinity so that CPU
# binding is enforced; needs cgroup mode and an even number of host CPUs),
# SWEEP_SLURM_CONSTRAIN_DEVICES=1 (cgroup.conf ConstrainDevices=yes: a job's processes can open
# only its own GPUs' device files; needs cgroup mode and a writable v1 devices controller),
# SWEEP_SLURM_GPUS (fake GPUs per node: default 8, or 2 with SWEEP_SLURM_SMT=2),
# SWEEP_SLURM_TRACE=1 (print how long each step of `up` took), SWEEP_SLURM_KEEP_ON_FAILURE=1 (a
# failed `up` leaves its daemons running for inspection; by default it stops them).
set -euo pipefail

DIR=${SWEEP_SLURM_DIR:-/tmp/sweep-slurm}
PORT_BASE=${SWEEP_SLURM_PORT_BASE:-16800}
CLUSTER=local
MARKER=.sweep-local-slurm        # file that says the directory is ours (and may be wiped by `up`)
DAEMON_TAG=SWEEP_LOCAL_SLURM_DAEMON

export DEBIAN_FRONTEND=noninteractive
export PATH="$PATH:/usr/sbin:/sbin"

# Layout --------------------------------------------------------------------------------------
ETC=$DIR/etc; RUN=$DIR/run; LOG=$DIR/log; SPOOL=$DIR/spool; TMPD=$DIR/tmp; DEV=$DIR/dev
MUNGE_DIR=$DIR/munge; MUNGE_SOCK=$MUNGE_DIR/munge.socket
DB_DIR=$DIR/db; DB_SOCK=$RUN/mariadb.sock
CONF=$ETC/slurm.conf
ENV_FILE=$DIR/env.sh
PORT_DB=$((PORT_BASE + 6)); PORT_CTLD=$((PORT_BASE + 17)); PORT_DBD=$((PORT_BASE + 19))
PORT_SLURMD=$((PORT_BASE + 100))
DB_PASS=sweep-local-slurm

say() { printf 'local-cluster: %s\n' "$*" >&2; }
die() { printf 'local-cluster: error: %s\n' "$*" >&2; exit 1; }
# Time in microseconds (bash 5's EPOCHREALTIME: no fork, no floating point).
now() { printf '%s' "${EPOCHREALTIME//[.,]/}"; }
elapsed() {  # t0 -> seconds since, one decimal
    local d=$((($(now) - $1) / 100000))
    printf '%d.%d' $((d / 10)) $((d % 10))
}

T_START=${EPOCHREALTIME//[.,]/}
trace() { [[ -z ${SWEEP_SLURM_TRACE:-} ]] || printf 'local-cluster: [%s s] %s\n' "$(elapsed "$T_START")" "$*" >&2; }

node_name() { printf 'gpu%02d' "$1"; }
node_list() {  # hostlist expression of nodes 1..N
    local n=$1
    if ((n == 1)); then printf 'gpu01'; else printf 'gpu[01-%02d]' "$n"; fi
}

# Processes -----------------------------------------------------------------------------------
# Alive = exists and is not a zombie (kill -0 says alive for a zombie until it is reaped).
pid_alive() {
    local pid=$1 stat
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    case ${stat%% *} in Z | X | x) return 1 ;; esac
    return 0
}

# PID from a pid file if that process is alive and runs the expected program (guards against reuse).
daemon_pid() {  # pidfile program
    local pf=$1 prog=$2 pid exe
    [[ -r $pf ]] || return 1
    pid=$(tr -dc '0-9' <"$pf" 2>/dev/null) || return 1
    pid_alive "$pid" || return 1
    exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
    exe=${exe##*/}; exe=${exe% (deleted)}
    # Debian installs slurmctld/slurmd as alternatives for slurmctld-wlm/slurmd-wlm.
    [[ $exe == "$prog" || $exe == "$prog"-* ]] || return 1
    printf '%s' "$pid"
}

# Sends TERM to every (pidfile, program) pair given, waits for all, KILLs survivors after $timeout s.
stop_daemons() {  # timeout pidfile program [pidfile program ...]
    local timeout=$1; shift
    local -a pids=() files=()
    while (($#)); do
        local pid
        if pid=$(daemon_pid "$1" "$2"); then
            kill -TERM "$pid" 2>/dev/null || true
            pids+=("$pid")
        fi
        files+=("$1")
        shift 2
    done
    local deadline p alive
    deadline=$(($(now) + timeout * 1000000))
    while :; do
        alive=0
        for p in "${pids[@]}"; do pid_alive "$p" && alive=1; done
        ((alive)) || break
        if (($(now) > deadline)); then
            for p in "${pids[@]}"; do
                if pid_alive "$p"; then
                    say "pid $p ignored SIGTERM for ${timeout}s: SIGKILL"
                    kill -KILL "$p" 2>/dev/null || true
                fi
            done
            sleep 0.1
            break
        fi
        sleep 0.05
    done
    rm -f "${files[@]}"
}

# Processes carrying our tag: the daemons and what they fork (slurmctld's slurmscriptd; not
# slurmstepd, which clears its environment).
tagged_pids() {
    local f pid
    local -a files=()
    mapfile -t files < <(grep -lszxF "$DAEMON_TAG=$DIR" /proc/[0-9]*/environ 2>/dev/null)
    for f in "${files[@]}"; do
        pid=${f#/proc/}; pid=${pid%/environ}
        [[ $pid == "$$" || $pid == "$BASHPID" ]] && continue
        pid_alive "$pid" && printf '%s\n' "$pid"
    done
    return 0
}

# slurmstepd processes of this cluster (they keep their node's slurmd log open).
stepd_pids() {
    local p exe
    for p in $(find /proc/[0-9]*/fd -maxdepth 1 -lname "$LOG/slurmd-*" 2>/dev/null | cut -d/ -f3 | sort -u); do
        exe=$(readlink "/proc/$p/exe" 2>/dev/null) || continue
        [[ ${exe##*/} == slurmstepd* ]] && echo "$p"
    done
    return 0
}

# Processes of this cluster's jobs: in cgroup mode those in the nodes' freezer cgroups, and in
# any mode those carrying SLURM_JOB_ID and our SLURM_CONF (what a submitter that sourced env.sh
# passes on). Never slurmstepd itself, this script or its ancestors (`down` run inside a job).
job_pids() {
    local n i cg p f st
    local -a mine=() stepds=() files=()
    mapfile -t stepds < <(stepd_pids)
    p=$$
    while [[ $p =~ ^[0-9]+$ ]] && ((p > 1)); do
        mine+=("$p")
        st=$(cat "/proc/$p/stat" 2>/dev/null) || break
        st=${st##*) }; st=${st#* }; p=${st%% *}  # the field after the state: parent pid
    done
    mine+=("$BASHPID" "${stepds[@]}")
    {
        n=$(state_nodes)
        for ((i = 1; i <= n; i++)); do
            cg=/sys/fs/cgroup/freezer/slurm_$(node_name "$i")
            [[ -d $cg ]] && { find "$cg" -name cgroup.procs -exec cat {} + 2>/dev/null || true; }
        done
        mapfile -t files < <(grep -lszxF "SLURM_CONF=$CONF" /proc/[0-9]*/environ 2>/dev/null)
        if ((${#files[@]})); then
            grep -lsz '^SLURM_JOB_ID=' "${files[@]}" 2>/dev/null | cut -d/ -f3
        fi
    } | sort -u | while read -r p; do
        [[ " ${mine[*]} " == *" $p "* ]] || { pid_alive "$p" && echo "$p"; } || true
    done
    return 0
}

kill_pids() {  # pid... : TERM, a moment, then KILL
    local p any=0
    for p in "$@"; do pid_alive "$p" && { kill -TERM "$p" 2>/dev/null || true; any=1; }; done
    ((any)) || return 0
    sleep 0.5
    for p in "$@"; do pid_alive "$p" && { kill -KILL "$p" 2>/dev/null || true; }; done
    return 0
}

# Empty job cgroups a killed slurmstepd could not remove.
clean_cgroups() {
    local n i c
    n=$(state_nodes)
    for ((i = 1; i <= n; i++)); do
        for c in /sys/fs/cgroup/*/"slurm_$(node_name "$i")"; do
            [[ -d $c ]] && { find "$c" -mindepth 1 -depth -type d -exec rmdir {} + 2>/dev/null || true; }
        done
    done
    return 0
}

# Waits until `cmd...` succeeds, up to $1 seconds; gives up at once if the daemon that should
# answer has died (its pid file, once written, names a dead process; or pid P is dead).
wait_for() {  # timeout what {pidfile FILE | pid P | -} cmd...
    local timeout=$1 what=$2 kind=$3 arg='' pid
    shift 3
    [[ $kind == - ]] || { arg=$1; shift; }
    local deadline=$(($(now) + timeout * 1000000))
    until "$@" >/dev/null 2>&1; do
        case $kind in
            pidfile) pid=$(tr -dc '0-9' <"$arg" 2>/dev/null || true) ;;
            pid) pid=$arg ;;
            *) pid= ;;
        esac
        if [[ -n $pid ]] && ! pid_alive "$pid"; then
            die "$what died while starting (logs: $LOG)"
        fi
        (($(now) < deadline)) || die "timed out after ${timeout}s waiting for $what (logs: $LOG)"
        sleep 0.1
    done
}

# Fails early and clearly when another program (another local cluster?) holds one of our ports.
check_ports() {  # port label ...
    while (($#)); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
            die "port $1 ($2) is in use on 127.0.0.1: another cluster? Set SWEEP_SLURM_PORT_BASE (now $PORT_BASE)"
        fi
        shift 2
    done
}

# Runs a daemon detached from our terminal, with the tag in its environment.
spawn() {
    env "$DAEMON_TAG=$DIR" SLURM_CONF="$CONF" setsid "$@" </dev/null >>"$LOG/spawn.log" 2>&1
}
spawn_bg() {  # for daemons that stay in the foreground
    env "$DAEMON_TAG=$DIR" SLURM_CONF="$CONF" setsid "$@" </dev/null >>"$LOG/spawn.log" 2>&1 &
    SPAWNED=$!
    disown "$SPAWNED" 2>/dev/null || true
}

# State ---------------------------------------------------------------------------------------
state_get() { cat "$DIR/$1" 2>/dev/null || true; }
state_nodes() { local n; n=$(state_get nodes); printf '%s' "${n:-0}"; }

# Packages ------------------------------------------------------------------------------------

ensure_packages() {  # accounting(0|1)
    local -a want=(munge slurmctld slurmd slurm-client libpmix-dev) missing=()
    (($1)) && want+=(mariadb-server slurmdbd)
    local p installed
    installed=$(dpkg-query -W -f='${Package} ${Status}\n' "${want[@]}" 2>/dev/null || true)
    for p in "${want[@]}"; do
        grep -qx "$p install ok installed" <<<"$installed" || missing+=("$p")
    done
    ((${#missing[@]})) || return 0
    [[ $(id -u) == 0 ]] || die "packages missing (${missing[*]}) and not root to install them"
    say "installing ${missing[*]}"
    local t0; t0=$(now)
    # No daemon may be started by a package's maintainer scripts: we start our own.
    local policy=/usr/sbin/policy-rc.d made_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod 755 "$policy"; made_policy=1
        POLICY_MADE=$policy  # removed by on_exit if we are interrupted
    fi
    local rc=0
    {
        apt-get update -qq &&
            apt-get install -y -qq --no-install-recommends "${missing[@]}"
    } >"/tmp/sweep-local-slurm-apt.log" 2>&1 || rc=$?
    ((made_policy)) && { rm -f "$policy"; POLICY_MADE=; }
    ((rc == 0)) || { tail -n 20 /tmp/sweep-local-slurm-apt.log >&2; die "apt-get failed (log: /tmp/sweep-local-slurm-apt.log)"; }
    say "installed in $(elapsed "$t0") s"
}

# Configuration -------------------------------------------------------------------------------
cgroup_mode() {
    local c
    case ${SWEEP_SLURM_FORCE_PROCTRACK:-} in
        linuxproc) echo linuxproc; return ;;
        '' | cgroup) ;;
        *) die "SWEEP_SLURM_FORCE_PROCTRACK must be linuxproc or cgroup" ;;
    esac
    for c in memory freezer; do
        [[ -d /sys/fs/cgroup/$c && -w /sys/fs/cgroup/$c ]] || { echo linuxproc; return; }
        [[ $(stat -f -c %T "/sys/fs/cgroup/$c" 2>/dev/null) == cgroupfs ]] || { echo linuxproc; return; }
        [[ -e /sys/fs/cgroup/$c/tasks ]] || { echo linuxproc; return; }  # v1 hierarchy
    done
    echo cgroup
}

# The binding options (SWEEP_SLURM_SMT, SWEEP_SLURM_CONSTRAIN_DEVICES, SWEEP_SLURM_GPUS), checked
# against what this host supports; sets SMT, CONSTRAIN_DEVICES, NGPUS, HOST_CPUS.
binding_options() {  # cgmode
    local cg=$1
    SMT=${SWEEP_SLURM_SMT:-1}
    CONSTRAIN_DEVICES=${SWEEP_SLURM_CONSTRAIN_DEVICES:-0}
    HOST_CPUS=$(nproc --all 2>/dev/null || nproc)
    [[ $SMT == 1 || $SMT == 2 ]] || die "SWEEP_SLURM_SMT must be 1 or 2"
    [[ $CONSTRAIN_DEVICES == 0 || $CONSTRAIN_DEVICES == 1 ]] || die "SWEEP_SLURM_CONSTRAIN_DEVICES must be 0 or 1"
    if ((SMT == 2)); then
        [[ $cg == cgroup ]] || die "SWEEP_SLURM_SMT=2 needs cgroup mode (task/cgroup ConstrainCores), not linuxproc mode (no writable cgroup v1 memory+freezer here, or SWEEP_SLURM_FORCE_PROCTRACK=linuxproc)"
        [[ -d /sys/fs/cgroup/cpuset && -w /sys/fs/cgroup/cpuset ]] || die "SWEEP_SLURM_SMT=2 needs a writable cgroup v1 cpuset controller (/sys/fs/cgroup/cpuset)"
        ((HOST_CPUS >= 2 && HOST_CPUS % 2 == 0)) || die "SWEEP_SLURM_SMT=2 needs an even number of host CPUs (this host: $HOST_CPUS)"
    fi
    if ((CONSTRAIN_DEVICES)); then
        [[ $cg == cgroup ]] || die "SWEEP_SLURM_CONSTRAIN_DEVICES=1 needs cgroup mode, not linuxproc mode (no writable cgroup v1 memory+freezer here, or SWEEP_SLURM_FORCE_PROCTRACK=linuxproc)"
        [[ -e /sys/fs/cgroup/devices/devices.allow && -w /sys/fs/cgroup/devices ]] || die "SWEEP_SLURM_CONSTRAIN_DEVICES=1 needs a writable cgroup v1 devices controller (/sys/fs/cgroup/devices)"
    fi
    local dflt=8
    ((SMT == 2)) && dflt=2
    NGPUS=${SWEEP_SLURM_GPUS:-$dflt}
    [[ $NGPUS =~ ^[1-8]$ ]] || die "SWEEP_SLURM_GPUS must be 1..8"
}

write_configs() {  # nodes accounting cgmode
    local n=$1 acct=$2 cg=$3
    local nodes; nodes=$(node_list "$n")
    mkdir -p "$ETC" "$RUN" "$LOG" "$SPOOL/ctld" "$DEV" "$MUNGE_DIR"
    local i
    for ((i = 1; i <= n; i++)); do mkdir -p "$SPOOL/$(node_name "$i")" "$TMPD/$(node_name "$i")"; done
    for ((i = 0; i < 8; i++)); do
        if ((i < NGPUS)); then
            [[ -c $DEV/nvidia$i ]] || { rm -f "$DEV/nvidia$i"; mknod -m 600 "$DEV/nvidia$i" c 195 "$i"; }
        else
            rm -f "$DEV/nvidia$i"  # a node has exactly its GPUs' device files
        fi
    done

    {
        cat <<EOF
# Written by slurm/local-cluster.sh: a local test cluster ($n nodes on one host). Do not edit.
ClusterName=$CLUSTER
SlurmctldHost=localhost
SlurmctldPort=$PORT_CTLD
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCK
CredType=cred/munge
StateSaveLocation=$SPOOL/ctld
SlurmdSpoolDir=$SPOOL/%n
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd-%n.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd-%n.log
TmpFS=$TMPD/%n
SlurmdParameters=config_overrides
SlurmctldDebug=info
SlurmdDebug=info
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
EnforcePartLimits=ALL
KillWait=2
MinJobAge=600
MaxJobCount=${SWEEP_SLURM_MAX_JOBS:-40000}
InactiveLimit=0
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0,default_queue_depth=1000
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
GresTypes=gpu
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=2
EOF
        if [[ $cg == cgroup ]] && ((SMT == 2)); then
            # Binding enforced: the step's cpuset (task/cgroup) and each task's mask (task/affinity).
            echo "ProctrackType=proctrack/cgroup"
            echo "TaskPlugin=task/cgroup,task/affinity"
        elif [[ $cg == cgroup ]]; then
            echo "ProctrackType=proctrack/cgroup"
            echo "TaskPlugin=task/cgroup"
        else
            echo "ProctrackType=proctrack/linuxproc"
            echo "TaskPlugin=task/none"
            echo "JobAcctGatherParams=OverMemoryKill"
        fi
        if ((acct)); then
            cat <<EOF
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$PORT_DBD
AccountingStoragePass=$MUNGE_SOCK
AccountingStorageTRES=gres/gpu
EOF
        else
            echo "JobCompType=jobcomp/filetxt"
            echo "JobCompLoc=$LOG/jobcomp.txt"
        fi
        local shape="Sockets=2 CoresPerSocket=8 ThreadsPerCore=1 CPUs=16"
        # SMT: this host's real CPUs (so that cpusets and masks are real), as cores of 2 threads.
        ((SMT == 2)) && shape="Sockets=1 CoresPerSocket=$((HOST_CPUS / 2)) ThreadsPerCore=2 CPUs=$HOST_CPUS"
        echo "NodeName=$nodes NodeHostname=localhost NodeAddr=127.0.0.1 Port=$PORT_SLURMD-$((PORT_SLURMD + n - 1)) $shape RealMemory=32000 Gres=gpu:h200:$NGPUS State=UNKNOWN"
        echo "PartitionName=gpu Nodes=ALL Default=YES MaxTime=INFINITE State=UP"
    } >"$CONF"

    cat >"$ETC/gres.conf" <<EOF
AutoDetect=off
Name=gpu Type=h200 File=$DEV/nvidia[0-$((NGPUS - 1))]
EOF

    if [[ $cg == cgroup ]]; then
        {
            echo "CgroupPlugin=cgroup/v1"
            echo "CgroupMountpoint=/sys/fs/cgroup"
            echo "ConstrainRAMSpace=yes"
            # Without swap limits a job could swap instead of being OOM-killed where swap exists.
            if [[ -e /sys/fs/cgroup/memory/memory.memsw.limit_in_bytes ]]; then
                echo "ConstrainSwapSpace=yes"
                echo "AllowedSwapSpace=0"
            fi
            if ((SMT == 2)); then echo "ConstrainCores=yes"; else echo "ConstrainCores=no"; fi
            if ((CONSTRAIN_DEVICES)); then echo "ConstrainDevices=yes"; else echo "ConstrainDevices=no"; fi
        } >"$ETC/cgroup.conf"
    else
        rm -f "$ETC/cgroup.conf"
    fi

    if ((acct)); then
        (
            umask 077
            cat >"$ETC/slurmdbd.conf" <<EOF
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCK
DbdHost=localhost
DbdPort=$PORT_DBD
SlurmUser=root
PidFile=$RUN/slurmdbd.pid
LogFile=$LOG/slurmdbd.log
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$PORT_DB
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF
        )
        chmod 600 "$ETC/slurmdbd.conf"
    else
        rm -f "$ETC/slurmdbd.conf"
    fi
}

write_env() {  # nodes accounting cgmode
    local acct_word=no-accounting
    (($2)) && acct_word=accounting
    cat >"$ENV_FILE" <<EOF
# Written by slurm/local-cluster.sh up: source this to use the local Slurm cluster.
export SLURM_CONF=$CONF
export SWEEP_SLURM_DIR=$DIR
export SWEEP_SLURM_MODE=$acct_word
export SWEEP_SLURM_ACCOUNTING=$2
export SWEEP_SLURM_NODES=$1
export SWEEP_SLURM_NODELIST='$(node_list "$1")'
export SWEEP_SLURM_CGROUP=$3
export SWEEP_SLURM_SMT=$SMT
export SWEEP_SLURM_CONSTRAIN_DEVICES=$CONSTRAIN_DEVICES
export SWEEP_SLURM_GPUS=$NGPUS
# The rank wrapper's GPU reachability check: this cluster's fake device files.
export SWEEP_GPU_DEVICES='$DEV/nvidia[0-9]*'
EOF
}

# Daemons -------------------------------------------------------------------------------------
start_munge() {
    chmod 755 "$MUNGE_DIR"   # munged: the socket directory must be searchable by all
    if [[ ! -s $MUNGE_DIR/munge.key ]]; then
        mungekey -c -k "$MUNGE_DIR/munge.key" >/dev/null 2>&1 ||
            dd if=/dev/urandom of="$MUNGE_DIR/munge.key" bs=1024 count=1 status=none
    fi
    chmod 600 "$MUNGE_DIR/munge.key"
    spawn munged -S "$MUNGE_SOCK" --key-file="$MUNGE_DIR/munge.key" \
        --pid-file="$MUNGE_DIR/munged.pid" --log-file="$MUNGE_DIR/munged.log" \
        --seed-file="$MUNGE_DIR/munged.seed" ||
        die "munged failed to start: $(tail -n 3 "$MUNGE_DIR/munged.log" 2>/dev/null)"
    wait_for 10 munged pidfile "$MUNGE_DIR/munged.pid" bash -c "munge -n -S '$MUNGE_SOCK' | unmunge -S '$MUNGE_SOCK'"
}

# shellcheck disable=SC2120  # called with arguments through wait_for
db_sql() { mariadb --no-defaults -S "$DB_SOCK" -u root "$@"; }

# InnoDB settings for a small, fast, throw-away database (same for install-db and the server).
# (The system tablespace otherwise grows by 64 MB steps while slurmdbd creates its tables: 88 MB
# to copy and delete on every up instead of ~25 MB.)
DB_OPTS=(--innodb-log-file-size=4M --innodb-buffer-pool-size=64M --innodb-flush-log-at-trx-commit=2
    --innodb-autoextend-increment=1)

start_mariadbd() {
    local pid
    spawn_bg mariadbd --no-defaults --user=root --datadir="$DB_DIR" --socket="$DB_SOCK" \
        --pid-file="$RUN/mariadb.pid" --port="$PORT_DB" --bind-address=127.0.0.1 \
        --skip-name-resolve --log-error="$LOG/mariadb.log" --skip-log-bin "${DB_OPTS[@]}" \
        --max-connections=200
    pid=$SPAWNED
    wait_for 30 MariaDB pid "$pid" db_sql -e 'SELECT 1'
}

start_slurmdbd() {
    spawn slurmdbd || die "slurmdbd failed to start: $(tail -n 5 "$LOG/slurmdbd.log" 2>/dev/null)"
    wait_for 30 slurmdbd pidfile "$RUN/slurmdbd.pid" env SLURM_CONF="$CONF" sacctmgr -n list cluster
}

# MariaDB + slurmdbd + the cluster's record. A fresh database costs ~4 s (mariadb-install-db,
# then slurmdbd creating its tables and `sacctmgr add cluster` the cluster's), so the first up
# saves the database right after that, still without jobs, in <dir>/.cache, and later ups start
# from a copy of it (while the MariaDB and slurmdbd packages stay the same versions and DB_OPTS
# the same).
start_accounting() {
    local cache=$DIR/.cache key fresh=0
    key="$(dpkg-query -W -f='${Package}=${Version} ' mariadb-server slurmdbd 2>/dev/null || true)${DB_OPTS[*]}"
    rm -rf "$DB_DIR"
    if [[ -d $cache/db-template/mysql && $(cat "$cache/db-template.key" 2>/dev/null) == "$key" ]]; then
        cp -a "$cache/db-template" "$DB_DIR"
    else
        fresh=1
        rm -rf "$cache/db-template" "$cache/db-template.key"
        trace "mariadb-install-db"
        mariadb-install-db --no-defaults --user=root --datadir="$DB_DIR" \
            --auth-root-authentication-method=socket --skip-test-db "${DB_OPTS[@]}" \
            >"$LOG/mariadb-install.log" 2>&1 ||
            die "mariadb-install-db failed (log: $LOG/mariadb-install.log)"
    fi
    trace "database files ready"
    start_mariadbd
    if ((fresh)); then
        db_sql <<EOF
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
FLUSH PRIVILEGES;
EOF
    fi
    trace "mariadb up"
    start_slurmdbd
    trace "slurmdbd up"
    if ! env SLURM_CONF="$CONF" sacctmgr -n -P list cluster format=cluster | grep -qx "$CLUSTER"; then
        env SLURM_CONF="$CONF" sacctmgr -i add cluster "$CLUSTER" >/dev/null 2>&1 || true
        env SLURM_CONF="$CONF" sacctmgr -n -P list cluster format=cluster | grep -qx "$CLUSTER" ||
            die "sacctmgr could not add cluster $CLUSTER (log: $LOG/slurmdbd.log)"
    fi
    trace "cluster $CLUSTER in the database"
    if ((fresh)); then
        stop_daemons 10 "$RUN/slurmdbd.pid" slurmdbd
        stop_daemons 30 "$RUN/mariadb.pid" mariadbd
        mkdir -p "$cache"
        rm -rf "$cache/db-template.new"
        cp -a "$DB_DIR" "$cache/db-template.new"
        mv "$cache/db-template.new" "$cache/db-template"
        printf '%s' "$key" >"$cache/db-template.key"
        trace "database saved in $cache/db-template"
        start_mariadbd
        start_slurmdbd
    fi
}

nodes_ready() {  # every node idle (or busy) and responding
    local n=$1 out
    out=$(env SLURM_CONF="$CONF" sinfo -h -N -p gpu -o '%N %t' 2>/dev/null) || return 1
    [[ $(grep -cE '^gpu[0-9]+ (idle|alloc|mix|comp|resv|plnd)$' <<<"$out") -eq $n ]]
}

start_slurm() {  # nodes
    local n=$1 i
    spawn slurmctld -f "$CONF" || die "slurmctld failed to start: $(tail -n 5 "$LOG/slurmctld.log" 2>/dev/null)"
    # slurmd registers at once with a listening slurmctld; started before it, it retries later.
    wait_for 30 slurmctld pidfile "$RUN/slurmctld.pid" env SLURM_CONF="$CONF" scontrol ping
    trace "slurmctld answers"
    local -a pids=()
    for ((i = 1; i <= n; i++)); do
        spawn slurmd -f "$CONF" -N "$(node_name "$i")" &
        pids+=("$!")
    done
    for i in "${pids[@]}"; do wait "$i" || die "a slurmd failed to start (logs: $LOG/slurmd-*.log)"; done
    trace "slurmds started"
    wait_for 60 "$n nodes to be idle" - nodes_ready "$n"
}

# Health --------------------------------------------------------------------------------------
# Prints one line per daemon; returns 0 iff every daemon of the recorded mode is alive and all
# nodes respond.
check_health() {  # quiet(0|1)
    local quiet=$1 ok=0 n acct pid i
    n=$(state_get nodes); acct=$(state_get mode)
    [[ -n $n && -n $acct ]] || { ((quiet)) || echo "cluster: not set up in $DIR"; return 1; }
    line() { ((quiet)) || printf '  %-12s %s\n' "$1" "$2"; }
    alive() {  # label pidfile program
        if pid=$(daemon_pid "$2" "$3"); then line "$1" "running (pid $pid)"; else line "$1" "NOT RUNNING"; ok=1; fi
    }
    ((quiet)) || echo "directory:   $DIR"
    ((quiet)) || echo "mode:        $acct, $(state_get cgroup) process tracking, $n nodes"
    local b; b=$(state_get binding)
    if ((!quiet)) && [[ $b == 2\ * || $b == *\ 1\ * ]]; then
        # shellcheck disable=SC2086
        set -- $b
        echo "binding:     ThreadsPerCore=$1$( (($1 == 2)) && echo ", ConstrainCores=yes")$( (($2)) && echo ", ConstrainDevices=yes"), $3 GPUs a node"
    fi
    alive munged "$MUNGE_DIR/munged.pid" munged
    if [[ $acct == accounting ]]; then
        alive mariadb "$RUN/mariadb.pid" mariadbd
        alive slurmdbd "$RUN/slurmdbd.pid" slurmdbd
    fi
    alive slurmctld "$RUN/slurmctld.pid" slurmctld
    for ((i = 1; i <= n; i++)); do
        alive "slurmd $(node_name "$i")" "$RUN/slurmd-$(node_name "$i").pid" slurmd
    done
    if ((ok == 0)); then
        if nodes_ready "$n"; then
            line nodes "all $n responding"
        else
            line nodes "NOT all $n idle/allocated and responding"
            ok=1
        fi
        if [[ $acct == accounting ]] && ! env SLURM_CONF="$CONF" sacctmgr -n list cluster >/dev/null 2>&1; then
            line accounting "slurmdbd does NOT answer"
            ok=1
        fi
    fi
    return $ok
}

# Anything of ours still running (daemon pid files or tagged processes)?
anything_running() {
    local pf
    for pf in "$MUNGE_DIR/munged.pid:munged" "$RUN/mariadb.pid:mariadbd" "$RUN/slurmdbd.pid:slurmdbd" \
        "$RUN/slurmctld.pid:slurmctld" "$RUN"/slurmd-*.pid; do
        case $pf in
            *:*) daemon_pid "${pf%:*}" "${pf##*:}" >/dev/null && return 0 ;;
            *) [[ -e $pf ]] && daemon_pid "$pf" slurmd >/dev/null && return 0 ;;
        esac
    done
    [[ -n $(tagged_pids) ]]
}

# Commands ------------------------------------------------------------------------------------
POLICY_MADE=
UP_STARTED=0
on_exit() {
    local rc=$?
    [[ -z $POLICY_MADE ]] || rm -f "$POLICY_MADE"
    if ((rc != 0 && UP_STARTED)) && [[ -z ${SWEEP_SLURM_KEEP_ON_FAILURE:-} ]]; then
        UP_STARTED=0
        say "up failed: stopping what it started (logs stay in $LOG;" \
            "SWEEP_SLURM_KEEP_ON_FAILURE=1 keeps the daemons running)"
        cmd_down || true
    fi
}
trap on_exit EXIT

cmd_up() {
    local acct=1 n=4 i
    while (($#)); do
        case $1 in
            --no-accounting) acct=0 ;;
            --accounting) acct=1 ;;
            --nodes) n=${2:-}; shift ;;
            --nodes=*) n=${1#--nodes=} ;;
            *) die "up: unknown argument '$1' (usage: up [--no-accounting] [--nodes N])" ;;
        esac
        shift
    done
    [[ $n =~ ^[0-9]+$ ]] || die "--nodes must be 1..99"
    n=$((10#$n))
    ((n >= 1 && n <= 99)) || die "--nodes must be 1..99"
    [[ $(id -u) == 0 ]] || die "must run as root"
    local want_mode=no-accounting
    ((acct)) && want_mode=accounting

    if [[ -e $DIR/$MARKER ]] && anything_running; then
        if check_health 1; then
            if [[ $(state_get mode) == "$want_mode" && $(state_get nodes) == "$n" &&
                $(state_get binding) == "${SWEEP_SLURM_SMT:-1} ${SWEEP_SLURM_CONSTRAIN_DEVICES:-0} "* ]]; then
                say "already running and healthy ($want_mode, $n nodes)"
                echo "$ENV_FILE"
                return 0
            fi
            die "already running with $(state_get mode), $(state_get nodes) nodes, binding '$(state_get binding)' (SMT CONSTRAIN_DEVICES GPUS); run '$0 down' first"
        fi
        say "a previous cluster is partly running: stopping it first"
        cmd_down >/dev/null
    fi

    local t0; t0=$(now)
    ensure_packages "$acct"
    local t1; t1=$(now)

    # Fresh state on every up (job ids restart at 1, the accounting database is new).
    if [[ -e $DIR ]]; then
        if [[ -e $DIR/$MARKER ]]; then
            find "$DIR" -mindepth 1 -maxdepth 1 ! -name "$MARKER" ! -name munge ! -name .cache -exec rm -rf {} +
            rm -f "$MUNGE_DIR"/munged.* "$MUNGE_SOCK"*
        elif [[ -n $(ls -A "$DIR") ]]; then
            die "$DIR exists, is not empty and was not made by this script: refusing to use it"
        fi
    fi
    mkdir -p "$DIR"; chmod 755 "$DIR"
    touch "$DIR/$MARKER"
    UP_STARTED=1

    local cg; cg=$(cgroup_mode)
    if [[ $cg == cgroup ]]; then
        say "cgroup mode: cgroup v1 memory+freezer writable: proctrack/cgroup + task/cgroup, ConstrainRAMSpace=yes"
    elif [[ -n ${SWEEP_SLURM_FORCE_PROCTRACK:-} ]]; then
        say "linuxproc mode (SWEEP_SLURM_FORCE_PROCTRACK): proctrack/linuxproc + task/none, memory limits by OverMemoryKill"
    else
        say "linuxproc mode: no writable cgroup v1 memory+freezer: proctrack/linuxproc + task/none, memory limits by OverMemoryKill"
    fi
    binding_options "$cg"
    ((SMT == 2)) && say "binding mode: ThreadsPerCore=2 ($HOST_CPUS CPUs a node), ConstrainCores=yes, task/cgroup,task/affinity"
    ((CONSTRAIN_DEVICES)) && say "ConstrainDevices=yes: a job opens only its own GPUs' device files"
    write_configs "$n" "$acct" "$cg"
    echo "$SMT $CONSTRAIN_DEVICES $NGPUS" >"$DIR/binding"
    echo "$want_mode" >"$DIR/mode"
    echo "$n" >"$DIR/nodes"
    echo "$cg" >"$DIR/cgroup"
    echo "$PORT_BASE" >"$DIR/port-base"
    rm -f "$ENV_FILE"

    trace "configs written"
    local -a ports=("$PORT_CTLD" slurmctld)
    ((acct)) && ports+=("$PORT_DBD" slurmdbd "$PORT_DB" MariaDB)
    for ((i = 0; i < n; i++)); do ports+=($((PORT_SLURMD + i)) "slurmd $(node_name $((i + 1)))"); done
    check_ports "${ports[@]}"
    start_munge
    trace "munged up"
    if ((acct)); then
        start_accounting
    fi
    start_slurm "$n"
    write_env "$n" "$acct" "$cg"
    UP_STARTED=0
    say "up: $(node_list "$n") ($n node(s)), partition gpu, $want_mode, in $(elapsed "$t1") s (total $(elapsed "$t0") s)"
    say "use it with: source $ENV_FILE"
    echo "$ENV_FILE"
}

cmd_down() {
    [[ -e $DIR/$MARKER ]] || { say "nothing to stop ($DIR is not set up)"; return 0; }
    local t0; t0=$(now)
    local ctld='' had_jobs=0 p
    # Cancel jobs first so that slurmstepd and job processes end cleanly.
    if ctld=$(daemon_pid "$RUN/slurmctld.pid" slurmctld); then
        local jobs
        jobs=$(env SLURM_CONF="$CONF" timeout 5 squeue -h -o %i 2>/dev/null || true)
        if [[ -n $jobs ]]; then
            had_jobs=1
            # shellcheck disable=SC2086
            env SLURM_CONF="$CONF" timeout 5 scancel $jobs 2>/dev/null || true
            # Done when no job is pending or running any more and no job process is left (jobs
            # stay COMPLETING, and their slurmstepd alive, for ~3 s after that: not waited for).
            local deadline=$(($(now) + 5000000)) states
            while (($(now) < deadline)); do
                states=$(env SLURM_CONF="$CONF" timeout 2 squeue -h -o %T 2>/dev/null || echo unknown)
                if ! grep -qv '^COMPLETING$' <<<"${states:-COMPLETING}" && [[ -z $(job_pids) ]]; then
                    break
                fi
                sleep 0.1
            done
        fi
    fi
    # The next `up` starts from fresh state, so slurmctld's orderly shutdown (~1.8 s, to save
    # state) is of no use: SIGKILL it. After cancelled jobs, slurmd and slurmstepd likewise: the
    # jobs' processes are gone, but slurmstepd lingers ~3 s and slurmd ignores SIGTERM meanwhile.
    [[ -n $ctld ]] && { kill -KILL "$ctld" 2>/dev/null || true; }
    local -a slurmds=() pf
    for pf in "$RUN"/slurmd-*.pid; do
        [[ -e $pf ]] || continue
        slurmds+=("$pf" slurmd)
        if ((had_jobs)) && p=$(daemon_pid "$pf" slurmd); then kill -KILL "$p" 2>/dev/null || true; fi
    done
    if ((had_jobs)); then
        for p in $(stepd_pids); do kill -KILL "$p" 2>/dev/null || true; done
    fi
    # slurmd takes ~7 s to stop when it cannot reach slurmctld (after a failed up): 2 s, then KILL.
    stop_daemons 2 "$RUN/slurmctld.pid" slurmctld "${slurmds[@]}"
    # Job processes (and any slurmstepd) that outlived their slurmd.
    # shellcheck disable=SC2046
    kill_pids $(stepd_pids) $(job_pids)
    stop_daemons 10 "$RUN/slurmdbd.pid" slurmdbd
    stop_daemons 30 "$RUN/mariadb.pid" mariadbd "$MUNGE_DIR/munged.pid" munged
    # Anything else started with our tag (slurmscriptd, a daemon whose pid file was lost).
    # shellcheck disable=SC2046
    kill_pids $(tagged_pids)
    clean_cgroups
    rm -f "$ENV_FILE"
    say "down in $(elapsed "$t0") s"
}

cmd_status() {
    local rc=0
    check_health 0 || rc=1
    if [[ -n $(state_get nodes) ]] && daemon_pid "$RUN/slurmctld.pid" slurmctld >/dev/null; then
        echo "sinfo:"
        env SLURM_CONF="$CONF" timeout 10 sinfo 2>&1 | sed 's/^/  /' || rc=1
    fi
    if ((rc == 0)); then echo "healthy: source $ENV_FILE"; else echo "NOT healthy"; fi
    return $rc
}

# Fault injection for tests: stop or start one daemon of a running cluster (the controller or
# the accounting daemon), as happens when they crash or restart on a production cluster.
cmd_daemon() {  # stop|start slurmctld|slurmdbd
    local action=$1 name=${2:-}
    [[ -n $(state_get nodes) ]] || die "no cluster in $DIR"
    case $action/$name in
        stop/slurmctld) stop_daemons 10 "$RUN/slurmctld.pid" slurmctld ;;
        stop/slurmdbd) stop_daemons 10 "$RUN/slurmdbd.pid" slurmdbd ;;
        start/slurmctld)
            spawn slurmctld -f "$CONF" || die "slurmctld failed to start: $(tail -n 5 "$LOG/slurmctld.log" 2>/dev/null)"
            wait_for 30 slurmctld pidfile "$RUN/slurmctld.pid" env SLURM_CONF="$CONF" scontrol ping ;;
        start/slurmdbd) start_slurmdbd ;;
        *) die "usage: $0 stop-daemon|start-daemon slurmctld|slurmdbd" ;;
    esac
}

case ${1:-} in
    up) shift; cmd_up "$@" ;;
    stop-daemon) shift; cmd_daemon stop "$@" ;;
    start-daemon) shift; cmd_daemon start "$@" ;;
    down) shift; cmd_down ;;
    status) shift; cmd_status ;;
    env) echo "$ENV_FILE" ;;
    -h | --help | help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" ;;
    *) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
