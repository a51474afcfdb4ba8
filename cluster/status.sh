#!/usr/bin/env bash
# cluster/status.sh: prints the state of the toy store started by cluster/up.sh: its processes
# (pid, alive), then what the live services say (`toystore-lab status`): one row per replica
# (Raft role, term, leader, health, applied index, orders, digest; the replica the front-end
# selected is marked with *), whether they agree and the selected replica leads, the catalog's
# health and the front-end (selected replica, reselections, cache hit ratio and fill). Exits 1
# if no cluster is up in $TOYSTORE_HOME.
#
# Usage: cluster/status.sh
#
# Environment: TOYSTORE_HOME (default <repo>/run).
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

ts_args 0 0 "usage: cluster/status.sh" "$@"

ts_init use
ts_need_cluster

ts_say "toy store in $TOYSTORE_HOME"
ts_say ""
fmt='%-9s %-8s %s\n'
# shellcheck disable=SC2059
printf "$fmt" process pid alive
alive_count=0
for svc in "${TS_NODE_IDS[@]/#/node-}" catalog frontend; do
    label=${svc#node-}
    if pid=$(ts_alive "$svc"); then
        alive_count=$((alive_count + 1))
        # shellcheck disable=SC2059
        printf "$fmt" "$label" "$pid" yes
    else
        # shellcheck disable=SC2059
        printf "$fmt" "$label" - no
    fi
done
if ((alive_count == 0)); then
    ts_say ""
    ts_die "no service is running in $TOYSTORE_HOME (start the cluster with cluster/up.sh)"
fi
ts_say ""
ts_status
