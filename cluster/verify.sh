#!/usr/bin/env bash
# cluster/verify.sh: Jepsen-style verification of the toy store on separate hosts. Starts a
# fresh store with cluster/hosts.sh (one network namespace per service), runs the load client
# in the client namespace recording every operation, injects one fault per round (chosen by a
# seeded RNG, every kind once before any repeats), heals it and waits for the store to settle,
# then reads the final state of every replica and the catalog (toystore-state) and checks the
# history against it (toystore-check). Needs root, like hosts.sh.
#
# Usage: cluster/verify.sh --rounds R [--seed S] [--fault-secs F] [--iterations N]
#                          [--quiet-secs Q] [--retention SECS] [--faults LIST]
#                          [--order-cache on|off|mixed] [--break KIND] [--keep]
#   --rounds R        number of nemesis rounds (one fault each)
#   --seed S          seed of the client and of the fault schedule (default: random, printed)
#   --fault-secs F    how long each fault lasts, seconds (default 5; a pause lasts at least 2)
#   --iterations N    iterations per client session (default: as many as the rounds last;
#                     the client is stopped with SIGINT once they are over)
#   --quiet-secs Q    undisturbed load between a round's recovery and the next fault (default 2)
#   --retention SECS  short-retention mode: the store forgets request ids after SECS seconds
#                     (TOYSTORE_DEDUP_RETENTION_SECS, read by the replicas and the catalog;
#                     at least 6; the reservation timeout, TOYSTORE_RESERVATION_TIMEOUT_MS,
#                     becomes SECS/4 when shorter than its 10 s default, as the replicas
#                     require), and 2 of the 5 client sessions re-send some acknowledged
#                     orders with the same Idempotency-Key within that window (must get the
#                     same number) and after it (the same number, a new order or a 409); the
#                     client then runs at least 2 x SECS + 10 s so late re-sends happen
#   --faults LIST     draw the faults from this comma-separated list only (default: every
#                     fault below; with --break, the faults that expose it)
#   --order-cache M   the front-end's cache of committed orders (answers GET /orders/{n}
#                     without asking a replica): on, off (TOYSTORE_ORDER_CACHE_CAPACITY=0: every
#                     order read reaches a replica), or mixed (default; off with --break
#                     local-read): the first half of the rounds on, the rest off, the
#                     front-end restarted (SIGTERM, start) in between
#   --break KIND      run a deliberately broken store, to show the checker catches it: the
#                     services get --fault-injection (TOYSTORE_FAULT_INJECTION=1) and the
#                     broken behaviour (TOYSTORE_CATALOG_BREAK / TOYSTORE_REPLICA_BREAK):
#                       skip-invalidation  the catalog pushes no invalidation to the
#                                          front-end (expected: read-your-writes fails)
#                       release-confirmed  the catalog puts a confirmed reservation's units
#                                          back on sale (expected: stock-conservation fails)
#                       local-read         replicas answer GET /orders/{n} from their own
#                                          state, without the read index or the leader
#                                          (expected: linearizable-reads fails)
#                       ack-before-commit  the leader answers an order before its Raft entry
#                                          commits (expected: acked-orders-durable fails)
#                     The run then ends with status 1 (violations) when the checker caught it.
#   --keep            leave the hosts up at the end (default: cluster/hosts.sh down, data kept)
#
# Faults (fault name in nemesis.jsonl, what it does, how it is healed):
#   kill-leader         kill -9 of the Raft leader                    restart it on its data
#   kill-follower       kill -9 of a follower                         restart it
#   kill-all-replicas   kill -9 of all three replicas at once         restart all three
#   pause-leader        SIGSTOP of the leader (> election timeout)    SIGCONT
#   partition-leader    the leader cut from both followers (nft)      heal
#   partition-follower  a follower cut from the others (minority)     heal
#   oneway-leader       packets leader -> one follower dropped        heal
#   kill-catalog        kill -9 of the catalog                        restart it
#   kill-frontend       kill -9 of the front-end, orders in flight    restart it
#   bounce-frontend     kill -9 of the front-end, restarted at once,  (the restart is the heal)
#                       three times 1 s apart: it registers with the catalog while the
#                       stock changes of the orders it had in flight still commit
#
# Files in the output directory ($TOYSTORE_VERIFY_HOME, default <repo>/run/verify):
# history.jsonl (client), nemesis.jsonl (faults), all.jsonl (both), state.json, report.json,
# timeline.html, check.txt (the checker's text report), client.log, nemesis.log, and bin/ (the
# copy of the binaries the run used).
#
# Exit status: 0 no violation, 1 violations (toystore-check's verdict), 2 the run could not be
# completed (setup failure, the store did not recover, a tool missing), 130 interrupted.
#
# Environment: TOYSTORE_ORDER_CACHE_CAPACITY (the front-end's order cache in rounds where it is
# on; default the front-end's), TOYSTORE_INITIAL_STOCK (default here 1000), TOYSTORE_RESTOCK_SECS (default here
# 2), TOYSTORE_BIN_DIR, TOYSTORE_HOSTS_HOME / _PREFIX / _SUBNET (see cluster/hosts.sh),
# TOYSTORE_VERIFY_HOME, TOYSTORE_VERIFY_SETTLE_TIMEOUT (seconds the store may take to recover
# after a heal, default 60), TOYSTORE_VERIFY_CLIENT_TIMEOUT (seconds to wait for the client
# after the last round before SIGINT, default 600).
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

