#!/usr/bin/env bash
# cluster/restart.sh: starts one stopped or crashed service of the toy store again, on its old
# data and the ports up.sh recorded, waits for its /health and prints it. Refuses if it runs.
#
# Usage: cluster/restart.sh N|catalog|frontend
#   N   order node N (1, 2, 3): it catches up through Raft (log replication or snapshot)
#
# Environment: TOYSTORE_HOME (default <repo>/run); TOYSTORE_BIN_DIR (default: the binaries
# up.sh used); TOYSTORE_UP_TIMEOUT (seconds to wait for health, default 60); exported
# TOYSTORE_* and RUST_LOG variables reach the service as with up.sh.
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

usage="usage: cluster/restart.sh N|catalog|frontend"
ts_args 1 1 "$usage" "$@"
target=$1

ts_init use
ts_need_tools curl setsid
[[ -f $TS_PORTS_FILE ]] ||
    ts_die "no cluster was started in $TOYSTORE_HOME ($TS_PORTS_FILE is missing); use cluster/up.sh"
ts_lock

case $target in
catalog | frontend) svc=$target ;;
leader) ts_die "a leader is always running; name the node to restart ($usage)" ;;
*)
    [[ $target =~ ^[0-9]+$ && -n ${TS_NODE_URL[$target]:-} ]] ||
        ts_die "unknown target '$target': order nodes are ${TS_NODE_IDS[*]} ($usage)"
    svc="node-$target"
    ;;
esac

if pid=$(ts_alive "$svc"); then
    ts_die "$(ts_label "$svc") is already running (pid $pid); kill it first (cluster/kill.sh $target)"
fi

bin_dir=$(ts_bin_dir_for_restart)
token=$(ts_token)
timeout_secs=${TOYSTORE_UP_TIMEOUT:-60}
[[ $timeout_secs =~ ^[0-9]+$ ]] || ts_die "TOYSTORE_UP_TIMEOUT=$timeout_secs is not a number of seconds"

pid=$(ts_start "$svc" "$bin_dir" "$token")
ts_wait_healthy "$svc" $(($(date +%s) + timeout_secs))

url=$(ts_url "$svc")
case $svc in
node-*)
    ts_say "restarted node $target (pid $pid) at $url; it catches up through Raft (see cluster/status.sh):"
    ts_lab status --nodes "$target=$url"
    ;;
*)
    ts_say "restarted $svc (pid $pid) at $url"
    ;;
esac
ts_say "log: $(ts_logfile "$svc")"
