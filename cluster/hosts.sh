#!/usr/bin/env bash
# cluster/hosts.sh: runs the toy store with every service on its own "host": one Linux network
# namespace per service (catalog, node1, node2, node3, frontend) plus a `client` namespace for
# load and checks, joined by a bridge in the root namespace. Services reach each other by host
# name (catalog.toy, node1.toy … frontend.toy, from /etc/netns/<ns>/hosts) on the same port on
# every host, as on separate machines; faults are real: kill -9, SIGSTOP, nft packet drops.
# Needs root (namespaces, nft); installs iproute2, nftables, curl, util-linux with apt-get when
# missing. What the services say of themselves (/status) is read by toystore-lab, run in the
# client namespace (ts_lab), so this script parses no JSON.
#
# Usage: cluster/hosts.sh COMMAND [ARGS]
#   up                   create the namespaces, bridge, veths and host names; start whatever
#                        service is not running (on its old data); wait for health, one Raft
#                        leader and the front-end selecting it; print the hosts table
#   down [--wipe]        stop every service (SIGTERM, SIGKILL after TOYSTORE_STOP_TIMEOUT s),
#                        end what else runs in the namespaces, delete the namespaces, veths,
#                        bridge and /etc/netns/<ns>; --wipe also deletes the data
#   status               table of every replica (role, term, leader, health, applied index,
#                        orders, digest), the front-end's selection, the catalog, the partition
#   kill SVC…            kill -9 (SVC: catalog, frontend, node1..node3, leader, replicas)
#   stop SVC… / cont SVC… SIGSTOP / SIGCONT
#   restart SVC…         start stopped services again on their data, wait for their /health
#   partition SPEC       drop packets between replicas with nft (replaces any partition):
#                          isolate NODE     NODE cut from the other replicas, both ways
#                          split NODE       minority {NODE} against the majority (= isolate)
#                          oneway FROM TO   packets from FROM to TO dropped, TO→FROM allowed
#                        NODE/FROM/TO: node1..node3 or leader. Catalog and front-end are never
#                        cut off. Established connections are cut too (drop, not reject).
#   heal                 remove every partition rule
#   exec SVC CMD…        run CMD inside SVC's namespace (SVC may be `client`), with
#                        TOYSTORE_CLUSTER_TOKEN set to the cluster's token
#   ip SVC               print SVC's address
#   leader               print the Raft leader as "nodeN TERM" (fails if there is none)
#   wait [SECS]          wait (default 60 s) until every service answers /health and the
#                        replicas agree on one leader
#
# Addresses: catalog http://catalog.toy:8100, node N http://nodeN.toy:8201, front-end
# http://frontend.toy:8000 (reachable from inside the namespaces, e.g. via `exec client`).
#
# Environment:
#   TOYSTORE_HOSTS_HOME    run directory (default <repo>/run/hosts): data/, logs/, pids/,
#                          cluster.token, hosts.env (the prefix, subnet and binaries in use)
#   TOYSTORE_HOSTS_PREFIX  prefix of namespace and interface names (default toy-, at most 12
#                          characters): namespaces toy-catalog …, bridge toy-br, veths toy-h0 …
#   TOYSTORE_HOSTS_SUBNET  private A.B.C.0/24 the hosts live in (default 10.77.0.0/24)
#   TOYSTORE_BIN_DIR       the release binaries (default $CARGO_TARGET_DIR/release or
#                          <repo>/target/release, built with cargo when missing)
#   TOYSTORE_UP_TIMEOUT    seconds `up` and `restart` wait (default 60)
#   TOYSTORE_STOP_TIMEOUT  seconds `down` waits after SIGTERM (default 10)
#   RUST_LOG and every exported TOYSTORE_* variable (TOYSTORE_INITIAL_STOCK,
#   TOYSTORE_RESTOCK_SECS, TOYSTORE_FAULT_INJECTION, …) reach the services unchanged.
#
# The engine that drives these hosts through faults is `toystore-lab verify`
# (client/src/lab/, cluster/verify.sh is its wrapper): its nemeses are commands of this script.
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

usage="usage: cluster/hosts.sh up|down [--wipe]|status|kill SVC|stop SVC|cont SVC|restart SVC|partition SPEC|heal|exec SVC CMD...|ip SVC|leader|wait [SECS] (--help for details)"
ts_args 1 100000 "$usage" "$@"
command=$1
shift

# ---------------------------------------------------------------------------------------------
# Layout

# cluster/hosts.layout holds the replicas' ids (1 to 9), the domain and the ports; toystore-lab
# compiles the same file in. Derived here: host names, addresses (.10 the catalog, .1N replica
# N, .20 the front-end, .30 the client) and interface indexes.
# shellcheck source=hosts.layout
source "$TS_CLUSTER_DIR/hosts.layout"
IFS=, read -r -a HS_REPLICA_ID_LIST <<<"$HS_REPLICA_IDS"
HS_REPLICAS=("${HS_REPLICA_ID_LIST[@]/#/node}")
HS_SERVICES=(catalog "${HS_REPLICAS[@]}" frontend)
HS_HOSTS=("${HS_SERVICES[@]}" client)
declare -A HS_OCTET=([catalog]=10 [frontend]=20 [client]=30) HS_INDEX=()
for id in "${HS_REPLICA_ID_LIST[@]}"; do HS_OCTET[node$id]=$((10 + id)); done
for i in "${!HS_HOSTS[@]}"; do HS_INDEX[${HS_HOSTS[$i]}]=$i; done
HS_NFT_TABLE=toy_nemesis