usage="usage: cluster/verify.sh --rounds R [--seed S] [--fault-secs F] [--iterations N] [--quiet-secs Q] [--retention SECS] [--faults LIST] [--order-cache on|off|mixed] [--break KIND] [--keep]"
ts_args 0 30 "$usage" "$@"

# Until the run starts, any failure (ts_die exits 1) is "could not run" (2), not "violations".
trap 'rc=$?; if ((rc == 1)); then exit 2; fi; exit "$rc"' EXIT

HOSTS="$TS_CLUSTER_DIR/hosts.sh"
FAULTS=(kill-leader kill-follower kill-all-replicas pause-leader partition-leader
    partition-follower oneway-leader kill-catalog kill-frontend bounce-frontend)
# How many times a bounce-frontend round kills and restarts the front-end, and the load in
# between (seconds): each restart is one more chance to register during a stock change.
BOUNCES=3
BOUNCE_GAP_SECS=1
# --break KIND: the check that must fail, and the faults that expose it (a bug that only shows
# when the leader changes needs rounds that change it). skip-invalidation and release-confirmed
# show without any fault.
declare -A BREAK_CHECK=([skip-invalidation]=read-your-writes [release-confirmed]=stock-conservation
    [local-read]=linearizable-reads [ack-before-commit]=acked-orders-durable)
declare -A BREAK_FAULTS=([skip-invalidation]="${FAULTS[*]}" [release-confirmed]="${FAULTS[*]}"
    [local-read]="partition-leader kill-leader bounce-frontend"
    [ack-before-commit]="kill-leader partition-leader pause-leader")
# Key-reuse sessions in short-retention mode (of the client's 5).
REUSE_SESSIONS=2
NODES="1=http://node1.toy:8201,2=http://node2.toy:8201,3=http://node3.toy:8201"
CATALOG_URL=http://catalog.toy:8100
FRONTEND_URL=http://frontend.toy:8000

rounds="" seed="" fault_secs=5 iterations="" quiet_secs=2 retention="" keep=0
fault_list="" order_cache="" break_kind=""
while (($# > 0)); do
    if [[ $1 == --keep ]]; then
        keep=1
        shift
        continue
    fi
    ts_option "$usage" "--rounds --seed --fault-secs --iterations --quiet-secs --retention --faults --order-cache --break" "$@"
    shift "$TS_SHIFT"
    case $TS_OPT in
    --rounds) rounds=$TS_VALUE ;;
    --seed) seed=$TS_VALUE ;;
    --fault-secs) fault_secs=$TS_VALUE ;;
    --iterations) iterations=$TS_VALUE ;;
    --quiet-secs) quiet_secs=$TS_VALUE ;;
    --retention) retention=$TS_VALUE ;;
    --faults) fault_list=$TS_VALUE ;;
    --order-cache) order_cache=$TS_VALUE ;;
    --break) break_kind=$TS_VALUE ;;
    esac
done
[[ -n $rounds ]] || ts_die "--rounds is required ($usage)"
ts_need_positive --rounds "$rounds"
[[ $fault_secs =~ ^[0-9]+(\.[0-9]+)?$ && ! $fault_secs =~ ^0+(\.0+)?$ ]] ||
    ts_die "--fault-secs '$fault_secs' is not a positive number of seconds"
