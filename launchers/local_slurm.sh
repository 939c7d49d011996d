#!/usr/bin/env bash
# A real single-node SLURM test cluster whose files all live under one folder.
#
#   eval "$(launchers/local_slurm.sh up DIR)"   # start; prints only `export ...` lines on stdout
#   launchers/local_slurm.sh status DIR          # sinfo + squeue
#   launchers/local_slurm.sh down DIR            # stop exactly what `up DIR` started
#
# `up` starts, each with its files under DIR: munged (own key and socket), MariaDB (own datadir,
# socket and a free loopback port), slurmdbd (so `sacct` reports real job states), slurmctld
# and slurmd (one node, NodeAddr=127.0.0.1). It installs the Debian packages it needs when a
# command is missing (apt-get, non-interactive) and must run as root. All ports are picked free
# on 127.0.0.1, so two clusters (two DIRs) or a system munge/MariaDB/SLURM do not collide.
# Calling `up` on a DIR that is already up prints the exports again; `down` is safe to repeat.
#
# Tunables (environment): LOCAL_SLURM_CPUS (16), LOCAL_SLURM_MEM_MB (64000),
# LOCAL_SLURM_CRED_EXPIRE (10 s; also how long a requeued job waits before it may start again,
# SLURM's default is 120), LOCAL_SLURM_TIMEOUT (60 s per daemon), LOCAL_SLURM_CLUSTER (vlmtest).
set -euo pipefail
export PATH=$PATH:/usr/sbin:/sbin   # the daemons live in /usr/sbin

PROG=$(basename "$0")
CPUS=${LOCAL_SLURM_CPUS:-16}
MEM_MB=${LOCAL_SLURM_MEM_MB:-64000}
CRED_EXPIRE=${LOCAL_SLURM_CRED_EXPIRE:-10}
TIMEOUT=${LOCAL_SLURM_TIMEOUT:-60}
CLUSTER=${LOCAL_SLURM_CLUSTER:-vlmtest}
PARTITION=debug
DB_NAME=slurm_acct_db
DB_USER=slurm

log() { printf '[%s] %s\n' "$PROG" "$*" >&2; }
die() { printf '[%s] ERROR: %s\n' "$PROG" "$*" >&2; exit 1; }

usage() {
    cat >&2 <<EOF
usage: $PROG up DIR | down DIR | status DIR
  up      start munged, MariaDB, slurmdbd, slurmctld and slurmd with all files under DIR;
          stdout carries only 'export ...' lines:  eval "\$($PROG up DIR)"
  down    stop what 'up DIR' started (safe to call twice)
  status  show sinfo and squeue of the cluster in DIR
EOF
    exit 2
}

