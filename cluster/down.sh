#!/usr/bin/env bash
# cluster/down.sh: stops the toy store started by cluster/up.sh: SIGTERM to every service named
# in $TOYSTORE_HOME/pids (front-end first, then the order nodes, then the catalog), up to ~10 s
# for each to exit, then SIGKILL for stragglers; removes the pid files.
#
# Usage: cluster/down.sh [--wipe]
#   --wipe   also delete $TOYSTORE_HOME/data (every order, the stock, the Raft logs)
#
# Environment: TOYSTORE_HOME (default <repo>/run), TOYSTORE_STOP_TIMEOUT (seconds, default 10).
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

usage="usage: cluster/down.sh [--wipe]"
ts_args 0 1 "$usage" "$@"
wipe=0
case ${1:-} in
"") ;;
--wipe) wipe=1 ;;
*) ts_die "unexpected argument '$1' ($usage)" ;;
esac

ts_init use
[[ -d $TOYSTORE_HOME ]] && ts_lock
stop_timeout=${TOYSTORE_STOP_TIMEOUT:-10}
[[ $stop_timeout =~ ^[0-9]+$ ]] || ts_die "TOYSTORE_STOP_TIMEOUT=$stop_timeout is not a number of seconds"

# stop_group SERVICE…: SIGTERM to every live one, wait, SIGKILL what is left.
stopped_any=0
stop_group() {
    local svc pid deadline left
    local -A pids=()
    for svc in "$@"; do
        if pid=$(ts_alive "$svc"); then
            kill -TERM "$pid" 2>/dev/null || true
            pids[$svc]=$pid
            stopped_any=1
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

if [[ -d $TS_PIDS ]] && ts_any_pidfile; then
    node_services=()
    for id in "${TS_NODE_IDS[@]}"; do node_services+=("node-$id"); done
    stop_group frontend
    stop_group "${node_services[@]}"
    stop_group catalog
    # Pid files of services no longer in the configuration.
    for file in "$TS_PIDS"/*.pid; do
        [[ -f $file ]] || continue
        svc=${file##*/}
        svc=${svc%.pid}
        case $svc in catalog | frontend | node-*) stop_group "$svc" ;; *) rm -f "$file" ;; esac
    done
fi

if ((stopped_any)); then
    ts_say "the toy store in $TOYSTORE_HOME is stopped"
else
    ts_say "nothing is running in $TOYSTORE_HOME"
fi

if ((wipe)); then
    if [[ -d $TS_DATA ]]; then
        rm -rf -- "$TS_DATA"
        ts_say "wiped $TS_DATA (orders, stock and Raft logs are gone; logs and the cluster token are kept)"
    else
        ts_say "no data to wipe ($TS_DATA does not exist)"
    fi
fi