[[ $quiet_secs =~ ^[0-9]+(\.[0-9]+)?$ ]] || ts_die "--quiet-secs '$quiet_secs' is not a number of seconds"
if [[ -n $retention ]]; then
    # Below 6 s the 2 s margins on either side of the window leave no room to re-send in it.
    if ! [[ $retention =~ ^[0-9]+$ ]] || ((10#$retention < 6 || 10#$retention > 86400)); then
        ts_die "--retention '$retention' must be a whole number of seconds from 6 to 86400"
    fi
    retention=$((10#$retention))
fi
if [[ -n $break_kind && -z ${BREAK_CHECK[$break_kind]:-} ]]; then
    ts_die "--break '$break_kind' is not one of: ${!BREAK_CHECK[*]}"
fi
if [[ -n $fault_list ]]; then
    IFS=, read -r -a chosen <<<"$fault_list"
    for fault in "${chosen[@]}"; do
        [[ " ${FAULTS[*]} " == *" $fault "* ]] || ts_die "--faults: unknown fault '$fault' (${FAULTS[*]})"
    done
    ((${#chosen[@]} > 0)) || ts_die "--faults needs at least one fault"
    FAULTS=("${chosen[@]}")
elif [[ -n $break_kind ]]; then
    read -r -a FAULTS <<<"${BREAK_FAULTS[$break_kind]}"
fi
# Without the order cache every order read reaches a replica, which is where a local read
# shows; with it, reads of the orders this front-end placed never leave it.
if [[ -z $order_cache ]]; then
    if [[ $break_kind == local-read ]]; then order_cache=off; else order_cache=mixed; fi
fi
case $order_cache in on | off | mixed) ;; *) ts_die "--order-cache '$order_cache' must be on, off or mixed" ;; esac
if [[ -z $seed ]]; then seed=$(($(od -An -tu4 -N4 /dev/urandom | tr -d ' ') % 1000000)); fi
ts_need_natural --seed "$seed"
[[ $(id -u) == 0 ]] || ts_die "cluster/verify.sh needs root (it runs the store in network namespaces); run it with sudo"
ts_ensure_tools python3 awk:gawk

if [[ -z $iterations ]]; then
    # No fixed amount: the client runs until the rounds are over and is then told to stop
    # (SIGINT ends its sessions after their current iteration; it then verifies and writes
    # its history as usual).
    iterations=1000000000
fi
ts_need_positive --iterations "$iterations"
settle_timeout=${TOYSTORE_VERIFY_SETTLE_TIMEOUT:-60}
client_timeout=${TOYSTORE_VERIFY_CLIENT_TIMEOUT:-600}
[[ $settle_timeout =~ ^[0-9]+$ ]] || ts_die "TOYSTORE_VERIFY_SETTLE_TIMEOUT=$settle_timeout is not a number of seconds"
[[ $client_timeout =~ ^[0-9]+$ ]] || ts_die "TOYSTORE_VERIFY_CLIENT_TIMEOUT=$client_timeout is not a number of seconds"


export TOYSTORE_INITIAL_STOCK=${TOYSTORE_INITIAL_STOCK:-1000}
export TOYSTORE_RESTOCK_SECS=${TOYSTORE_RESTOCK_SECS:-2}
reuse_args=()
if [[ -n $retention ]]; then
    # One variable for every service that remembers request ids (hosts.sh passes every
    # exported TOYSTORE_* on), and the client judges its re-sends by the same value.
    export TOYSTORE_DEDUP_RETENTION_SECS=$retention
    # The replicas refuse to start unless the retention is at least 4 x the reservation
    # timeout (the sweeper must settle a reservation well before the catalog stops letting it
    # be used): a short retention needs a shorter timeout than the 10 s default.
    if [[ -z ${TOYSTORE_RESERVATION_TIMEOUT_MS:-} ]] && ((retention * 1000 / 4 < 10000)); then
        export TOYSTORE_RESERVATION_TIMEOUT_MS=$((retention * 1000 / 4))
    fi
    reuse_args=(--reuse-sessions "$REUSE_SESSIONS" --retention "$retention")
fi
# A run without --break is never broken by a variable left in the caller's environment.
unset TOYSTORE_CATALOG_BREAK TOYSTORE_REPLICA_BREAK
case $break_kind in
skip-invalidation | release-confirmed) export TOYSTORE_FAULT_INJECTION=1 TOYSTORE_CATALOG_BREAK=$break_kind ;;
local-read | ack-before-commit) export TOYSTORE_FAULT_INJECTION=1 TOYSTORE_REPLICA_BREAK=$break_kind ;;
esac

# ---------------------------------------------------------------------------------------------
# Binaries

BIN=$(ts_release_dir)
need_bins=(catalog order-raft frontend client toystore-check toystore-state toystore-lab)
missing_bins() {
    local bin
    for bin in "${need_bins[@]}"; do [[ -x $BIN/$bin ]] || printf '%s ' "$bin"; done
}
if [[ -n $(missing_bins) ]]; then
    if [[ -n ${TOYSTORE_BIN_DIR:-} ]]; then
        ts_die "TOYSTORE_BIN_DIR=$TOYSTORE_BIN_DIR lacks: $(missing_bins)(build them with: cargo build --release --bins -p catalog -p frontend -p order-raft -p client -p checker)"
    fi
    ts_cargo_build
    [[ -z $(missing_bins) ]] || ts_die "$BIN still lacks $(missing_bins)after the build"
fi
"$BIN/client" --help 2>/dev/null | grep -q -- '--read-replicas' ||
    ts_die "$BIN/client has no --read-replicas flag (an older build?): rebuild it"
if [[ -n $retention ]]; then
    "$BIN/client" --help 2>/dev/null | grep -q -- '--reuse-sessions' ||
        ts_die "$BIN/client has no --reuse-sessions flag (an older build?): rebuild it"
fi
if [[ -n $break_kind ]]; then
    bin=order-raft
    if [[ -n ${TOYSTORE_CATALOG_BREAK:-} ]]; then bin=catalog; fi
    "$BIN/$bin" --help 2>/dev/null | grep -q -- "$break_kind" ||
        ts_die "$BIN/$bin has no --break $break_kind (an older build?): rebuild it"
fi

RUN=${TOYSTORE_VERIFY_HOME:-$TS_REPO/run/verify}
[[ $RUN == /* ]] || RUN="$PWD/$RUN"
mkdir -p "$RUN"
# The run uses a copy of the binaries: a cargo build during the run cannot swap a service's
# binary between a kill and its restart. hosts.sh starts the services from the copy.
rm -rf -- "${RUN:?}/bin"
mkdir -p "$RUN/bin"
for bin in "${need_bins[@]}"; do cp -p -- "$BIN/$bin" "$RUN/bin/$bin"; done
SOURCE_BIN=$BIN
BIN="$RUN/bin"

# The schedule: FAULT PICK per round, from the seed (client/src/lab/schedule.rs: every fault
# once before any twice, none twice in a row).
mapfile -t schedule < <("$BIN/toystore-lab" schedule --seed "$seed" --rounds "$rounds" "${FAULTS[@]}")
((${#schedule[@]} == rounds)) || ts_die "could not compute the fault schedule"
export TOYSTORE_BIN_DIR=$BIN
HISTORY="$RUN/history.jsonl"
NEMESIS="$RUN/nemesis.jsonl"
ALL="$RUN/all.jsonl"
STATE="$RUN/state.json"
REPORT="$RUN/report.json"
TIMELINE="$RUN/timeline.html"
CHECK_TXT="$RUN/check.txt"
CLIENT_LOG="$RUN/client.log"
NEMESIS_LOG="$RUN/nemesis.log"
# One line per round: ROUND FAULT TERM_BEFORE TERM_AFTER (the Raft term before the fault and
# once the store settled after the heal): how many elections each fault cost.
TERMS="$RUN/terms.txt"
: >"$TERMS"
rm -f -- "$HISTORY" "$NEMESIS" "$ALL" "$STATE" "$REPORT" "$TIMELINE" "$CHECK_TXT" "$CLIENT_LOG" "$NEMESIS_LOG"
: >"$NEMESIS"

# ---------------------------------------------------------------------------------------------
# Helpers

vf_say() { printf '[%s] %s\n' "$(date +%T)" "$*"; }

HOSTS_HOME=${TOYSTORE_HOSTS_HOME:-$TS_REPO/run/hosts}
user_order_cache=${TOYSTORE_ORDER_CACHE_CAPACITY-}
frontend_cache=""
# round_cache R: whether the front-end's order cache is on or off in round R. Mixed switches
# once, half way: a graceful restart of the front-end takes seconds (the requests in hand
# finish within its order retry budget), and the first pass over the faults is then with the
# cache, the second without.
round_cache() {
    case $order_cache in
    mixed) if (($1 <= (rounds + 1) / 2)); then echo on; else echo off; fi ;;
    *) echo "$order_cache" ;;
    esac
}
# use_order_cache on|off: the order cache of the front-end started next (hosts.sh passes
# TOYSTORE_ORDER_CACHE_CAPACITY on; "on" is the caller's capacity, or the front-end's default).
use_order_cache() {
    if [[ $1 == off ]]; then
        export TOYSTORE_ORDER_CACHE_CAPACITY=0
    elif [[ -n $user_order_cache ]]; then
        export TOYSTORE_ORDER_CACHE_CAPACITY=$user_order_cache
    else
        unset TOYSTORE_ORDER_CACHE_CAPACITY
    fi
    frontend_cache=$1
}

# now_ms: Unix time in milliseconds, with microseconds (e.g. 1764170000123.456).
now_ms() {
    local ns
    ns=$(date +%s%N)
    printf '%s.%s' "${ns:0:${#ns}-6}" "${ns:${#ns}-6:3}"
}

# hosts ARGS…: cluster/hosts.sh, its output appended to nemesis.log; on failure, the end of
# that output on stderr.
hosts() {
    printf '\n$ cluster/hosts.sh %s\n' "$*" >>"$NEMESIS_LOG"
    local from
    from=$(wc -l <"$NEMESIS_LOG")
    if ! "$HOSTS" "$@" >>"$NEMESIS_LOG" 2>&1; then
        tail -n +"$((from + 1))" "$NEMESIS_LOG" | tail -n 40 | sed 's/^/    /' >&2
        return 1
    fi
}

# restart_frontend: stops the front-end with SIGTERM (it answers the requests it has, so
# unlike a fault it leaves no order with an unknown outcome), waits for it to exit (kill -9
# after 10 s) and starts it again with the current environment. Not a fault: no nemesis line.
restart_frontend() {
    local pid="" state i
    read -r pid <"$HOSTS_HOME/pids/frontend.pid" 2>/dev/null || true
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    printf '\n$ kill -TERM %s   # the front-end, to change its order cache\n' "$pid" >>"$NEMESIS_LOG"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 200; i++)); do
        state=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$pid/status" 2>/dev/null) || state=""
        [[ -n $state && $state != Z && $state != X ]] || break
        sleep 0.05
    done
    if ((i == 200)); then hosts kill frontend || return 1; fi
    hosts restart frontend
}

# nemesis_line INVOKE COMPLETE FAULT TARGET PHASE
nemesis_line() {
    printf '{"op":"nemesis","invoke":%s,"complete":%s,"fault":"%s","target":"%s","phase":"%s"}\n' \
        "$1" "$2" "$3" "$4" "$5" >>"$NEMESIS"
}

client_pid=""
# client_running: the client process exists and has not exited (an exited child stays a
# zombie until it is waited for).
client_running() {
    [[ -n $client_pid ]] || return 1
    local state
    state=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$client_pid/status" 2>/dev/null) || return 1
    [[ -n $state && $state != Z && $state != X ]]
}

hosts_started=0
checked=0
# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if client_running; then
        vf_say "stopping the load client (SIGINT) …"
        kill -INT "$client_pid" 2>/dev/null || true
        local i
        for ((i = 0; i < 100; i++)); do
            client_running || break
            sleep 0.1
        done
        if client_running; then kill -KILL "$client_pid" 2>/dev/null || true; fi
    fi
    if ((hosts_started)); then
        if ((keep)); then
            vf_say "the hosts stay up (--keep): cluster/hosts.sh status; cluster/hosts.sh down when done"
        elif "$HOSTS" down >>"$NEMESIS_LOG" 2>&1; then
            vf_say "the hosts are down (data kept for inspection in ${TOYSTORE_HOSTS_HOME:-$TS_REPO/run/hosts}/data)"
        else
            ts_warn "cluster/hosts.sh down failed; see $NEMESIS_LOG"
        fi
    fi
    if ((!checked && rc == 1)); then rc=2; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {
    printf '%s: error: %s\n' "${0##*/}" "$*" >&2
    exit 2
}

# ---------------------------------------------------------------------------------------------
# 1. A fresh store on separate hosts

vf_say "verify: seed $seed, $rounds rounds, faults of ${fault_secs}s, client 5 sessions x $iterations iterations"
vf_say "faults drawn from: ${FAULTS[*]}; the front-end's order cache: $order_cache"
if [[ -n $break_kind ]]; then
    vf_say "BROKEN ON PURPOSE (--break $break_kind): the checker must report ${BREAK_CHECK[$break_kind]} failing"
fi
if [[ -n $retention ]]; then
    vf_say "short retention: request ids forgotten after ${retention}s (TOYSTORE_DEDUP_RETENTION_SECS), reservation timeout ${TOYSTORE_RESERVATION_TIMEOUT_MS:-10000} ms; $REUSE_SESSIONS sessions re-send keys within and after it"
fi
vf_say "output in $RUN; binaries copied from $SOURCE_BIN"
hosts down --wipe || fail "cluster/hosts.sh down --wipe failed (see $NEMESIS_LOG)"
hosts_started=1
use_order_cache "$(round_cache 1)"
vf_say "starting the store (initial stock $TOYSTORE_INITIAL_STOCK, restock every ${TOYSTORE_RESTOCK_SECS}s) …"
hosts up || fail "cluster/hosts.sh up failed (see $NEMESIS_LOG)"
grep -A8 '^  service ' "$NEMESIS_LOG" | sed 's/^/  /' || true

# ---------------------------------------------------------------------------------------------
# 2. The load client, recording its history

# Started in the background by a non-interactive shell, the client would ignore SIGINT;
# env --default-signal gives it the default back, so SIGINT can end it cleanly.
"$HOSTS" exec client env --default-signal=INT "$BIN/client" --frontend "$FRONTEND_URL" --clients 5 --prob 0.8 \
    --max-quantity 3 --iterations "$iterations" --seed "$seed" --history "$HISTORY" --quiet \
    --read-replicas "$NODES" \
    "${reuse_args[@]}" </dev/null >"$CLIENT_LOG" 2>&1 &
client_pid=$!
client_started=$(date +%s)
vf_say "load client started in the client namespace (pid $client_pid, log $CLIENT_LOG)"
sleep "$quiet_secs"
client_running || fail "the load client exited at once; its output:
$(tail -n 20 "$CLIENT_LOG")"

# ---------------------------------------------------------------------------------------------
# 3. Nemesis rounds


pause_secs=$(awk -v f="$fault_secs" 'BEGIN { print (f < 2 ? 2 : f) }')
faults_done=0
late_rounds=()

for ((round = 1; round <= rounds; round++)); do
    read -r fault pick <<<"${schedule[round - 1]}"
    cache=$(round_cache "$round")
    if [[ $cache != "$frontend_cache" ]]; then
        use_order_cache "$cache"
        restart_frontend || fail "round $round: could not restart the front-end with its order cache $cache (see $NEMESIS_LOG)"
        hosts wait "$settle_timeout" || fail "round $round: the store did not settle within ${settle_timeout}s after the front-end restarted"
        vf_say "round $round/$rounds: the front-end restarted (SIGTERM) with its order cache $cache"
        sleep "$quiet_secs"
    fi
    leader_line=$("$HOSTS" leader 2>>"$NEMESIS_LOG") || fail "round $round: no Raft leader before the fault"
    leader=${leader_line%% *}
    term_before=${leader_line##* }
    followers=()
    for node in node1 node2 node3; do [[ $node == "$leader" ]] || followers+=("$node"); done
    follower=${followers[pick % ${#followers[@]}]}
    duration=$fault_secs
    repeat=1
    case $fault in
    kill-leader) target=$leader start=(kill "$leader") heal=(restart "$leader") ;;
    kill-follower) target=$follower start=(kill "$follower") heal=(restart "$follower") ;;
    kill-all-replicas) target=node1,node2,node3 start=(kill replicas) heal=(restart replicas) ;;
    pause-leader) target=$leader start=(stop "$leader") heal=(cont "$leader") duration=$pause_secs ;;
    partition-leader) target=$leader start=(partition isolate "$leader") heal=(heal) ;;
    partition-follower) target=$follower start=(partition split "$follower") heal=(heal) ;;
    oneway-leader) target="$leader->$follower" start=(partition oneway "$leader" "$follower") heal=(heal) ;;
    kill-catalog) target=catalog start=(kill catalog) heal=(restart catalog) ;;
    kill-frontend) target=frontend start=(kill frontend) heal=(restart frontend) ;;
    # No pause between kill and restart: the new front-end registers its cache lease while
    # the catalog still commits (and pushes invalidations for) the orders the old one had in
    # flight.
    bounce-frontend) target=frontend start=(kill frontend) heal=(restart frontend) duration=0 repeat=$BOUNCES ;;
    *) fail "unknown fault $fault" ;;
    esac
    client_running || late_rounds+=("$round")

    for ((hit = 1; hit <= repeat; hit++)); do
        if ((hit > 1)); then sleep "$BOUNCE_GAP_SECS"; fi
        t0=$(now_ms)
        hosts "${start[@]}" || fail "round $round: could not inject $fault on $target"
        t1=$(now_ms)
        nemesis_line "$t0" "$t1" "$fault" "$target" start
        faults_done=$((faults_done + 1))
        if ((repeat > 1)); then
            vf_say "round $round/$rounds: $fault on $target (${start[*]}), $hit of $repeat, for ${duration}s, order cache $cache"
        else
            vf_say "round $round/$rounds: $fault on $target (${start[*]}), for ${duration}s, order cache $cache"
        fi
        sleep "$duration"
        t2=$(now_ms)
        hosts "${heal[@]}" || fail "round $round: could not heal $fault on $target (${heal[*]})"
        t3=$(now_ms)
        nemesis_line "$t2" "$t3" "$fault" "$target" heal
        if ((repeat > 1)); then
            vf_say "  healed (${heal[*]}) in $(awk -v a="$t2" -v b="$t3" 'BEGIN { printf "%.2f", (b - a) / 1000 }')s, $(awk -v a="$t1" -v b="$t2" 'BEGIN { printf "%.2f", (b - a) / 1000 }')s after the kill"
        fi
    done
    settle_start=$(date +%s%N)
    if ! hosts wait "$settle_timeout"; then
        fail "round $round: the store did not recover within ${settle_timeout}s after healing $fault on $target (see $NEMESIS_LOG and the service logs)"
    fi
    settle_ms=$((($(date +%s%N) - settle_start) / 1000000))
    settled=$(grep '^settled:' "$NEMESIS_LOG" | tail -n1)
    term_after=${settled##* at term }
    printf '%s %s %s %s\n' "$round" "$fault" "$term_before" "$term_after" >>"$TERMS"
    vf_say "  healed (${heal[*]}) in $(awk -v a="$t2" -v b="$t3" 'BEGIN { printf "%.2f", (b - a) / 1000 }')s; settled after ${settle_ms} ms: ${settled#settled: } (term $term_before before the fault)"
    sleep "$quiet_secs"
done
if ((${#late_rounds[@]} > 0)); then
    ts_warn "the load client had already finished at round(s) ${late_rounds[*]}: those faults met no load (use a larger --iterations)"
fi

# ---------------------------------------------------------------------------------------------
# 4. The client's end, the final state, the check

if [[ -n $retention ]]; then
    # A key adopted early is re-sent after the window about retention + 5 s later, and its new
    # order's window is probed once more about retention later still.
    min_run=$((2 * retention + 10))
    ran=$(($(date +%s) - client_started))
    if ((ran < min_run)) && client_running; then
        vf_say "short retention: letting the client run $((min_run - ran))s more, so re-sends after the ${retention}s window happen"
        sleep "$((min_run - ran))"
    fi
fi
vf_say "all $rounds rounds done; stopping the load client (SIGINT) and waiting for its verification (at most ${client_timeout}s) …"
sleep "$quiet_secs"
kill -INT "$client_pid" 2>/dev/null || true
deadline=$(($(date +%s) + client_timeout))
while client_running && (($(date +%s) < deadline)); do sleep 0.5; done
if client_running; then
    ts_warn "the client still runs ${client_timeout}s after SIGINT: killing it"
    kill -KILL "$client_pid" 2>/dev/null || true
fi
client_rc=0
wait "$client_pid" || client_rc=$?
client_pid=""
vf_say "load client exited with status $client_rc (non-zero is expected when faults caused request errors); its report:"
sed 's/^/    /' "$CLIENT_LOG"
[[ -s $HISTORY ]] || fail "the client wrote no history ($HISTORY is missing or empty)"

vf_say "reading the final state of every replica and the catalog (toystore-state) …"
if ! "$HOSTS" exec client timeout 300 "$BIN/toystore-state" --nodes "$NODES" --catalog "$CATALOG_URL" \
    --out "$STATE" >>"$NEMESIS_LOG" 2>&1; then
    tail -n 20 "$NEMESIS_LOG" | sed 's/^/    /' >&2
    fail "toystore-state failed (see $NEMESIS_LOG)"
fi
[[ -s $STATE ]] || fail "toystore-state wrote no $STATE"

cat "$HISTORY" "$NEMESIS" >"$ALL"
vf_say "checking the history against the final state (toystore-check) …"
echo
set +e
"$BIN/toystore-check" --history "$ALL" --state "$STATE" --html "$TIMELINE" --json "$REPORT" | tee "$CHECK_TXT"
check_rc=${PIPESTATUS[0]}
set -e
echo
((check_rc == 0 || check_rc == 1)) || fail "toystore-check failed (exit status $check_rc)"
checked=1

summary=$(python3 - "$REPORT" "$NEMESIS" "${break_kind:+${BREAK_CHECK[$break_kind]}}" <<'EOF'
import json, sys
try:
    report = json.load(open(sys.argv[1]))
except (OSError, ValueError) as e:
    report = {"violations": None}
    print(f"(no usable {sys.argv[1]}: {e})")
ops = report.get("operations", {})
total = sum(sum(outcomes.values()) for outcomes in ops.values())
detail = ", ".join(
    f"{op} " + "/".join(f"{n} {outcome}" for outcome, n in sorted(outcomes.items()))
    for op, outcomes in sorted(ops.items()))
faults = [json.loads(line) for line in open(sys.argv[2]) if line.strip()]
started = [f"{f['fault']} ({f.get('target', '-')})" for f in faults if f.get("phase") == "start"]
print(f"operations:      {total} ({detail})")
print(f"faults injected: {len(started)}: {', '.join(started)}")
violations = report.get("violations")
print(f"violations:      {'unknown' if violations is None else len(violations)}")
expected = sys.argv[3]
if expected:
    failed = [c["name"] for c in report.get("checks", []) if c.get("violations")]
    verdict = "caught" if expected in failed else "NOT caught"
    print(f"broken on purpose: {verdict}: expected {expected} to fail; failed: {', '.join(failed) or 'none'}")
EOF
) || summary="(could not summarise $REPORT)"
printf '%s\n' "$summary"
# Term changes per fault kind, one figure per round: a fault that costs no election shows 0s
# (with pre-vote, a healed partition of a follower is one).
if [[ -s $TERMS ]]; then
    printf 'term changes:    %s\n' "$(awk '{ d[$2] = d[$2] (d[$2] == "" ? "" : ",") ($4 - $3) }
        END { for (f in d) print f " " d[f] }' "$TERMS" | sort | paste -sd ';' | sed 's/;/; /g')"
fi
faults_arg=""
if [[ -n $fault_list ]]; then faults_arg=" --faults $fault_list"; fi
cache_arg=""
if [[ $order_cache != mixed ]]; then cache_arg=" --order-cache $order_cache"; fi
printf 'seed:            %s (repeat with: cluster/verify.sh --rounds %s --seed %s --fault-secs %s --iterations %s%s%s%s%s)\n' \
    "$seed" "$rounds" "$seed" "$fault_secs" "$iterations" "${retention:+ --retention $retention}" \
    "$faults_arg" "$cache_arg" "${break_kind:+ --break $break_kind}"
printf 'files:           %s/{history.jsonl,nemesis.jsonl,all.jsonl,state.json,report.json,timeline.html,check.txt,client.log,nemesis.log,terms.txt}\n' "$RUN"
printf 'service logs:    %s/logs\n' "${TOYSTORE_HOSTS_HOME:-$TS_REPO/run/hosts}"
if ((check_rc == 0)); then
    vf_say "verdict: OK (no violation)"
else
    vf_say "verdict: VIOLATIONS (see $CHECK_TXT and $TIMELINE)"
fi
exit "$check_rc"
