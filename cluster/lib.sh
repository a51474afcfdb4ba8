# cluster/lib.sh: code shared by the cluster scripts (up.sh, down.sh, kill.sh, restart.sh,
# status.sh, hosts.sh, verify.sh). Sourced, never run. Usage, at the top of a script:
#   source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
#   ts_init up|use
# ts_init loads cluster/cluster.env and $TOYSTORE_HOME/ports.env, resolves every path and port,
# and parses TOYSTORE_NODES. Services are named catalog, node-1 … node-N, frontend: the names of
# their pid files ($TOYSTORE_HOME/pids/NAME.pid) and logs ($TOYSTORE_HOME/logs/NAME.log).
#
# Length: about 680 lines shared by seven scripts; it shrinks with issue 24 (the lab tooling in
# Rust), which leaves only the operator's commands to it.
# shellcheck shell=bash
# Checked on its own, lib.sh's globals look unused (the scripts that source it read them) and
# cluster.env is not followed (shellcheck -x follows it): neither is a finding.
# shellcheck disable=SC2034,SC1091

TS_CLUSTER_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
TS_REPO="$(cd -- "$TS_CLUSTER_DIR/.." && pwd -P)"
# Read by cluster.env (for the default TOYSTORE_HOME).
TOYSTORE_REPO="$TS_REPO"

# The variables that decide where the cluster listens. They are recorded in ports.env.
TS_PORT_KNOBS=(TOYSTORE_PORT_BASE TOYSTORE_FRONTEND_PORT TOYSTORE_CATALOG_PORT TOYSTORE_NODES)
TS_HOST=127.0.0.1
# Threads each service runs on (--worker-threads). Every service of a cluster started here shares
# this machine's cores, network namespaces or not: one thread each is faster than a thread pool
# each (see api::server::service_runtime). TOYSTORE_WORKER_THREADS overrides it.
TS_WORKER_THREADS=${TOYSTORE_WORKER_THREADS:-1}

ts_say() { printf '%s\n' "$*"; }
ts_warn() { printf '%s: warning: %s\n' "${0##*/}" "$*" >&2; }
ts_die() {
    printf '%s: error: %s\n' "${0##*/}" "$*" >&2
    exit 1
}

ts_need_tools() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null 2>&1 ||
            ts_die "'$tool' is required but not installed (Debian/Ubuntu: apt-get install -y $tool)"
    done
}