HS_HOME=${TOYSTORE_HOSTS_HOME:-$TS_REPO/run/hosts}
[[ $HS_HOME == /* ]] || HS_HOME="$PWD/$HS_HOME"
# lib.sh's pid, log and token helpers work on TOYSTORE_HOME; ts_pid_is recognises this
# cluster's processes by TOYSTORE_HOME in their environment.
export TOYSTORE_HOME=$HS_HOME
TS_DATA="$HS_HOME/data"
TS_LOGS="$HS_HOME/logs"
TS_PIDS="$HS_HOME/pids"
TS_TOKEN_FILE="$HS_HOME/cluster.token"
HS_CONFIG_FILE="$HS_HOME/hosts.env"
HS_PARTITION_FILE="$HS_HOME/partition"

HS_CATALOG_URL="http://catalog.$HS_DOMAIN:$HS_CATALOG_PORT"
HS_FRONTEND_URL="http://frontend.$HS_DOMAIN:$HS_FRONTEND_PORT"
HS_NODES=""
for id in "${HS_REPLICA_ID_LIST[@]}"; do HS_NODES+="${HS_NODES:+,}$id=http://node$id.$HS_DOMAIN:$HS_NODE_PORT"; done

# What lib.sh's health and leader helpers (ts_healthy, ts_leader, ts_settled_leader,
# ts_wait_healthy) read; their services are named catalog, node-N, frontend.
TS_CATALOG_URL=$HS_CATALOG_URL
TS_FRONTEND_URL=$HS_FRONTEND_URL
TS_NODE_IDS=("${HS_REPLICA_ID_LIST[@]}")
declare -A TS_NODE_URL=()
for id in "${TS_NODE_IDS[@]}"; do TS_NODE_URL[$id]="http://node$id.$HS_DOMAIN:$HS_NODE_PORT"; done

# Every HTTP request goes from inside the client namespace (the root namespace has no route to
# the hosts). These replace lib.sh's ts_get and ts_lab for this script only.
ts_get() { ip netns exec "$HS_CLIENT_NS" curl -sf --max-time 1 "$1"; }
ts_lab() {
    local bin
    bin="$(hs_bin_dir)/toystore-lab"
    [[ -x $bin ]] || ts_die "$bin is missing (build it: cargo build --release -p client)"
    ip netns exec "$HS_CLIENT_NS" "$bin" "$@"
}

hs_key() {
    case $1 in
    node[0-9]*) printf 'node-%s' "${1#node}" ;;
    *) printf '%s' "$1" ;;
    esac
}

# ---------------------------------------------------------------------------------------------
# Configuration: prefix, subnet, binaries (recorded in hosts.env while the network exists)

hs_valid_prefix() { [[ $1 =~ ^[A-Za-z0-9][A-Za-z0-9-]{0,11}$ ]]; }

hs_valid_subnet() {
    [[ $1 =~ ^([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.0/24$ ]] || return 1
    local i
    for i in 1 2 3; do ((10#${BASH_REMATCH[$i]} <= 255)) || return 1; done
}

# hs_config MODE: MODE "up" dies when the caller asks for another prefix or subnet than the
# network that exists; other commands warn and use the existing one.
hs_config() {
    local mode=$1 key value
    local -A rec=()
    if [[ -f $HS_CONFIG_FILE ]]; then
        while IFS='=' read -r key value; do
            case $key in PREFIX | SUBNET | BIN_DIR | ETC_NETNS_CREATED) rec[$key]=$value ;; esac
        done <"$HS_CONFIG_FILE"
    fi
    HS_PREFIX=${TOYSTORE_HOSTS_PREFIX:-toy-}
    HS_SUBNET=${TOYSTORE_HOSTS_SUBNET:-10.77.0.0/24}
    HS_RECORDED_BIN_DIR=${rec[BIN_DIR]:-}
    HS_ETC_NETNS_CREATED=${rec[ETC_NETNS_CREATED]:-0}
    if [[ -n ${rec[PREFIX]:-} && -n ${rec[SUBNET]:-} ]] && hs_network_exists "${rec[PREFIX]}"; then
        if [[ $HS_PREFIX != "${rec[PREFIX]}" || $HS_SUBNET != "${rec[SUBNET]}" ]]; then
            local msg="the hosts of $HS_HOME exist with prefix ${rec[PREFIX]} and subnet ${rec[SUBNET]} (see $HS_CONFIG_FILE)"
            if [[ $mode == up && ( -n ${TOYSTORE_HOSTS_PREFIX:-} || -n ${TOYSTORE_HOSTS_SUBNET:-} ) ]]; then
                ts_die "$msg; run cluster/hosts.sh down first to change them"
            elif [[ -n ${TOYSTORE_HOSTS_PREFIX:-} || -n ${TOYSTORE_HOSTS_SUBNET:-} ]]; then
                ts_warn "$msg: using those"
            fi
        fi
        HS_PREFIX=${rec[PREFIX]}
        HS_SUBNET=${rec[SUBNET]}
    fi
    hs_valid_prefix "$HS_PREFIX" ||
        ts_die "TOYSTORE_HOSTS_PREFIX='$HS_PREFIX' must be 1 to 12 letters, digits or '-' (it starts interface names, which the kernel limits to 15 characters)"
    hs_valid_subnet "$HS_SUBNET" ||
        ts_die "TOYSTORE_HOSTS_SUBNET='$HS_SUBNET' is not of the form A.B.C.0/24"
    HS_NET=${HS_SUBNET%.0/24}
    HS_BRIDGE="${HS_PREFIX}br"
    HS_CLIENT_NS="${HS_PREFIX}client"
}

hs_ns() { printf '%s%s' "$HS_PREFIX" "$1"; }
hs_veth() { printf '%sh%s' "$HS_PREFIX" "${HS_INDEX[$1]}"; }
hs_ip() { printf '%s.%s' "$HS_NET" "${HS_OCTET[$1]}"; }
hs_name() { printf '%s.%s' "$1" "$HS_DOMAIN"; }
hs_ns_exists() { [[ -e /run/netns/$1 || -e /var/run/netns/$1 ]]; }

# hs_network_exists PREFIX: the bridge or any namespace of PREFIX exists.
hs_network_exists() {
    local prefix=$1 host
    ip link show dev "${prefix}br" >/dev/null 2>&1 && return 0
    for host in "${HS_HOSTS[@]}"; do hs_ns_exists "$prefix$host" && return 0; done
    return 1
}

hs_write_config() {
    local tmp="$HS_CONFIG_FILE.tmp.$$"
    {
        printf '# Written by cluster/hosts.sh up on %s; read by its other commands.\n' "$(date -u +%FT%TZ)"
        printf 'PREFIX=%s\n' "$HS_PREFIX"
        printf 'SUBNET=%s\n' "$HS_SUBNET"
        printf 'BIN_DIR=%s\n' "$1"
        printf 'ETC_NETNS_CREATED=%s\n' "$HS_ETC_NETNS_CREATED"
    } >"$tmp"
    mv -f "$tmp" "$HS_CONFIG_FILE"
}

hs_need_root() {
    [[ $(id -u) == 0 ]] || ts_die "cluster/hosts.sh $command needs root (network namespaces, nft); run it with sudo"
}

hs_tools() { ts_ensure_tools ip:iproute2 nft:nftables curl setsid:util-linux flock:util-linux; }

hs_need_network() {
    hs_ns_exists "$HS_CLIENT_NS" ||
        ts_die "the hosts are not up (no namespace $HS_CLIENT_NS); start them with cluster/hosts.sh up"
}

# hs_svc_arg WORD: checks a service name (node1..node3, catalog, frontend).
hs_svc_arg() {
    hs_is_one_of "$1" "${HS_SERVICES[@]}" || ts_die "unknown service '$1' (${HS_SERVICES[*]}, leader, replicas)"
    printf '%s' "$1"
}

# hs_is_one_of WORD NAME…: WORD is one of the NAMEs.
hs_is_one_of() {
    local word=$1 name
    shift
    for name in "$@"; do [[ $name == "$word" ]] && return 0; done
    return 1
}

# hs_leader_node: prints nodeN of the live replica that says it leads (highest term), or fails.
hs_leader_node() {
    local leader id term
    leader=$(ts_leader) || return 1
    read -r id term <<<"$leader"
    printf 'node%s' "$id"
}

# hs_targets WORD…: expands leader / replicas; prints one service per line.
hs_targets() {
    local word node
    for word in "$@"; do
        case $word in
        leader)
            node=$(hs_leader_node) ||
                ts_die "no live replica reports itself Raft leader right now (election in progress, or the replicas are down: see cluster/hosts.sh status)"
            printf '%s\n' "$node"
            ;;
        replicas) printf '%s\n' "${HS_REPLICAS[@]}" ;;
        *) printf '%s\n' "$(hs_svc_arg "$word")" ;;
        esac
    done
}

# hs_proc_state PID: the one-letter state of PID (R, S, T, …), or nothing.
hs_proc_state() { sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null || true; }

# ---------------------------------------------------------------------------------------------
# Network

hs_hosts_file() {
    local ns=$1 host
    printf '# Written by cluster/hosts.sh for network namespace %s (run dir %s);\n' "$ns" "$HS_HOME"
    printf '# removed by cluster/hosts.sh down. ip netns exec %s … sees it as /etc/hosts.\n' "$ns"
    printf '127.0.0.1\tlocalhost\n'
    printf '::1\tlocalhost ip6-localhost ip6-loopback\n'
    for host in "${HS_HOSTS[@]}"; do
        printf '%s\t%s %s\n' "$(hs_ip "$host")" "$(hs_name "$host")" "$host"
    done
}

hs_network_up() {
    local host ns veth addr
    if ! ip link show dev "$HS_BRIDGE" >/dev/null 2>&1; then
        ip link add name "$HS_BRIDGE" type bridge || ts_die "could not create the bridge $HS_BRIDGE"
    fi
    ip link set dev "$HS_BRIDGE" up
    for host in "${HS_HOSTS[@]}"; do
        ns=$(hs_ns "$host")
        veth=$(hs_veth "$host")
        addr=$(hs_ip "$host")
        if ! hs_ns_exists "$ns"; then
            ip netns add "$ns" || ts_die "could not create the network namespace $ns"
        fi
        ip -n "$ns" link set dev lo up
        if ! ip -n "$ns" link show dev eth0 >/dev/null 2>&1; then
            ip link del dev "$veth" 2>/dev/null || true
            ip link add name "$veth" type veth peer name eth0 netns "$ns" ||
                ts_die "could not create the veth pair $veth / $ns:eth0"
        fi
        ip link set dev "$veth" master "$HS_BRIDGE"
        ip link set dev "$veth" up
        ip -n "$ns" addr replace "$addr/24" dev eth0
        ip -n "$ns" link set dev eth0 up
        mkdir -p "/etc/netns/$ns"
        hs_hosts_file "$ns" >"/etc/netns/$ns/hosts.tmp.$$"
        mv -f "/etc/netns/$ns/hosts.tmp.$$" "/etc/netns/$ns/hosts"
    done
}

hs_network_down() {
    local host ns veth
    for host in "${HS_HOSTS[@]}"; do
        ns=$(hs_ns "$host")
        veth=$(hs_veth "$host")
        if hs_ns_exists "$ns"; then
            ip netns del "$ns" 2>/dev/null || ts_warn "could not delete the namespace $ns"
        fi
        if ip link show dev "$veth" >/dev/null 2>&1; then
            ip link del dev "$veth" 2>/dev/null || true
        fi
        if [[ -d /etc/netns/$ns ]]; then
            rm -f -- "/etc/netns/$ns/hosts" "/etc/netns/$ns"/hosts.tmp.*
            rmdir -- "/etc/netns/$ns" 2>/dev/null || ts_warn "/etc/netns/$ns holds files this script did not write; left in place"
        fi
    done
    if ip link show dev "$HS_BRIDGE" >/dev/null 2>&1; then
        ip link del dev "$HS_BRIDGE" || ts_warn "could not delete the bridge $HS_BRIDGE"
    fi
    # /etc/netns itself only if `up` created it and it is empty now.
    if [[ $HS_ETC_NETNS_CREATED == 1 ]]; then rmdir /etc/netns 2>/dev/null || true; fi
}

# ---------------------------------------------------------------------------------------------
# Services

hs_bin_dir() {
    local dir
    if [[ -n ${TOYSTORE_BIN_DIR:-} ]]; then
        dir=$(ts_release_dir)
    elif [[ $command != up && -n $HS_RECORDED_BIN_DIR ]]; then
        dir=$HS_RECORDED_BIN_DIR
    else
        dir=$(ts_release_dir)
    fi
    printf '%s' "$dir"
}

hs_bin() {
    case $1 in
    catalog) echo catalog ;;
    frontend) echo frontend ;;
    node*) echo order-raft ;;
    esac
}

# hs_start SVC BIN_DIR TOKEN: starts SVC inside its namespace, in its own session, detached,
# output appended to its log; prints its pid.
hs_start() {
    local svc=$1 bin_dir=$2 token=$3 key ns ip bin id pidfile logfile pid i
    local -a args
    key=$(hs_key "$svc")
    ns=$(hs_ns "$svc")
    ip=$(hs_ip "$svc")
    bin="$bin_dir/$(hs_bin "$svc")"
    [[ -x $bin ]] || ts_die "$bin is missing or not executable"
    case $svc in
    catalog)
        args=(--listen "$ip:$HS_CATALOG_PORT" --data-dir "$TS_DATA/catalog")
        ;;
    node*)
        id=${svc#node}
        args=(--id "$id" --nodes "$HS_NODES" --listen "$ip:$HS_NODE_PORT"
            --catalog "$HS_CATALOG_URL" --data-dir "$TS_DATA/node-$id")
        # One replica initializes the group (a no-op once initialized).
        if [[ $id == 1 ]]; then args+=(--bootstrap); fi
        ;;
    frontend)
        args=(--listen "$ip:$HS_FRONTEND_PORT" --catalog "$HS_CATALOG_URL" --nodes "$HS_NODES"
            --public-url "$HS_FRONTEND_URL")
        ;;
    esac
    args+=(--worker-threads "$TS_WORKER_THREADS")
    mkdir -p "$TS_DATA" "$TS_LOGS" "$TS_PIDS"
    pidfile=$(ts_pidfile "$key")
    logfile=$(ts_logfile "$key")
    rm -f "$pidfile"
    printf '===== %s hosts.sh: starting %s in namespace %s: %s %s\n' "$(date -u +%FT%TZ)" "$svc" "$ns" "$bin" "${args[*]}" >>"$logfile"
    # As in ts_start: the child writes its own pid, then execs the service (ip netns exec and
    # setsid exec too, so the pid stays). The token goes in the environment, not on the
    # command line.
    # shellcheck disable=SC2016 # $$, $0 and $@ belong to the inner shell
    TOYSTORE_CLUSTER_TOKEN=$token ip netns exec "$ns" setsid bash -c \
        'echo "$$" >"$0.tmp" && mv -f "$0.tmp" "$0" && exec nohup "$@"' \
        "$pidfile" "$bin" "${args[@]}" </dev/null >>"$logfile" 2>&1 9>&- &
    disown 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        pid=$(ts_pid "$key")
        if [[ -n $pid ]] && ts_pid_is "$key" "$pid"; then
            printf '%s' "$pid"
            return 0
        fi
        sleep 0.05
    done
    ts_fail_with_log "$key" "$svc exited right after it was started"
}

hs_timeout() {
    local secs=${TOYSTORE_UP_TIMEOUT:-60}
    [[ $secs =~ ^[0-9]+$ ]] || ts_die "TOYSTORE_UP_TIMEOUT=$secs is not a number of seconds"
    printf '%s' "$secs"
}

# hs_wait_catalog DEADLINE: ts_wait_healthy for the catalog, the first service the client
# namespace reaches over the bridge; says so when the bridge is what fails.
hs_wait_catalog() {
    local deadline=$1
    until ts_healthy "$HS_CATALOG_URL"; do
        ts_alive catalog >/dev/null || ts_fail_with_log catalog "catalog exited while starting"
        if (($(date +%s) >= deadline)); then
            if ip netns exec "$(hs_ns catalog)" curl -s --max-time 1 "$HS_CATALOG_URL/health" 2>/dev/null | grep -q '"ok"'; then
                ts_die "the catalog answers inside its namespace but not from $HS_CLIENT_NS over the bridge $HS_BRIDGE: does a firewall in the root namespace drop bridged traffic? (net.bridge.bridge-nf-call-iptables=1 with a FORWARD policy of DROP, as Docker sets up, does)"
            fi
            ts_fail_with_log catalog "catalog did not answer $HS_CATALOG_URL/health in time"
        fi
        sleep 0.2
    done
}

hs_ready_or_die() {
    local deadline=$1 what=$2 svc
    if (($(date +%s) >= deadline)); then
        ts_say "cluster/hosts.sh: $what; the cluster now:" >&2
        (cmd_status) >&2 || true
        for svc in "${HS_SERVICES[@]}"; do
            printf '\n--- end of %s ---\n' "$(ts_logfile "$(hs_key "$svc")")" >&2
            tail -n 8 "$(ts_logfile "$(hs_key "$svc")")" 2>/dev/null | sed 's/^/    /' >&2 || true
        done
        ts_die "$what"
    fi
}

# hs_selected_leader: prints "ID TERM" of the settled leader when the front-end selected it.
hs_selected_leader() {
    ts_lab leader --settled --selected --frontend "$HS_FRONTEND_URL" --nodes "$(ts_live_nodes)"
}

# hs_wait_settled DEADLINE: every service healthy, one leader every replica names. Prints
# "ID TERM" of the leader.
hs_wait_settled() {
    local deadline=$1 svc leader
    for svc in "${HS_SERVICES[@]}"; do
        ts_alive "$(hs_key "$svc")" >/dev/null || ts_die "$svc is not running"
    done
    while :; do
        local ok=1
        for svc in "${HS_SERVICES[@]}"; do
            if ! ts_healthy "$(ts_url "$(hs_key "$svc")")"; then
                ok=0
                break
            fi
        done
        if ((ok)) && leader=$(ts_settled_leader); then
            printf '%s' "$leader"
            return 0
        fi
        hs_ready_or_die "$deadline" "the cluster did not settle (every service healthy, one agreed Raft leader) in time"
        sleep 0.2
    done
}

# ---------------------------------------------------------------------------------------------
# Commands

cmd_up() {
    hs_need_root
    hs_tools
    hs_config up
    local bin_dir timeout_secs deadline token svc pid leader id term
    bin_dir=$(hs_bin_dir)
    local need_build=0 bin
    for bin in catalog order-raft frontend toystore-lab; do [[ -x $bin_dir/$bin ]] || need_build=1; done
    if ((need_build)); then
        [[ -z ${TOYSTORE_BIN_DIR:-} ]] ||
            ts_die "TOYSTORE_BIN_DIR=$TOYSTORE_BIN_DIR lacks catalog, order-raft, frontend or toystore-lab"
        ts_cargo_build
        for bin in catalog order-raft frontend toystore-lab; do
            [[ -x $bin_dir/$bin ]] || ts_die "$bin_dir/$bin is missing after the build"
        done
    fi
    # Namespaces of this prefix that another run dir made: its services own the ports there.
    local owner
    owner=$(sed -n '1s/.*(run dir \(.*\));$/\1/p' "/etc/netns/$HS_CLIENT_NS/hosts" 2>/dev/null || true)
    if [[ -n $owner && $owner != "$HS_HOME" ]]; then
        ts_die "the namespaces ${HS_PREFIX}* belong to the run dir $owner; stop them with TOYSTORE_HOSTS_HOME=$owner cluster/hosts.sh down, or choose another TOYSTORE_HOSTS_PREFIX"
    fi
    ts_lock
    mkdir -p "$TS_DATA" "$TS_LOGS" "$TS_PIDS"
    # Record the configuration first, so that `down` can undo a half-built network.
    if ! hs_network_exists "$HS_PREFIX"; then
        if [[ -d /etc/netns ]]; then HS_ETC_NETNS_CREATED=0; else HS_ETC_NETNS_CREATED=1; fi
    fi
    hs_write_config "$bin_dir"
    hs_network_up
    token=$(ts_token)
    timeout_secs=$(hs_timeout)
    deadline=$(($(date +%s) + timeout_secs))

    ts_say "starting the toy store on network namespaces ${HS_PREFIX}* ($HS_SUBNET) in $HS_HOME"
    start_if_needed() {
        local svc=$1 pid
        if pid=$(ts_alive "$(hs_key "$svc")"); then
            printf '  %-9s already running (pid %s)\n' "$svc" "$pid"
        else
            pid=$(hs_start "$svc" "$bin_dir" "$token")
            printf '  %-9s started (pid %s)\n' "$svc" "$pid"
        fi
    }
    start_if_needed catalog
    hs_wait_catalog "$deadline"
    for svc in "${HS_REPLICAS[@]}"; do start_if_needed "$svc"; done
    for svc in "${HS_REPLICAS[@]}"; do ts_wait_healthy "$(hs_key "$svc")" "$deadline"; done
    until leader=$(ts_settled_leader); do
        for svc in "${HS_REPLICAS[@]}"; do
            ts_alive "$(hs_key "$svc")" >/dev/null || ts_fail_with_log "$(hs_key "$svc")" "$svc exited"
        done
        hs_ready_or_die "$deadline" "the replicas did not agree on a Raft leader within ${timeout_secs}s"
        sleep 0.2
    done
    start_if_needed frontend
    ts_wait_healthy frontend "$deadline"
    # Leadership follows the front-end's selection: wait until the selected replica leads.
    while :; do
        if leader=$(hs_selected_leader); then
            read -r id term <<<"$leader"
            break
        fi
        hs_ready_or_die "$deadline" "the front-end's selected replica did not become the Raft leader within ${timeout_secs}s"
        sleep 0.2
    done

    ts_say ""
    ts_say "the toy store is up on separate hosts (Raft leader: node$id, term $term)"
    printf '  %-9s %-14s %-12s %-14s %-8s %s\n' service namespace ip name pid url
    for svc in "${HS_HOSTS[@]}"; do
        local url=- name
        name=$(hs_name "$svc")
        pid=-
        case $svc in
        client) ;;
        catalog) url=$HS_CATALOG_URL ;;
        frontend) url=$HS_FRONTEND_URL ;;
        node*) url=http://$name:$HS_NODE_PORT ;;
        esac
        if [[ $svc != client ]]; then pid=$(ts_alive "$(hs_key "$svc")" || echo -); fi
        printf '  %-9s %-14s %-12s %-14s %-8s %s\n' "$svc" "$(hs_ns "$svc")" "$(hs_ip "$svc")" "$name" "$pid" "$url"
    done
    ts_say "  data:     $TS_DATA"
    ts_say "  logs:     $TS_LOGS"
    ts_say "  binaries: $bin_dir"
    ts_say "try:  cluster/hosts.sh exec client curl -s $HS_FRONTEND_URL/products/Tux"
}

cmd_down() {
    local wipe=0
    case ${1:-} in
    "") ;;
    --wipe) wipe=1 ;;
    *) ts_die "unexpected argument '$1' (usage: cluster/hosts.sh down [--wipe])" ;;
    esac
    (($# <= 1)) || ts_die "usage: cluster/hosts.sh down [--wipe]"
    hs_need_root
    hs_config down
    [[ -d $HS_HOME ]] && ts_lock
    if [[ -d $TS_PIDS ]]; then
        local replica_keys=() replica
        for replica in "${HS_REPLICAS[@]}"; do replica_keys+=("$(hs_key "$replica")"); done
        ts_stop_group frontend
        ts_stop_group "${replica_keys[@]}"
        ts_stop_group catalog
    fi
    # Anything else still inside the namespaces (a load client started with `exec`).
    local host ns pid
    local -a others=()
    for host in "${HS_HOSTS[@]}"; do
        ns=$(hs_ns "$host")
        hs_ns_exists "$ns" || continue
        while read -r pid; do
            [[ $pid =~ ^[0-9]+$ ]] || continue
            others+=("$pid")
            printf '  ending pid %s in %s: %s\n' "$pid" "$ns" "$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-80)"
        done < <(ip netns pids "$ns" 2>/dev/null || true)
    done
    if ((${#others[@]} > 0)); then
        kill -TERM "${others[@]}" 2>/dev/null || true
        local i
        for ((i = 0; i < 50; i++)); do
            kill -0 "${others[@]}" 2>/dev/null || break
            sleep 0.1
        done
        for pid in "${others[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    fi
    if hs_network_exists "$HS_PREFIX"; then
        hs_network_down
        ts_say "deleted the namespaces ${HS_PREFIX}{$(
            IFS=,
            echo "${HS_HOSTS[*]}"
        )}, their veths, the bridge $HS_BRIDGE and /etc/netns/${HS_PREFIX}*"
    else
        ts_say "no namespace or bridge with prefix $HS_PREFIX exists"
    fi
    rm -f "$HS_PARTITION_FILE"
    if ((wipe)); then
        if [[ -d $TS_DATA ]]; then
            rm -rf -- "$TS_DATA"
            ts_say "wiped $TS_DATA"
        else
            ts_say "no data to wipe ($TS_DATA does not exist)"
        fi
    fi
}

cmd_status() {
    hs_need_root
    hs_config use
    hs_need_network
    local svc pid state alive=0
    ts_say "toy store on network namespaces ${HS_PREFIX}* ($HS_SUBNET), run dir $HS_HOME"
    ts_say ""
    local fmt='%-9s %-11s %-8s %s\n'
    # shellcheck disable=SC2059
    printf "$fmt" host ip pid process
    for svc in "${HS_SERVICES[@]}"; do
        if pid=$(ts_alive "$(hs_key "$svc")"); then
            alive=$((alive + 1))
            state=running
            [[ $(hs_proc_state "$pid") == T ]] && state=stopped
            # shellcheck disable=SC2059
            printf "$fmt" "$svc" "$(hs_ip "$svc")" "$pid" "$state"
        else
            # shellcheck disable=SC2059
            printf "$fmt" "$svc" "$(hs_ip "$svc")" - dead
        fi
    done
    ((alive > 0)) || ts_die "no service is running in $HS_HOME (start them with cluster/hosts.sh up)"
    if [[ -s $HS_PARTITION_FILE ]]; then
        ts_say "partition: $(head -n1 "$HS_PARTITION_FILE") (cluster/hosts.sh heal removes it)"
    else
        ts_say "partition: none"
    fi
    ts_say ""
    # A stopped (SIGSTOP) replica shows as no-answer (after its 1 s timeout).
    ts_status
}

# cmd_signal kill|stop|cont SVC…
cmd_signal() {
    local action=$1 svc key pid i
    shift
    (($# >= 1)) || ts_die "usage: cluster/hosts.sh $action SVC… (catalog, frontend, node1..node3, leader, replicas)"
    hs_need_root
    hs_config use
    hs_need_network
    local -a targets
    mapfile -t targets < <(hs_targets "$@")
    ((${#targets[@]} > 0)) || exit 1
    # Every target must run before any is signalled.
    local -A seen=() pids=()
    local -a unique=()
    for svc in "${targets[@]}"; do
        [[ -z ${seen[$svc]:-} ]] || continue
        seen[$svc]=1
        unique+=("$svc")
        pids[$svc]=$(ts_alive "$(hs_key "$svc")") || ts_die "$svc is not running"
    done
    for svc in "${unique[@]}"; do
        key=$(hs_key "$svc")
        pid=${pids[$svc]}
        case $action in
        kill)
            kill -KILL "$pid"
            for ((i = 0; i < 50; i++)); do
                ts_pid_is "$key" "$pid" || break
                sleep 0.1
            done
            ts_pid_is "$key" "$pid" && ts_die "$svc (pid $pid) is still alive after kill -9"
            ts_say "killed $svc (pid $pid) with SIGKILL; start it again with: cluster/hosts.sh restart $svc"
            ;;
        stop)
            kill -STOP "$pid"
            for ((i = 0; i < 50; i++)); do
                [[ $(hs_proc_state "$pid") == T ]] && break
                sleep 0.02
            done
            ts_say "stopped $svc (pid $pid) with SIGSTOP; resume it with: cluster/hosts.sh cont $svc"
            ;;
        cont)
            kill -CONT "$pid"
            ts_say "resumed $svc (pid $pid) with SIGCONT"
            ;;
        esac
    done
}

cmd_restart() {
    (($# >= 1)) || ts_die "usage: cluster/hosts.sh restart SVC… (catalog, frontend, node1..node3, replicas)"
    hs_need_root
    hs_tools
    hs_config use
    hs_need_network
    local svc key pid bin_dir token deadline
    local -a targets
    for svc in "$@"; do
        [[ $svc != leader ]] || ts_die "a leader always runs; name the service to restart"
    done
    mapfile -t targets < <(hs_targets "$@")
    ((${#targets[@]} > 0)) || exit 1
    ts_lock
    bin_dir=$(hs_bin_dir)
    token=$(ts_token)
    deadline=$(($(date +%s) + $(hs_timeout)))
    for svc in "${targets[@]}"; do
        key=$(hs_key "$svc")
        if pid=$(ts_alive "$key"); then
            if [[ $(hs_proc_state "$pid") == T ]]; then
                ts_die "$svc is stopped (SIGSTOP, pid $pid), not dead: resume it with cluster/hosts.sh cont $svc"
            fi
            ts_die "$svc is already running (pid $pid); kill it first (cluster/hosts.sh kill $svc)"
        fi
    done
    # Start them all, then wait: replicas restarted together need each other for a quorum.
    local -A pids=()
    for svc in "${targets[@]}"; do
        pids[$svc]=$(hs_start "$svc" "$bin_dir" "$token")
    done
    for svc in "${targets[@]}"; do
        ts_wait_healthy "$(hs_key "$svc")" "$deadline"
    done
    local nodes=""
    for svc in "${targets[@]}"; do
        ts_say "restarted $svc (pid ${pids[$svc]}) at $(ts_url "$(hs_key "$svc")")"
        case $svc in node*) nodes+="${nodes:+,}${svc#node}=${TS_NODE_URL[${svc#node}]}" ;; esac
    done
    if [[ -n $nodes ]]; then ts_lab status --nodes "$nodes"; fi
}

# hs_node_arg WORD: node1..node3, or the leader's name.
hs_node_arg() {
    local node
    if [[ $1 == leader ]]; then
        node=$(hs_leader_node) || ts_die "no live replica reports itself Raft leader right now"
        printf '%s' "$node"
    else
        hs_is_one_of "$1" "${HS_REPLICAS[@]}" || ts_die "'$1' is not a replica (${HS_REPLICAS[*]}, leader)"
        printf '%s' "$1"
    fi
}

# hs_nft_apply NS RULE…: replaces NS's nemesis table with one holding RULEs ("input ip saddr X"
# or "output ip daddr X"), atomically.
hs_nft_apply() {
    local ns=$1 rule chain match
    shift
    {
        printf 'add table inet %s\n' "$HS_NFT_TABLE"
        printf 'delete table inet %s\n' "$HS_NFT_TABLE"
        printf 'add table inet %s\n' "$HS_NFT_TABLE"
        printf 'add chain inet %s input { type filter hook input priority -300; policy accept; }\n' "$HS_NFT_TABLE"
        printf 'add chain inet %s output { type filter hook output priority -300; policy accept; }\n' "$HS_NFT_TABLE"
        for rule in "$@"; do
            chain=${rule%% *}
            match=${rule#* }
            printf 'add rule inet %s %s %s counter drop\n' "$HS_NFT_TABLE" "$chain" "$match"
        done
    } | ip netns exec "$ns" nft -f - || ts_die "nft failed in namespace $ns"
}

hs_nft_clear() {
    local host ns
    for host in "${HS_HOSTS[@]}"; do
        ns=$(hs_ns "$host")
        hs_ns_exists "$ns" || continue
        if ip netns exec "$ns" nft list table inet "$HS_NFT_TABLE" >/dev/null 2>&1; then
            ip netns exec "$ns" nft delete table inet "$HS_NFT_TABLE" || ts_die "nft could not delete the table in $ns"
        fi
    done
}

cmd_partition() {
    local usage_p="usage: cluster/hosts.sh partition isolate NODE | split NODE | oneway FROM TO"
    (($# >= 1)) || ts_die "$usage_p"
    hs_need_root
    hs_tools
    hs_config use
    hs_need_network
    local kind=$1 node from to other desc
    local -A rules=()
    case $kind in
    isolate | split)
        (($# == 2)) || ts_die "$usage_p"
        node=$(hs_node_arg "$2")
        for other in "${HS_REPLICAS[@]}"; do
            [[ $other != "$node" ]] || continue
            # Both sides drop, so the cut holds whatever one side's rules let through.
            rules[$node]+="input ip saddr $(hs_ip "$other")"$'\n'"output ip daddr $(hs_ip "$other")"$'\n'
            rules[$other]+="input ip saddr $(hs_ip "$node")"$'\n'"output ip daddr $(hs_ip "$node")"$'\n'
        done
        local rest=()
        for other in "${HS_REPLICAS[@]}"; do [[ $other == "$node" ]] || rest+=("$other"); done
        if [[ $kind == isolate ]]; then
            desc="isolate $node: $node cut from ${rest[*]} both ways"
        else
            desc="split $node: minority {$node} | majority {${rest[*]}}"
        fi
        ;;
    oneway)
        (($# == 3)) || ts_die "$usage_p"
        from=$(hs_node_arg "$2")
        to=$(hs_node_arg "$3")
        [[ $from != "$to" ]] || ts_die "oneway needs two different replicas"
        rules[$from]+="output ip daddr $(hs_ip "$to")"$'\n'
        rules[$to]+="input ip saddr $(hs_ip "$from")"$'\n'
        desc="oneway $from -> $to: packets from $from to $to dropped, $to -> $from allowed"
        ;;
    *) ts_die "unknown partition '$kind' ($usage_p)" ;;
    esac
    ts_lock
    hs_nft_clear
    local svc
    local -a list
    for svc in "${!rules[@]}"; do
        mapfile -t list < <(printf '%s' "${rules[$svc]}")
        hs_nft_apply "$(hs_ns "$svc")" "${list[@]}"
    done
    printf '%s\n' "$desc" >"$HS_PARTITION_FILE"
    ts_say "partition: $desc (nft table inet $HS_NFT_TABLE; cluster/hosts.sh heal removes it)"
}

cmd_heal() {
    (($# == 0)) || ts_die "usage: cluster/hosts.sh heal"
    hs_need_root
    hs_config use
    hs_need_network
    ts_lock
    hs_nft_clear
    local had=""
    [[ -s $HS_PARTITION_FILE ]] && had=$(head -n1 "$HS_PARTITION_FILE")
    rm -f "$HS_PARTITION_FILE"
    if [[ -n $had ]]; then
        ts_say "healed: removed the partition ($had)"
    else
        ts_say "healed: no partition rules remain"
    fi
}

cmd_exec() {
    (($# >= 2)) || ts_die "usage: cluster/hosts.sh exec SVC CMD… (SVC: catalog, frontend, node1..node3, client)"
    hs_need_root
    hs_config use
    local host=$1 ns
    shift
    hs_is_one_of "$host" "${HS_HOSTS[@]}" || ts_die "unknown host '$host' (${HS_HOSTS[*]})"
    ns=$(hs_ns "$host")
    hs_ns_exists "$ns" || ts_die "no namespace $ns; start the hosts with cluster/hosts.sh up"
    if [[ -z ${TOYSTORE_CLUSTER_TOKEN:-} && -r $TS_TOKEN_FILE ]]; then
        TOYSTORE_CLUSTER_TOKEN=$(head -n1 "$TS_TOKEN_FILE")
        export TOYSTORE_CLUSTER_TOKEN
    fi
    exec ip netns exec "$ns" "$@"
}

cmd_ip() {
    (($# == 1)) || ts_die "usage: cluster/hosts.sh ip SVC"
    hs_config use
    hs_is_one_of "$1" "${HS_HOSTS[@]}" || ts_die "unknown host '$1' (${HS_HOSTS[*]})"
    hs_ip "$1"
    printf '\n'
}

cmd_leader() {
    (($# == 0)) || ts_die "usage: cluster/hosts.sh leader"
    hs_need_root
    hs_config use
    hs_need_network
    local leader id term
    leader=$(ts_settled_leader || ts_leader) || ts_die "no live replica reports itself Raft leader right now"
    read -r id term <<<"$leader"
    printf 'node%s %s\n' "$id" "$term"
}

cmd_wait() {
    (($# <= 1)) || ts_die "usage: cluster/hosts.sh wait [SECS]"
    local secs=${1:-60} leader id term
    [[ $secs =~ ^[0-9]+$ ]] || ts_die "'$secs' is not a number of seconds"
    hs_need_root
    hs_config use
    hs_need_network
    leader=$(hs_wait_settled $(($(date +%s) + secs)))
    read -r id term <<<"$leader"
    ts_say "settled: every service healthy, leader node$id at term $term"
}

case $command in
up)
    (($# == 0)) || ts_die "usage: cluster/hosts.sh up"
    cmd_up
    ;;
down) cmd_down "$@" ;;
status)
    (($# == 0)) || ts_die "usage: cluster/hosts.sh status"
    cmd_status
    ;;
kill | stop | cont) cmd_signal "$command" "$@" ;;
restart) cmd_restart "$@" ;;
partition) cmd_partition "$@" ;;
heal) cmd_heal "$@" ;;
exec) cmd_exec "$@" ;;
ip) cmd_ip "$@" ;;
leader) cmd_leader "$@" ;;
wait) cmd_wait "$@" ;;
*) ts_die "unknown command '$command' ($usage)" ;;
esac
