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
ts_check_stop_timeout
TS_STOPPED_ANY=0

if [[ -d $TS_PIDS ]] && ts_any_pidfile; then
    node_services=()
    for id in "${TS_NODE_IDS[@]}"; do node_services+=("node-$id"); done
    ts_stop_group frontend
    ts_stop_group "${node_services[@]}"
    ts_stop_group catalog
    # Pid files of services no longer in the configuration.
    for file in "$TS_PIDS"/*.pid; do
        [[ -f $file ]] || continue
        svc=${file##*/}
        svc=${svc%.pid}
        case $svc in catalog | frontend | node-*) ts_stop_group "$svc" ;; *) rm -f "$file" ;; esac
    done
fi

if ((TS_STOPPED_ANY)); then
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