# ts_args MIN MAX USAGE "$@": answers -h/--help with the calling script's header comment, and
# dies with USAGE unless there are MIN to MAX arguments.
ts_args() {
    local min=$1 max=$2 usage=$3
    shift 3
    case ${1:-} in
    -h | --help)
        sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
        exit 0
        ;;
    esac
    (($# >= min && $# <= max)) || ts_die "$usage"
}

# ts_need_positive OPTION VALUE / ts_need_natural OPTION VALUE: die unless VALUE is a positive
# (resp. non-negative) integer.
ts_need_positive() { [[ $2 =~ ^[1-9][0-9]*$ ]] || ts_die "$1 must be a positive integer, not '$2'"; }
ts_need_natural() { [[ $2 =~ ^[0-9]+$ ]] || ts_die "$1 must be a non-negative integer, not '$2'"; }

ts_is_port() { [[ $1 =~ ^[0-9]{1,5}$ ]] && ((10#$1 >= 1 && 10#$1 <= 65535)); }

# ---------------------------------------------------------------------------------------------
# Configuration

# ts_init MODE: MODE "up" (up.sh: may choose new ports when nothing runs) or "use" (every other
# script: the ports recorded by up.sh win, because that is where the services listen).
ts_init() {
    local mode=$1 knob
    local -A caller=()
    for knob in "${TS_PORT_KNOBS[@]}"; do
        if [[ -n ${!knob:-} ]]; then caller[$knob]=${!knob}; fi
    done
    if [[ -n ${TOYSTORE_PORT_BASE:-} ]]; then
        if ! ts_is_port "$TOYSTORE_PORT_BASE" || ((10#$TOYSTORE_PORT_BASE + 203 > 65535)); then
            ts_die "TOYSTORE_PORT_BASE=$TOYSTORE_PORT_BASE is not a usable port base (1..65332)"
        fi
        TOYSTORE_PORT_BASE=$((10#$TOYSTORE_PORT_BASE))
    fi

    [[ -f $TS_CLUSTER_DIR/cluster.env ]] || ts_die "missing $TS_CLUSTER_DIR/cluster.env"
    set -a
    # shellcheck source=cluster.env
    source "$TS_CLUSTER_DIR/cluster.env"
    set +a

    # Everything lives under TOYSTORE_HOME (made absolute: the services and later runs of these
    # scripts may have another working directory).
    [[ $TOYSTORE_HOME == /* ]] || TOYSTORE_HOME="$PWD/$TOYSTORE_HOME"
    export TOYSTORE_HOME
    TS_DATA="$TOYSTORE_HOME/data"
    TS_LOGS="$TOYSTORE_HOME/logs"
    TS_PIDS="$TOYSTORE_HOME/pids"
    TS_TOKEN_FILE="$TOYSTORE_HOME/cluster.token"
    TS_PORTS_FILE="$TOYSTORE_HOME/ports.env"

    # The ports up.sh recorded, if any.
    local -A rec=()
    local key value
    if [[ -f $TS_PORTS_FILE ]]; then
        while IFS='=' read -r key value; do
            case $key in
            TOYSTORE_PORT_BASE | TOYSTORE_FRONTEND_PORT | TOYSTORE_CATALOG_PORT | TOYSTORE_NODES | TOYSTORE_BIN_DIR)
                rec[$key]=$value
                ;;
            esac
        done <"$TS_PORTS_FILE"
    fi
    TS_RECORDED_BIN_DIR=${rec[TOYSTORE_BIN_DIR]:-}

    local use_rec=0
    if [[ -n ${rec[TOYSTORE_NODES]:-} ]]; then
        if [[ $mode == use ]]; then
            use_rec=1
            for knob in "${!caller[@]}"; do
                [[ ${caller[$knob]} == "${rec[$knob]:-}" ]] ||
                    ts_warn "$knob=${caller[$knob]} ignored: the cluster in $TOYSTORE_HOME was started with $knob=${rec[$knob]:-} (see $TS_PORTS_FILE)"
            done
        elif ts_any_recorded_alive; then
            # up.sh while part of the cluster runs: the running services fix the ports.
            use_rec=1
            for knob in "${!caller[@]}"; do
                [[ ${caller[$knob]} == "${rec[$knob]:-}" ]] ||
                    ts_die "$knob=${caller[$knob]} conflicts with the running cluster in $TOYSTORE_HOME ($knob=${rec[$knob]:-}); run cluster/down.sh first or unset $knob"
            done
        elif ((${#caller[@]} == 0)); then
            # Nothing runs and the caller chose no port: this home keeps the ports it had.
            use_rec=1
            if [[ $TOYSTORE_NODES != "${rec[TOYSTORE_NODES]}" || $TOYSTORE_FRONTEND_PORT != "${rec[TOYSTORE_FRONTEND_PORT]:-}" || $TOYSTORE_CATALOG_PORT != "${rec[TOYSTORE_CATALOG_PORT]:-}" ]]; then
                ts_say "note: using the ports recorded in $TS_PORTS_FILE (front-end ${rec[TOYSTORE_FRONTEND_PORT]:-?}); set TOYSTORE_PORT_BASE to choose others"
            fi
        fi
    fi
    if ((use_rec)); then
        for knob in "${TS_PORT_KNOBS[@]}"; do
            if [[ -n ${rec[$knob]:-} ]]; then printf -v "$knob" '%s' "${rec[$knob]}"; fi
        done
    fi
    export "${TS_PORT_KNOBS[@]}"

    ts_is_port "$TOYSTORE_FRONTEND_PORT" || ts_die "TOYSTORE_FRONTEND_PORT=$TOYSTORE_FRONTEND_PORT is not a port"
    ts_is_port "$TOYSTORE_CATALOG_PORT" || ts_die "TOYSTORE_CATALOG_PORT=$TOYSTORE_CATALOG_PORT is not a port"
    TS_FRONTEND_URL="http://$TS_HOST:$TOYSTORE_FRONTEND_PORT"
    TS_CATALOG_URL="http://$TS_HOST:$TOYSTORE_CATALOG_PORT"
    ts_parse_nodes "$TOYSTORE_NODES"
}

# ts_parse_nodes "1=http://127.0.0.1:8201,2=…": sets TS_NODE_IDS (ascending) and
# TS_NODE_URL[id], TS_NODE_PORT[id], TS_NODE_HOSTPORT[id].
ts_parse_nodes() {
    local list=$1 entry id url hostport port
    local -a entries
    TS_NODE_IDS=()
    declare -gA TS_NODE_URL=() TS_NODE_PORT=() TS_NODE_HOSTPORT=()
    IFS=, read -r -a entries <<<"$list"
    for entry in "${entries[@]}"; do
        entry=${entry// /}
        [[ -n $entry ]] || continue
        id=${entry%%=*}
        url=${entry#*=}
        url=${url%/}
        [[ $entry == *=* && $id =~ ^[1-9][0-9]*$ ]] ||
            ts_die "TOYSTORE_NODES entry '$entry' is not of the form ID=http://IP:PORT"
        # An IP literal: order-raft listens on the IP:PORT of its own URL.
        port=""
        if [[ $url =~ ^http://([0-9]{1,3}(\.[0-9]{1,3}){3}):([0-9]+)$ ]]; then port=${BASH_REMATCH[3]}; fi
        if [[ -z $port ]] || ! ts_is_port "$port"; then
            ts_die "TOYSTORE_NODES: node $id's URL '$url' is not of the form http://IP:PORT (e.g. http://127.0.0.1:8201)"
        fi
        hostport=${url#http://}
        [[ -z ${TS_NODE_URL[$id]:-} ]] || ts_die "TOYSTORE_NODES: node id $id appears twice"
        TS_NODE_URL[$id]=$url
        TS_NODE_PORT[$id]=$port
        TS_NODE_HOSTPORT[$id]=$hostport
        TS_NODE_IDS+=("$id")
    done
    ((${#TS_NODE_IDS[@]} > 0)) || ts_die "TOYSTORE_NODES is empty"
    mapfile -t TS_NODE_IDS < <(printf '%s\n' "${TS_NODE_IDS[@]}" | sort -n)
}

# ts_write_ports BIN_DIR: records the ports (and binaries) this cluster runs with.
ts_write_ports() {
    local tmp="$TS_PORTS_FILE.tmp.$$"
    {
        printf '# Written by cluster/up.sh on %s: the ports this cluster was started with.\n' "$(date -u +%FT%TZ)"
        printf '# The other cluster scripts read it; do not edit while the cluster runs.\n'
        printf 'TOYSTORE_PORT_BASE=%s\n' "$TOYSTORE_PORT_BASE"
        printf 'TOYSTORE_FRONTEND_PORT=%s\n' "$TOYSTORE_FRONTEND_PORT"
        printf 'TOYSTORE_CATALOG_PORT=%s\n' "$TOYSTORE_CATALOG_PORT"
        printf 'TOYSTORE_NODES=%s\n' "$TOYSTORE_NODES"
        printf 'TOYSTORE_BIN_DIR=%s\n' "$1"
    } >"$tmp"
    mv -f "$tmp" "$TS_PORTS_FILE"
}

# ts_token: prints the cluster token, generating $TOYSTORE_HOME/cluster.token once (from the
# caller's TOYSTORE_CLUSTER_TOKEN if set, else 32 random bytes as hex).
ts_token() {
    if [[ ! -s $TS_TOKEN_FILE ]]; then
        local token=${TOYSTORE_CLUSTER_TOKEN:-}
        if [[ -z $token ]]; then
            token=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
        fi
        [[ ${#token} -ge 16 ]] || ts_die "could not generate a cluster token"
        (
            umask 077
            printf '%s\n' "$token" >"$TS_TOKEN_FILE.tmp.$$"
        )
        mv -f "$TS_TOKEN_FILE.tmp.$$" "$TS_TOKEN_FILE"
    fi
    local saved
    saved=$(head -n1 "$TS_TOKEN_FILE")
    if [[ -n ${TOYSTORE_CLUSTER_TOKEN:-} && $TOYSTORE_CLUSTER_TOKEN != "$saved" ]]; then
        ts_warn "TOYSTORE_CLUSTER_TOKEN ignored: this cluster's token is the one in $TS_TOKEN_FILE" >&2
    fi
    printf '%s' "$saved"
}

# ---------------------------------------------------------------------------------------------
# Services

ts_bin_name() {
    case $1 in
    catalog) echo catalog ;;
    frontend) echo frontend ;;
    node-*) echo order-raft ;;
    *) ts_die "unknown service '$1'" ;;
    esac
}

ts_pidfile() { printf '%s/%s.pid' "$TS_PIDS" "$1"; }
ts_logfile() { printf '%s/%s.log' "$TS_LOGS" "$1"; }

ts_url() {
    case $1 in
    catalog) echo "$TS_CATALOG_URL" ;;
    frontend) echo "$TS_FRONTEND_URL" ;;
    node-*) echo "${TS_NODE_URL[${1#node-}]}" ;;
    esac
}

ts_port() {
    case $1 in
    catalog) echo "$TOYSTORE_CATALOG_PORT" ;;
    frontend) echo "$TOYSTORE_FRONTEND_PORT" ;;
    node-*) echo "${TS_NODE_PORT[${1#node-}]}" ;;
    esac
}

ts_label() {
    case $1 in
    node-*) echo "node ${1#node-}" ;;
    *) echo "$1" ;;
    esac
}

# ts_pid_is SERVICE PID: true if PID is a live (not zombie) process of SERVICE's binary, started
# for this TOYSTORE_HOME. A recycled pid (another program, or the same binary of another
# cluster) does not count.
ts_pid_is() {
    local svc=$1 pid=$2 bin argv0 state
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [[ -r /proc/$pid/cmdline ]] || return 1
    bin=$(ts_bin_name "$svc")
    IFS= read -r -d '' argv0 2>/dev/null <"/proc/$pid/cmdline" || true
    [[ -n $argv0 && ${argv0##*/} == "$bin" ]] || return 1
    state=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$pid/status" 2>/dev/null) || return 1
    [[ $state != Z && $state != X ]] || return 1
    # Started by these scripts for this home? (environ is readable for our own processes.)
    if [[ -r /proc/$pid/environ ]]; then
        tr '\0' '\n' 2>/dev/null <"/proc/$pid/environ" | grep -qxF "TOYSTORE_HOME=$TOYSTORE_HOME" || return 1
    fi
    return 0
}

# ts_check_stop_timeout: dies unless $TOYSTORE_STOP_TIMEOUT (if set) is a number of seconds.
ts_check_stop_timeout() {
    [[ ${TOYSTORE_STOP_TIMEOUT:-10} =~ ^[0-9]+$ ]] ||
        ts_die "TOYSTORE_STOP_TIMEOUT=$TOYSTORE_STOP_TIMEOUT is not a number of seconds"
}

# ts_stop_group SERVICE…: SIGTERM (and SIGCONT, so a stopped one can act on it) to every live
# one, wait up to $TOYSTORE_STOP_TIMEOUT seconds (default 10) for them all, SIGKILL what is
# left, print one line per service and remove their pid files. Sets TS_STOPPED_ANY=1 if it
# signalled any.
ts_stop_group() {
    ts_check_stop_timeout
    local svc pid deadline left stop_timeout=${TOYSTORE_STOP_TIMEOUT:-10}
    local -A pids=()
    for svc in "$@"; do
        if pid=$(ts_alive "$svc"); then
            kill -TERM "$pid" 2>/dev/null || true
            kill -CONT "$pid" 2>/dev/null || true
            pids[$svc]=$pid
            TS_STOPPED_ANY=1
        elif [[ -f $(ts_pidfile "$svc") ]]; then
            printf '  %-9s was not running\n' "$(ts_label "$svc")"
        fi
    done
    deadline=$(($(date +%s) + stop_timeout))
    while :; do
        left=0
        for svc in "${!pids[@]}"; do
            ts_pid_is "$svc" "${pids[$svc]}" && left=1
        done
        ((left == 0)) && break
        (($(date +%s) >= deadline)) && break
        sleep 0.1
    done
    for svc in "$@"; do
        [[ -n ${pids[$svc]:-} ]] || continue
        pid=${pids[$svc]}
        if ts_pid_is "$svc" "$pid"; then
            kill -KILL "$pid" 2>/dev/null || true
            printf '  %-9s did not exit within %ss: killed (SIGKILL, pid %s)\n' "$(ts_label "$svc")" "$stop_timeout" "$pid"
        else
            printf '  %-9s stopped (pid %s)\n' "$(ts_label "$svc")" "$pid"
        fi
    done
    for svc in "$@"; do rm -f "$(ts_pidfile "$svc")"; done
}

# ts_pid SERVICE: prints the pid recorded for SERVICE (may be stale), or nothing.
ts_pid() {
    local file pid=""
    file=$(ts_pidfile "$1")
    [[ -f $file ]] && read -r pid <"$file" 2>/dev/null
    [[ $pid =~ ^[0-9]+$ ]] && printf '%s' "$pid"
    return 0
}

# ts_alive SERVICE: prints the pid and succeeds if SERVICE runs.
ts_alive() {
    local pid
    pid=$(ts_pid "$1")
    [[ -n $pid ]] && ts_pid_is "$1" "$pid" && printf '%s' "$pid"
}

ts_any_pidfile() { compgen -G "$TS_PIDS/*.pid" >/dev/null 2>&1; }

# Used by ts_init before the service list is known: any pid file naming a live service.
ts_any_recorded_alive() {
    local file svc pid
    [[ -d $TS_PIDS ]] || return 1
    for file in "$TS_PIDS"/*.pid; do
        [[ -f $file ]] || continue
        svc=${file##*/}
        svc=${svc%.pid}
        case $svc in catalog | frontend | node-*) ;; *) continue ;; esac
        read -r pid <"$file" 2>/dev/null || continue
        ts_pid_is "$svc" "$pid" && return 0
    done
    return 1
}

# ts_port_busy PORT: something accepts connections on 127.0.0.1:PORT.
ts_port_busy() {
    # shellcheck disable=SC2016 # $0 and $1 are the inner shell's arguments
    timeout 1 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$TS_HOST" "$1" 2>/dev/null
}

# ts_start SERVICE BIN_DIR TOKEN: starts SERVICE in its own session, detached from this script,
# stdout and stderr appended to its log; prints its pid.
ts_start() {
    local svc=$1 bin_dir=$2 token=$3 bin id pidfile logfile pid port i
    local -a args
    bin="$bin_dir/$(ts_bin_name "$svc")"
    [[ -x $bin ]] || ts_die "$bin is missing or not executable"
    case $svc in
    catalog)
        args=(--listen "$TS_HOST:$TOYSTORE_CATALOG_PORT" --data-dir "$TS_DATA/catalog")
        ;;
    node-*)
        id=${svc#node-}
        args=(--id "$id" --nodes "$TOYSTORE_NODES" --listen "${TS_NODE_HOSTPORT[$id]}"
            --data-dir "$TS_DATA/node-$id" --catalog "$TS_CATALOG_URL")
        # One replica initializes the group (a no-op once it is initialized). Bootstrapping
        # all three at once makes them campaign together and costs a second election.
        if [[ $id == "${TS_NODE_IDS[0]}" ]]; then args+=(--bootstrap); fi
        ;;
    frontend)
        args=(--listen "$TS_HOST:$TOYSTORE_FRONTEND_PORT" --catalog "$TS_CATALOG_URL"
            --nodes "$TOYSTORE_NODES")
        ;;
    esac
    args+=(--worker-threads "$TS_WORKER_THREADS")
    port=$(ts_port "$svc")
    if ts_port_busy "$port"; then
        ts_die "cannot start $(ts_label "$svc"): port $port on $TS_HOST is already in use by another program (choose other ports with TOYSTORE_PORT_BASE)"
    fi
    mkdir -p "$TS_DATA" "$TS_LOGS" "$TS_PIDS"
    pidfile=$(ts_pidfile "$svc")
    logfile=$(ts_logfile "$svc")
    rm -f "$pidfile"
    printf '===== %s %s: starting %s %s\n' "$(date -u +%FT%TZ)" "${0##*/}" "$bin" "${args[*]}" >>"$logfile"
    # The child writes its own pid and then execs the service (same pid), so the pid file is
    # right even if setsid had to fork. The token goes in the environment, not on the command
    # line, so it does not show in ps. TOYSTORE_HOME is in the environment too: ts_pid_is
    # checks it to tell this cluster's processes from another's.
    # shellcheck disable=SC2016 # $$, $0 and $@ belong to the inner shell
    TOYSTORE_CLUSTER_TOKEN=$token setsid bash -c \
        'echo "$$" >"$0.tmp" && mv -f "$0.tmp" "$0" && exec nohup "$@"' \
        "$pidfile" "$bin" "${args[@]}" </dev/null >>"$logfile" 2>&1 9>&- &
    disown 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        pid=$(ts_pid "$svc")
        if [[ -n $pid ]] && ts_pid_is "$svc" "$pid"; then
            printf '%s' "$pid"
            return 0
        fi
        sleep 0.05
    done
    ts_fail_with_log "$svc" "$(ts_label "$svc") exited right after it was started"
}

# ---------------------------------------------------------------------------------------------
# HTTP and the services' state

# ts_get URL: the body of a GET, or failure (no answer, an HTTP error, 1 s deadline).
ts_get() { curl -sf --max-time 1 "$1"; }

# ts_healthy URL: the service answers GET /health with 200 (it answers 503 with the reason
# when it cannot serve).
ts_healthy() { ts_get "$1/health" >/dev/null; }

# ts_lab ARGS…: toystore-lab (client/src/bin/toystore-lab.rs) from the binaries in use. It reads
# the services' /status with the api crate's types and takes the decisions on them (who leads,
# settled or not): no script parses JSON. hosts.sh runs it inside its client namespace instead.
ts_lab() {
    local bin
    bin="$(ts_bin_dir_for_restart)/toystore-lab"
    [[ -x $bin ]] || ts_die "$bin is missing (build it: cargo build --release -p client)"
    "$bin" "$@"
}

# ts_live_nodes: "ID=URL,…" of the replicas whose process runs (a dead one would only add a
# timeout).
ts_live_nodes() {
    local id list=""
    for id in "${TS_NODE_IDS[@]}"; do
        ts_alive "node-$id" >/dev/null || continue
        list+="${list:+,}$id=${TS_NODE_URL[$id]}"
    done
    printf '%s' "$list"
}

# ts_leader: prints "ID TERM" of the live replica that says it is the Raft leader (the highest
# term if more than one does, e.g. an isolated old leader), or fails.
ts_leader() { ts_lab leader --nodes "$(ts_live_nodes)"; }

# ts_settled_leader: like ts_leader, but succeeds only when every live replica answers /status
# and names the same leader at the same term (right after a bootstrap, a late candidate can
# still depose the first leader; this waits that out).
ts_settled_leader() { ts_lab leader --settled --nodes "$(ts_live_nodes)"; }

# ts_status: every live replica's /status as a table (role, term, leader, health,
# applied index, orders, digest), whether they agree and whether the front-end's selection
# leads, the catalog's health and the front-end's cache.
ts_status() {
    local -a args=(--nodes "$(ts_live_nodes)")
    if ts_alive frontend >/dev/null; then args+=(--frontend "$TS_FRONTEND_URL"); fi
    if ts_alive catalog >/dev/null; then args+=(--catalog "$TS_CATALOG_URL"); fi
    ts_lab status "${args[@]}"
}

# ts_wait_healthy SERVICE DEADLINE(epoch seconds): waits for GET /health; on death or timeout,
# prints the end of the service's log and exits 1.
ts_wait_healthy() {
    local svc=$1 deadline=$2 url
    url=$(ts_url "$svc")
    while :; do
        if ! ts_alive "$svc" >/dev/null; then
            ts_fail_with_log "$svc" "$(ts_label "$svc") exited while starting"
        fi
        ts_healthy "$url" && return 0
        if (($(date +%s) >= deadline)); then
            ts_fail_with_log "$svc" "$(ts_label "$svc") did not answer $url/health in time"
        fi
        sleep 0.2
    done
}

ts_fail_with_log() {
    local svc=$1 why=$2 logfile
    logfile=$(ts_logfile "$svc")
    printf '%s: error: %s; the end of %s:\n' "${0##*/}" "$why" "$logfile" >&2
    tail -n 30 "$logfile" 2>/dev/null | sed 's/^/    /' >&2 || true
    exit 1
}

# ts_lock: serialises up.sh, down.sh and restart.sh on one TOYSTORE_HOME (fd 9, released at
# exit; the services are started with fd 9 closed so they never hold it).
ts_lock() {
    mkdir -p "$TOYSTORE_HOME"
    exec 9>>"$TOYSTORE_HOME/.lock"
    if ! flock -n 9; then
        ts_say "waiting for another cluster script working on $TOYSTORE_HOME …" >&2
        flock -w 120 9 || ts_die "another cluster script still holds $TOYSTORE_HOME/.lock after 120 s"
    fi
}

# ts_need_cluster: exits with a clear message if no cluster was ever started in TOYSTORE_HOME.
ts_need_cluster() {
    if [[ ! -d $TOYSTORE_HOME ]] || ! ts_any_pidfile; then
        ts_die "no cluster is up in $TOYSTORE_HOME (no pid files); start one with cluster/up.sh"
    fi
}

# ts_bin_dir_for_restart: the binaries a single-service restart uses: TOYSTORE_BIN_DIR, else the
# ones up.sh used, else the release build.
ts_bin_dir_for_restart() {
    TOYSTORE_BIN_DIR=${TOYSTORE_BIN_DIR:-${TS_RECORDED_BIN_DIR:-}} ts_release_dir
}

# ---------------------------------------------------------------------------------------------
# Prerequisites and release binaries (hosts.sh, the engines' wrappers)

# ts_ensure_tools TOOL[:PACKAGE]…: makes sure every TOOL is on PATH. Run as root on a machine
# with apt-get, installs the Debian packages of the missing ones (PACKAGE, default TOOL);
# otherwise dies naming them.
ts_ensure_tools() {
    local spec tool
    local -a missing=() pkgs=()
    for spec in "$@"; do
        tool=${spec%%:*}
        command -v "$tool" >/dev/null 2>&1 && continue
        missing+=("$tool")
        pkgs+=("${spec#*:}")
    done
    ((${#missing[@]} == 0)) && return 0
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        ts_say "installing ${pkgs[*]} with apt-get …" >&2
        if ! DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 ||
            ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >&2; then
            ts_die "apt-get install ${pkgs[*]} failed"
        fi
        for tool in "${missing[@]}"; do
            command -v "$tool" >/dev/null 2>&1 || ts_die "'$tool' is still missing after installing ${pkgs[*]}"
        done
    else
        ts_die "missing ${missing[*]}; install them first (Debian/Ubuntu: sudo apt-get install -y ${pkgs[*]})"
    fi
}

# ts_release_dir: the directory of the release binaries: $TOYSTORE_BIN_DIR if set, else
# $CARGO_TARGET_DIR/release, else <repo>/target/release (made absolute).
ts_release_dir() {
    local dir=${TOYSTORE_BIN_DIR:-}
    if [[ -z $dir ]]; then
        local target=${CARGO_TARGET_DIR:-$TS_REPO/target}
        [[ $target == /* ]] || target="$TS_REPO/$target"
        dir="$target/release"
    fi
    [[ $dir == /* ]] || dir="$PWD/$dir"
    printf '%s' "$dir"
}

# ts_cargo_build: builds every release binary of the store, the load client and the checker
# with cargo (into $CARGO_TARGET_DIR or <repo>/target), installing clang and libclang-dev first
# when run as root on Debian (rocksdb's bindings need them).
ts_cargo_build() {
    if ! command -v cargo >/dev/null 2>&1 && [[ -x $HOME/.cargo/bin/cargo ]]; then
        PATH="$HOME/.cargo/bin:$PATH"
    fi
    command -v cargo >/dev/null 2>&1 ||
        ts_die "cargo not found. Install Rust with rustup:
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y && . \"\$HOME/.cargo/env\"
or point TOYSTORE_BIN_DIR at a directory holding the release binaries."
    if ! command -v clang >/dev/null 2>&1 || ! dpkg -s libclang-dev >/dev/null 2>&1; then
        if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
            ts_say "installing clang libclang-dev with apt-get (rocksdb's build needs them) …" >&2
            { DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
                DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang libclang-dev; } >&2 ||
                ts_die "apt-get install clang libclang-dev failed"
        elif ! command -v clang >/dev/null 2>&1; then
            ts_die "building rocksdb needs clang and libclang (Debian/Ubuntu: sudo apt-get install -y clang libclang-dev)"
        fi
    fi
    ts_say "building release binaries with cargo (a first build compiles rocksdb: ~15 minutes) …" >&2
    (cd "$TS_REPO" && cargo build --release --bins -p catalog -p frontend -p order-raft -p client -p checker) >&2 ||
        ts_die "cargo build failed"
}

# ts_run_engine SUBCOMMAND ARGS…: the body of the wrappers of toystore-lab's engines (verify.sh,
# chaos.sh, experiment.sh, bench.sh): builds the release binaries when one is missing, then
# replaces the shell with `toystore-lab SUBCOMMAND ARGS…`, which finds the cluster scripts
# through TOYSTORE_CLUSTER_DIR.
# A failure before that (ts_die exits 1) exits 2, "could not run", not 1, the engines' "failed".
ts_exit_could_not_run() {
    local rc=$?
    if ((rc == 1)); then exit 2; fi
    exit "$rc"
}
ts_run_engine() {
    local sub=$1 dir bin
    shift
    trap ts_exit_could_not_run EXIT
    dir=$(ts_release_dir)
    for bin in catalog order-raft frontend client toystore-state toystore-lab; do
        if [[ ! -x $dir/$bin ]]; then
            [[ -z ${TOYSTORE_BIN_DIR:-} ]] || ts_die "TOYSTORE_BIN_DIR=$TOYSTORE_BIN_DIR lacks $bin"
            ts_cargo_build
            break
        fi
    done
    TOYSTORE_CLUSTER_DIR=$TS_CLUSTER_DIR exec "$dir/toystore-lab" "$sub" --bin-dir "$dir" "$@"
}
