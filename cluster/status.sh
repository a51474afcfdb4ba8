#!/usr/bin/env bash
# cluster/status.sh: prints the state of the toy store started by cluster/up.sh: one row per order
# node (pid, alive, Raft role, term, leader, health, applied index, orders, digest; the replica
# the front-end selected is marked with *), whether the selected replica leads, then the catalog
# and the front-end (selected replica, reselections, cache hit ratio and fill). Exits 1 if no
# cluster is up in $TOYSTORE_HOME.
#
# Usage: cluster/status.sh
#
# Environment: TOYSTORE_HOME (default <repo>/run).
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

ts_args 0 0 "usage: cluster/status.sh" "$@"

ts_init use
ts_need_tools curl python3
ts_need_cluster

alive_count=0
declare -A digests=() applied=() roles=()
selected=""

ts_say "toy store in $TOYSTORE_HOME"
ts_say ""
if pid=$(ts_alive frontend) && body=$(ts_get "$TS_FRONTEND_URL/status"); then
    selected=$(ts_json "$body" data.selected_replica)
fi
fmt='%-6s %-8s %-6s %-10s %-5s %-7s %-13s %-8s %-7s %-12s\n'
# shellcheck disable=SC2059
printf "$fmt" node pid alive role term leader health applied orders digest
for id in "${TS_NODE_IDS[@]}"; do
    svc="node-$id"
    label=$id
    [[ $id == "$selected" ]] && label="$id *"
    if pid=$(ts_alive "$svc"); then
        alive_count=$((alive_count + 1))
        if body=$(ts_get "${TS_NODE_URL[$id]}/status"); then
            mapfile -t f < <(ts_json "$body" data.role data.term data.leader data.health data.applied_index data.orders data.digest)
            digest=${f[6]:0:12}
            digests[$id]=${f[6]}
            applied[$id]=${f[4]}
            roles[$id]=${f[0]}
        else
            f=("no-answer" - - - - - -)
            digest=-
        fi
        # shellcheck disable=SC2059
        printf "$fmt" "$label" "$pid" yes "${f[0]}" "${f[1]}" "${f[2]}" "${f[3]}" "${f[4]}" "${f[5]}" "$digest"
    else
        # shellcheck disable=SC2059
        printf "$fmt" "$label" - no - - - - - - -
    fi
done

# Do the live replicas agree?
if ((${#digests[@]} > 1)); then
    mapfile -t distinct < <(printf '%s\n' "${digests[@]}" | sort -u)
    mapfile -t distinct_applied < <(printf '%s\n' "${applied[@]}" | sort -u)
    if ((${#distinct[@]} == 1 && ${#distinct_applied[@]} == 1)); then
        ts_say "replicas: the ${#digests[@]} answering nodes agree (same applied index and digest)"
    else
        ts_say "replicas: the answering nodes differ (a node may still be catching up)"
    fi
fi
if [[ -n $selected && $selected != - ]]; then
    if [[ ${roles[$selected]:-} == leader ]]; then
        ts_say "selection: the front-end's replica $selected (*) is the Raft leader: orders take no forwarding hop"
    else
        ts_say "selection: the front-end's replica $selected (*) is not the Raft leader yet: it forwards orders until it takes over"
    fi
fi

ts_say ""
fmt2='%-9s %-8s %-6s %s\n'
# shellcheck disable=SC2059
printf "$fmt2" service pid alive details
if pid=$(ts_alive catalog); then
    alive_count=$((alive_count + 1))
    if ts_healthy "$TS_CATALOG_URL"; then health=healthy; else health="not answering /health"; fi
    # shellcheck disable=SC2059
    printf "$fmt2" catalog "$pid" yes "$TS_CATALOG_URL ($health)"
else
    # shellcheck disable=SC2059
    printf "$fmt2" catalog - no -
fi

if pid=$(ts_alive frontend); then
    alive_count=$((alive_count + 1))
    if body=$(ts_get "$TS_FRONTEND_URL/status"); then
        mapfile -t f < <(ts_json "$body" data.selected_replica data.reselections data.cache.hits \
            data.cache.misses data.cache.entries data.cache.capacity data.cache.lease_valid)
        if [[ ${f[2]} =~ ^[0-9]+$ && ${f[3]} =~ ^[0-9]+$ ]] && ((f[2] + f[3] > 0)); then
            ratio=$(python3 -c 'import sys; h, m = int(sys.argv[1]), int(sys.argv[2]); print(f"{100 * h / (h + m):.1f}% ({h} hits / {h + m})")' "${f[2]}" "${f[3]}")
        else
            ratio="- (no lookups yet)"
        fi
        details="selected replica ${f[0]}, reselections ${f[1]}, cache hit ratio $ratio, cache ${f[4]}/${f[5]} entries, lease ${f[6]}"
    else
        details="$TS_FRONTEND_URL/status does not answer"
    fi
    # shellcheck disable=SC2059
    printf "$fmt2" frontend "$pid" yes "$details"
else
    # shellcheck disable=SC2059
    printf "$fmt2" frontend - no -
fi

if ((alive_count == 0)); then
    ts_say ""
    ts_die "no service is running in $TOYSTORE_HOME (start the cluster with cluster/up.sh)"
fi
