#!/usr/bin/env bash
# cluster/kill.sh: crashes one service of the running toy store with kill -9 (no clean shutdown),
# to test failover and recovery. Bring it back with cluster/restart.sh.
#
# Usage: cluster/kill.sh N|leader|catalog|frontend
#   N         order node N (1, 2, 3)
#   leader    the order node whose /status says it is the Raft leader
#   catalog   the catalog
#   frontend  the front-end
#
# Environment: TOYSTORE_HOME (default <repo>/run).
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

usage="usage: cluster/kill.sh N|leader|catalog|frontend"
ts_args 1 1 "$usage" "$@"
target=$1

ts_init use
ts_need_tools curl
ts_need_cluster

extra=""
case $target in
catalog | frontend) svc=$target ;;
leader)
    leader=$(ts_leader) || ts_die "no live order node reports itself Raft leader right now (election in progress, or the nodes are down: see cluster/status.sh)"
    read -r id term <<<"$leader"
    svc="node-$id"
    extra=", the Raft leader at term $term"
    ;;
*)
    [[ $target =~ ^[0-9]+$ && -n ${TS_NODE_URL[$target]:-} ]] ||
        ts_die "unknown target '$target': order nodes are ${TS_NODE_IDS[*]} ($usage)"
    svc="node-$target"
    ;;
esac

pid=$(ts_alive "$svc") || ts_die "$(ts_label "$svc") is not running"
kill -KILL "$pid"
for ((i = 0; i < 50; i++)); do
    ts_pid_is "$svc" "$pid" || break
    sleep 0.1
done
ts_pid_is "$svc" "$pid" && ts_die "$(ts_label "$svc") (pid $pid) is still alive after kill -9"
ts_say "killed $(ts_label "$svc") (pid $pid$extra) with SIGKILL; restart it with: cluster/restart.sh ${svc#node-}"