# ---------------------------------------------------------------------------------------------
# paths
# ---------------------------------------------------------------------------------------------
set_paths() {
    DIR=$(realpath -m -- "$1")
    [[ $DIR != *[[:space:]]* ]] || die "DIR must not contain white space (slurm.conf paths): '$DIR'"
    CONF=$DIR/slurm.conf
    DBD_CONF=$DIR/slurmdbd.conf
    RUN=$DIR/run
    LOGS=$DIR/log
    STATE=$DIR/state
    SPOOL=$DIR/spool
    MUNGE_DIR=$DIR/munge
    MUNGE_KEY=$MUNGE_DIR/munge.key
    DB_DIR=$DIR/mariadb
    DB_DATA=$DB_DIR/data
    DB_CNF=$DB_DIR/my.cnf
    DB_PASS_FILE=$DB_DIR/slurm.pass
    PORTS_FILE=$DIR/ports.env
    # Unix socket paths are limited to 107 bytes: keep them under DIR when they fit, else in a
    # short private folder whose name is recorded in DIR (and removed by `down`).
    SOCK_DIR_FILE=$DIR/sockdir
    if [[ -f $SOCK_DIR_FILE ]]; then
        SOCK_DIR=$(<"$SOCK_DIR_FILE")
    elif (( ${#DIR} + 24 <= 100 )); then
        SOCK_DIR=$DIR/sock
    else
        SOCK_DIR=""   # chosen in `up`
    fi
    set_sock_paths
}

set_sock_paths() {
    MUNGE_SOCK=$SOCK_DIR/munge.socket.2
    DB_SOCK=$SOCK_DIR/mysqld.sock
}

export_lines() {
    printf 'export SLURM_CONF=%q\n' "$CONF"
    printf 'export LOCAL_SLURM_DIR=%q\n' "$DIR"
}

# ---------------------------------------------------------------------------------------------
# packages
# ---------------------------------------------------------------------------------------------
REQUIRED_CMDS=(munged mungekey munge unmunge mariadbd mariadb-install-db mariadb mariadb-admin
               slurmctld slurmd slurmdbd slurmstepd sbatch srun sinfo squeue scontrol
               sacct sacctmgr scancel)
PACKAGES=(munge mariadb-server mariadb-client slurm-wlm slurmctld slurmd slurm-client
          slurmdbd slurm-wlm-mysql-plugin)

missing_cmds() {
    local c missing=()
    for c in "${REQUIRED_CMDS[@]}"; do
        command -v "$c" >/dev/null 2>&1 || missing+=("$c")
    done
    [[ -e /usr/lib/x86_64-linux-gnu/slurm-wlm/accounting_storage_mysql.so ]] ||
        compgen -G '/usr/lib/*/slurm-wlm/accounting_storage_mysql.so' >/dev/null ||
        missing+=("accounting_storage_mysql.so")
    echo "${missing[*]}"
}

ensure_packages() {
    local missing
    missing=$(missing_cmds)
    [[ -z $missing ]] && return 0
    log "missing: $missing -> installing ${PACKAGES[*]} (apt-get)"
    command -v apt-get >/dev/null || die "apt-get not found; install ${PACKAGES[*]} by hand"
    export DEBIAN_FRONTEND=noninteractive
    local aptopts=(-q -o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confdef
                   -o Dpkg::Options::=--force-confold)
    apt-get "${aptopts[@]}" update </dev/null >&2 || die "apt-get update failed"
    apt-get "${aptopts[@]}" install -y --no-install-recommends "${PACKAGES[@]}" </dev/null >&2 ||
        die "apt-get install ${PACKAGES[*]} failed"
    missing=$(missing_cmds)
    [[ -z $missing ]] || die "still missing after installation: $missing"
}

# ---------------------------------------------------------------------------------------------
# processes
# ---------------------------------------------------------------------------------------------
# A pid file counts only if its process is alive, has the expected name, and belongs to DIR
# (its command line or its environment names DIR), so a recycled pid is never taken for ours.
pid_ours() {   # pid_ours NAME PIDFILE -> prints pid, status 0 if ours and alive
    local name=$1 pidfile=$2 pid comm
    [[ -s $pidfile ]] || return 1
    pid=$(tr -dc '0-9' <"$pidfile")
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 1
    comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
    [[ $comm == "$name"* ]] || return 1
    if tr '\0' '\n' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF "$DIR/" ||
       tr '\0' '\n' 2>/dev/null <"/proc/$pid/environ" | grep -qxF "SLURM_CONF=$CONF"; then
        echo "$pid"
        return 0
    fi
    return 1
}

# Start a daemon detached from our stdout (so `$(...)` and pipes return), in its own session.
# The daemons run in the foreground of their own session (a background job of a non-interactive
# shell is no group leader, so `setsid` execs in place and $! is the daemon's pid).
spawn() {   # spawn PIDFILE OUTFILE CMD...
    local pidfile=$1 out=$2; shift 2
    ( cd "$DIR" && exec 9>&- && exec setsid "$@" </dev/null >>"$out" 2>&1 ) &
    echo $! >"$pidfile"
}

fail_with_log() {   # fail_with_log MESSAGE LOGFILE...
    local msg=$1; shift
    local f
    for f in "$@" "$LOGS/probe.failed"; do
        if [[ -s $f ]]; then
            printf '[%s] ---- last lines of %s ----\n' "$PROG" "$f" >&2
            tail -n 25 "$f" >&2
        fi
    done
    log "stopping what was started (logs stay in $LOGS)"
    cmd_down "$DIR" >/dev/null 2>&1 || true
    die "$msg"
}

wait_for() {   # wait_for DESCRIPTION TIMEOUT CMD... ; polls CMD every 0.25 s
    local what=$1 limit=$2; shift 2
    local deadline=$((SECONDS + limit))
    while ! "$@" >"$LOGS/probe.last" 2>&1; do
        if (( SECONDS >= deadline )); then
            { echo "\$ $*"; cat "$LOGS/probe.last"; } >"$LOGS/probe.failed"
            return 1
        fi
        sleep 0.25
    done
    log "$what: ok"
}

stop_daemons() {   # stop_daemons NAME... : SIGTERM together, wait up to 20 s, then SIGKILL
    local name pid i pids=() names=()
    for name in "$@"; do
        if pid=$(pid_ours "$name" "$RUN/$name.pid"); then
            log "stopping $name (pid $pid)"
            kill -TERM "$pid" 2>/dev/null || true
            pids+=("$pid"); names+=("$name")
        fi
    done
    for ((i = 0; i < 80; i++)); do
        local alive=0
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        ((alive)) || break
        sleep 0.25
    done
    for i in "${!pids[@]}"; do
        if kill -0 "${pids[$i]}" 2>/dev/null; then
            log "${names[$i]} (pid ${pids[$i]}) ignored SIGTERM for 20 s: SIGKILL"
            kill -KILL "${pids[$i]}" 2>/dev/null || true
        fi
    done
    for name in "$@"; do rm -f "$RUN/$name.pid"; done
}

# slurmstepd inherits slurmd's environment: find ours by it, and kill it with the job processes
# under it (normally `scancel` has ended them already; this covers a slurmd that was gone).
descendants() {   # descendants PID -> the pids below PID, deepest first
    local parent=$1 p stat ppid kids=()
    for p in /proc/[0-9]*; do
        stat=$(cat "$p/stat" 2>/dev/null) || continue
        stat=${stat##*) }
        ppid=${stat#* }; ppid=${ppid%% *}
        [[ $ppid == "$parent" ]] && kids+=("${p#/proc/}")
    done
    for p in "${kids[@]}"; do descendants "$p"; echo "$p"; done
}

kill_stepds() {
    local p q comm pid
    for p in /proc/[0-9]*; do
        comm=$(cat "$p/comm" 2>/dev/null) || continue
        [[ $comm == slurmstepd* ]] || continue
        if tr '\0' '\n' 2>/dev/null <"$p/environ" | grep -qxF "SLURM_CONF=$CONF"; then
            pid=${p#/proc/}
            log "killing leftover slurmstepd $pid and its job processes"
            for q in $(descendants "$pid") "$pid"; do kill -KILL "$q" 2>/dev/null || true; done
        fi
    done
}

# ---------------------------------------------------------------------------------------------
# ports
# ---------------------------------------------------------------------------------------------
port_in_use() {
    local p=$1
    if command -v ss >/dev/null 2>&1; then
        [[ -n $(ss -Hltn "sport = :$p" 2>/dev/null) ]] && return 0
    fi
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && return 0
    return 1
}

# Four ports below the kernel's ephemeral range (32768+), so no outgoing connection holds them.
pick_ports() {
    local tries base ok i
    for ((tries = 0; tries < 200; tries++)); do
        base=$((20000 + (RANDOM % 1200) * 10))
        ok=1
        for ((i = 0; i < 4; i++)); do
            if port_in_use $((base + i)); then ok=0; break; fi
        done
        if ((ok)); then
            CTLD_PORT=$base; SLURMD_PORT=$((base + 1)); DBD_PORT=$((base + 2)); DB_PORT=$((base + 3))
            return 0
        fi
    done
    die "could not find 4 free loopback ports in 20000-32000"
}

# ---------------------------------------------------------------------------------------------
# configuration files
# ---------------------------------------------------------------------------------------------
write_configs() {
    local host=$1
    mkdir -p "$RUN" "$LOGS" "$STATE" "$SPOOL" "$DB_DIR/tmp"
    chmod 700 "$DB_DIR"
    local authinfo="socket=$MUNGE_SOCK,cred_expire=$CRED_EXPIRE"

    cat >"$CONF" <<EOF
# Written by $PROG up $DIR -- single-node test cluster; regenerated on every cold 'up'.
ClusterName=$CLUSTER
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
AuthType=auth/munge
CredType=cred/munge
# socket: our own munged; cred_expire: also the delay before a requeued job may start again
AuthInfo=$authinfo
StateSaveLocation=$STATE
SlurmdSpoolDir=$SPOOL/slurmd
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
MpiDefault=none
MailProg=/bin/true
SwitchType=switch/none
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=2
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$DBD_PORT
# for accounting_storage/slurmdbd this is the munge socket used to talk to slurmdbd
AccountingStoragePass=$MUNGE_SOCK
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
JobCompType=jobcomp/none
ReturnToService=2
JobRequeue=1
MaxArraySize=1001
MaxJobCount=20000
MinJobAge=30
KillWait=5
InactiveLimit=0
SlurmctldTimeout=60
SlurmdTimeout=300
MessageTimeout=30
TreeWidth=16
NodeName=$host NodeHostname=$host NodeAddr=127.0.0.1 CPUs=$CPUS Sockets=1 CoresPerSocket=$CPUS ThreadsPerCore=1 RealMemory=$MEM_MB State=UNKNOWN
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF

    local pass
    if [[ ! -s $DB_PASS_FILE ]]; then
        (umask 077; head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' >"$DB_PASS_FILE")
    fi
    pass=$(<"$DB_PASS_FILE")
    (umask 077; cat >"$DBD_CONF" <<EOF
# Written by $PROG up $DIR
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCK
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=root
DebugLevel=info
LogFile=$LOGS/slurmdbd.log
PidFile=$RUN/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=$DB_USER
StoragePass=$pass
StorageLoc=$DB_NAME
EOF
    )
    chmod 600 "$DBD_CONF"

    cat >"$DB_CNF" <<EOF
# Written by $PROG up $DIR
[mysqld]
user=root
datadir=$DB_DATA
tmpdir=$DB_DIR/tmp
socket=$DB_SOCK
pid-file=$RUN/mariadbd.pid
log-error=$LOGS/mariadbd.log
port=$DB_PORT
bind-address=127.0.0.1
skip-name-resolve
skip-log-bin
innodb_buffer_pool_size=1024M
innodb_log_file_size=64M
innodb_lock_wait_timeout=900
max_connections=100
[client]
user=root
socket=$DB_SOCK
EOF
    chmod 600 "$DB_CNF"

    cat >"$PORTS_FILE" <<EOF
SLURMCTLD_PORT=$CTLD_PORT
SLURMD_PORT=$SLURMD_PORT
SLURMDBD_PORT=$DBD_PORT
MARIADB_PORT=$DB_PORT
EOF
}

# ---------------------------------------------------------------------------------------------
# daemons
# ---------------------------------------------------------------------------------------------
start_munge() {
    mkdir -p "$MUNGE_DIR"
    chmod 700 "$MUNGE_DIR"
    [[ -s $MUNGE_KEY ]] || mungekey --create --keyfile="$MUNGE_KEY" >&2
    chmod 400 "$MUNGE_KEY"
    spawn "$RUN/munged.pid" "$LOGS/munged.out" munged --force --foreground \
        --socket="$MUNGE_SOCK" --key-file="$MUNGE_KEY" --pid-file="$RUN/munged.pid" \
        --log-file="$LOGS/munged.log" --seed-file="$MUNGE_DIR/munged.seed"
    wait_for "munged" "$TIMEOUT" munge_ok ||
        fail_with_log "munged did not come up in ${TIMEOUT}s" "$LOGS/munged.log" "$LOGS/munged.out"
}
munge_ok() { munge -n -S "$MUNGE_SOCK" | unmunge -S "$MUNGE_SOCK"; }

start_mariadb() {
    if [[ ! -d $DB_DATA/mysql ]]; then
        log "initialising MariaDB datadir $DB_DATA"
        rm -rf "$DB_DATA"
        mariadb-install-db --defaults-file="$DB_CNF" --auth-root-authentication-method=socket \
            --skip-test-db >"$LOGS/mariadb-install-db.log" 2>&1 ||
            fail_with_log "mariadb-install-db failed" "$LOGS/mariadb-install-db.log"
    fi
    spawn "$RUN/mariadbd.pid" "$LOGS/mariadbd.out" mariadbd --defaults-file="$DB_CNF"
    wait_for "MariaDB on 127.0.0.1:$DB_PORT" "$TIMEOUT" \
        mariadb-admin --defaults-file="$DB_CNF" --connect-timeout=2 ping ||
        fail_with_log "MariaDB did not come up in ${TIMEOUT}s" "$LOGS/mariadbd.log" "$LOGS/mariadbd.out"
    local pass
    pass=$(<"$DB_PASS_FILE")
    mariadb --defaults-file="$DB_CNF" >&2 <<EOF || fail_with_log "could not create the slurm database user" "$LOGS/mariadbd.log"
CREATE DATABASE IF NOT EXISTS $DB_NAME;
CREATE USER IF NOT EXISTS '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$pass';
CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$pass';
ALTER USER '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$pass';
ALTER USER '$DB_USER'@'localhost' IDENTIFIED BY '$pass';
GRANT ALL ON $DB_NAME.* TO '$DB_USER'@'127.0.0.1';
GRANT ALL ON $DB_NAME.* TO '$DB_USER'@'localhost';
FLUSH PRIVILEGES;
EOF
}

start_slurmdbd() {
    # slurmdbd has no -f: it reads slurmdbd.conf next to $SLURM_CONF.
    spawn "$RUN/slurmdbd.pid" "$LOGS/slurmdbd.out" slurmdbd -D
    wait_for "slurmdbd on 127.0.0.1:$DBD_PORT" "$TIMEOUT" sacctmgr -n list cluster ||
        fail_with_log "slurmdbd did not come up in ${TIMEOUT}s" "$LOGS/slurmdbd.log" "$LOGS/slurmdbd.out"
    if [[ -z $(sacctmgr -n -P list cluster "$CLUSTER" format=cluster 2>/dev/null) ]]; then
        sacctmgr -i add cluster "$CLUSTER" >&2 || fail_with_log "sacctmgr add cluster failed" "$LOGS/slurmdbd.log"
    fi
    if [[ -z $(sacctmgr -n -P list user root format=user 2>/dev/null) ]]; then
        sacctmgr -i add user root account=root cluster="$CLUSTER" >&2 || true
    fi
}

start_slurmctld() {
    spawn "$RUN/slurmctld.pid" "$LOGS/slurmctld.out" slurmctld -D -f "$CONF"
    wait_for "slurmctld on 127.0.0.1:$CTLD_PORT" "$TIMEOUT" scontrol ping ||
        fail_with_log "slurmctld did not come up in ${TIMEOUT}s" "$LOGS/slurmctld.log" "$LOGS/slurmctld.out"
}

node_idle() {
    local st
    st=$(sinfo -h -N -n "$NODE" -o '%T' 2>/dev/null) || return 1
    [[ $st == idle* || $st == mixed* || $st == allocated* ]]
}

start_slurmd() {
    mkdir -p "$SPOOL/slurmd"
    spawn "$RUN/slurmd.pid" "$LOGS/slurmd.out" slurmd -D -f "$CONF" -N "$NODE"
    wait_for "node $NODE idle" "$TIMEOUT" node_idle ||
        fail_with_log "node $NODE not idle within ${TIMEOUT}s (sinfo: $(sinfo -h -N -o '%N %T %E' 2>&1))" \
            "$LOGS/slurmd.log" "$LOGS/slurmd.out" "$LOGS/slurmctld.log"
    # a node left DOWN/DRAIN by a previous run of this DIR (ReturnToService=2 covers most cases)
    if sinfo -h -N -n "$NODE" -o '%T' | grep -qiE 'down|drain'; then
        scontrol update nodename="$NODE" state=resume >&2 || true
    fi
}

sacct_ok() { sacct -n -X -S now-1minute -o JobID >/dev/null; }

# ---------------------------------------------------------------------------------------------
# commands
# ---------------------------------------------------------------------------------------------
all_up() {
    pid_ours munged "$RUN/munged.pid" >/dev/null &&
    pid_ours mariadbd "$RUN/mariadbd.pid" >/dev/null &&
    pid_ours slurmdbd "$RUN/slurmdbd.pid" >/dev/null &&
    pid_ours slurmctld "$RUN/slurmctld.pid" >/dev/null &&
    pid_ours slurmd "$RUN/slurmd.pid" >/dev/null &&
    scontrol ping >/dev/null 2>&1
}

cmd_up() {
    [[ $(id -u) == 0 ]] || die "must run as root (the test cluster runs every daemon as root)"
    mkdir -p -- "$1"
    set_paths "$1"
    export SLURM_CONF=$CONF
    ensure_packages
    # one `up` at a time on this machine picks ports and starts daemons (fd 9 is closed in spawn)
    exec 9>>/tmp/.local_slurm.lock
    flock -w 300 9 || die "another '$PROG up' holds /tmp/.local_slurm.lock for more than 300 s"
    if [[ -s $CONF ]] && all_up; then
        log "cluster in $DIR is already up"
        export_lines
        return 0
    fi
    # a partial or stale cluster: stop what is left, then start afresh (keeping DB and key)
    if compgen -G "$RUN/*.pid" >/dev/null; then
        log "stopping the leftovers of a previous cluster in $DIR"
        cmd_down "$DIR" >/dev/null
    fi
    local t0=$SECONDS
    if [[ -z $SOCK_DIR ]]; then
        SOCK_DIR=$(mktemp -d /tmp/lslurm.XXXXXX)
        echo "$SOCK_DIR" >"$SOCK_DIR_FILE"
        set_sock_paths
    fi
    mkdir -p "$SOCK_DIR"
    chmod 700 "$SOCK_DIR"
    local host
    host=$(uname -n); host=${host%%.*}
    NODE=$host
    pick_ports
    write_configs "$host"
    rm -f "$LOGS/probe.failed" "$LOGS/probe.last"
    log "starting cluster '$CLUSTER' in $DIR (ctld $CTLD_PORT, slurmd $SLURMD_PORT, dbd $DBD_PORT, mariadb $DB_PORT)"
    start_munge
    start_mariadb
    start_slurmdbd
    start_slurmctld
    start_slurmd
    wait_for "sacct" "$TIMEOUT" sacct_ok ||
        fail_with_log "sacct does not answer" "$LOGS/slurmdbd.log" "$LOGS/slurmctld.log"
    log "cluster up in $((SECONDS - t0)) s; SLURM_CONF=$CONF"
    export_lines
}

cmd_down() {
    set_paths "$1"
    if [[ ! -d $DIR ]]; then
        log "nothing to stop: $DIR does not exist"
        return 0
    fi
    export SLURM_CONF=$CONF
    if [[ -s $CONF ]] && pid_ours slurmctld "$RUN/slurmctld.pid" >/dev/null; then
        # cancel jobs so their processes end cleanly before the daemons go
        timeout 10 scancel --full --quiet --user=root >/dev/null 2>&1 || true
    fi
    stop_daemons slurmd
    kill_stepds
    stop_daemons slurmctld
    stop_daemons slurmdbd
    stop_daemons mariadbd munged
    if [[ -f $SOCK_DIR_FILE && -n $SOCK_DIR && $SOCK_DIR == /tmp/lslurm.* ]]; then
        rm -rf "$SOCK_DIR"
        rm -f "$SOCK_DIR_FILE"
    fi
    log "cluster in $DIR is down"
}

cmd_status() {
    set_paths "$1"
    local pid name
    export SLURM_CONF=$CONF
    [[ -s $CONF ]] || die "no cluster configured in $DIR"
    for name in munged mariadbd slurmdbd slurmctld slurmd; do
        if pid=$(pid_ours "$name" "$RUN/$name.pid"); then
            echo "$name: running (pid $pid)"
        else
            echo "$name: not running"
        fi
    done
    [[ -f $PORTS_FILE ]] && cat "$PORTS_FILE"
    sinfo || true
    squeue || true
}

[[ $# -eq 2 ]] || usage
case $1 in
    up) cmd_up "$2" ;;
    down) cmd_down "$2" ;;
    status) cmd_status "$2" ;;
    *) usage ;;
esac
