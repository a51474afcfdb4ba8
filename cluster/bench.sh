#!/usr/bin/env bash
# cluster/bench.sh: the project's benchmarks, on loopback, against release builds.
#
# Usage: cluster/bench.sh [cache|orders|e2e|failover|catalog|retention|all]   (default: all)
#        cluster/bench.sh etcd [--rounds N] [--seconds S]
#
#   cache     wrk -t2 -c32 on the front-end's cached GET /products/Tux and on a bare axum
#             handler serving the same body, alternating five 5 s rounds (medians); plus a check
#             that every cache miss costs exactly one catalog read.
#   orders    orders/s and p50/p99 straight to the Raft leader at 1, 16 and 64 concurrent
#             clients, with batching on (--batch-max 256) and off (--batch-max 1).
#   e2e       POST /orders through the front-end at 1 and 32 concurrent clients.
#   failover  kill -9 of the Raft leader 10 times; the gap until the next acknowledged order.
#   catalog   kill -9 of the catalog 5 times under 8 clients' orders, restarted 1.5 s later; the
#             time from its first /health answer to the next acknowledged order, and a check
#             that the catalog's accounts match the replicas' orders afterwards.
#   retention the store at its peak order rate (wrk, 64 connections) for 3 minutes with the
#             dedup retention at 20 s: what the catalog and every replica still store, sampled
#             every 15 s, must stay bounded while the orders grow. Not part of `all`.
#   etcd      the store against a 3-member etcd (fsync on) that the benchmark starts on this
#             machine, both driven by wrk with cluster/bench/requests.lua: POST /orders through
#             the front-end at 1 and 64 connections and GET /orders/0 at 64; etcd's puts and
#             linearizable ranges at its leader at 1 and 64 connections. N rounds (default 3),
#             S seconds per run (default 8), the two systems taking turns to go first; prints
#             every figure and the ratios (orders c64 / puts c64, order p50 c1 / put p50 c1,
#             order reads c64 / ranges c64) with their median and range over the rounds
#             (`toystore-lab wrk table`, client/src/lab/wrk.rs). Not part of `all`. etcd's
#             members listen on 127.0.0.1, clients at $TOYSTORE_ETCD_PORT_BASE+1..3 and peers
#             at +11..13 (default base 12370), keep their data in a temporary folder, and are stopped and deleted
#             when the benchmark ends or is interrupted. Needs etcd (Debian's etcd-server)
#             and wrk; run as root, it installs them with apt-get.
#
# Each benchmark starts its own cluster (cluster/up.sh) in $TOYSTORE_HOME (default run/bench)
# on ports from $TOYSTORE_PORT_BASE (default 8400), so it does not disturb a cluster started
# with the defaults, and stops it afterwards. Results (the printed tables, CSV, wrk's output)
# are written to $TOYSTORE_HOME/results. Needs wrk for `cache` and `etcd`.
set -euo pipefail

here="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
repo="$(cd -- "$here/.." && pwd -P)"
export TOYSTORE_HOME="${TOYSTORE_HOME:-$repo/run/bench}"
export TOYSTORE_PORT_BASE="${TOYSTORE_PORT_BASE:-8400}"
results="$TOYSTORE_HOME/results"
mkdir -p "$results"

say() { printf '\n== %s\n' "$*"; }
die() {
    printf 'bench.sh: error: %s\n' "$*" >&2
    exit 1
}

# fresh_cluster [VAR=VALUE ...]: a new cluster on empty data with the given settings.
fresh_cluster() {
    "$here/down.sh" --wipe >/dev/null 2>&1 || true
    env "$@" "$here/up.sh" >"$results/up.log" 2>&1 || {
        cat "$results/up.log" >&2
        die "up.sh failed"
    }
    # The ports and binaries up.sh used.
    # shellcheck disable=SC1091
    source "$TOYSTORE_HOME/ports.env"
    bin_dir="${TOYSTORE_BIN_DIR:-${CARGO_TARGET_DIR:-$repo/target}/release}"
    frontend="http://127.0.0.1:$TOYSTORE_FRONTEND_PORT"
    TOYSTORE_CLUSTER_TOKEN="$(cat "$TOYSTORE_HOME/cluster.token")"
    export TOYSTORE_CLUSTER_TOKEN TOYSTORE_NODES
}

# leader_url: the base URL of the replica that reports itself Raft leader (toystore-lab reads
# the replicas' /status with the api crate's types).
leader_url() {
    local leader entry
    leader=$("$bin_dir/toystore-lab" leader --nodes "$TOYSTORE_NODES") || die "no replica reports itself leader"
    IFS=',' read -ra entries <<<"$TOYSTORE_NODES"
    for entry in "${entries[@]}"; do
        if [[ ${entry%%=*} == "${leader%% *}" ]]; then
            printf '%s' "${entry#*=}"
            return 0
        fi
    done
    die "the leader ${leader%% *} is not one of TOYSTORE_NODES ($TOYSTORE_NODES)"
}

# metric URL NAME: the sum of a Prometheus metric's samples whose line starts with NAME.
metric() {
    curl -s --max-time 2 "$1/metrics" | awk -v name="$2" 'index($0, name) == 1 { sum += $NF } END { print sum + 0 }'
}

# raft_facts: every replica's Raft role and term (toystore-lab status), and how many requests
# each forwarded to a leader (order_forwarded_total). Printed before and after a load: the term
# must stay put (no election under load) and, once the selected replica leads, nothing is
# forwarded.
raft_facts() {
    local entry
    "$bin_dir/toystore-lab" status --nodes "$TOYSTORE_NODES" | sed 's/^/  /'
    IFS=',' read -ra entries <<<"$TOYSTORE_NODES"
    for entry in "${entries[@]}"; do
        printf '  replica %s forwarded %s\n' "${entry%%=*}" "$(metric "${entry#*=}" order_forwarded_total)"
    done
}

# need_tools TOOL=PACKAGE ...: installs the packages of the missing tools with apt-get when run
# as root (running `apt-get update` first if the install fails), or dies saying what to install.
need_tools() {
    local pair
    local -a packages=()
    for pair in "$@"; do
        command -v "${pair%%=*}" >/dev/null 2>&1 || packages+=("${pair#*=}")
    done
    ((${#packages[@]})) || return 0
    if [[ $(id -u) != 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
        die "missing ${packages[*]}: apt-get install -y ${packages[*]}"
    fi
    echo "installing ${packages[*]} with apt-get …"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq "${packages[@]}" >/dev/null 2>&1 ||
        { apt-get update -qq >/dev/null && apt-get install -y -qq "${packages[@]}" >/dev/null; } ||
        die "cannot install ${packages[*]}"
}

bench_cache() {
    need_tools wrk=wrk
    say "cache: cached GET /products/Tux vs a bare axum handler (wrk -t2 -c32, 5 alternating rounds of 5 s, medians)"
    fresh_cluster
    local bare_port=$((TOYSTORE_PORT_BASE + 50))
    "$bin_dir/toystore-bench" bare-server --listen "127.0.0.1:$bare_port" >/dev/null &
    local bare_pid=$!
    trap 'kill "$bare_pid" 2>/dev/null || true' RETURN
    for _ in $(seq 50); do
        if curl -s "127.0.0.1:$bare_port/products/Tux" >/dev/null; then break; fi
        sleep 0.1
    done
    curl -s "$frontend/products/Tux" >/dev/null
    local out
    out="$results/cache.txt"
    : >"$out"
    # Alternating short rounds, medians: this machine's background load moves a single 10 s
    # run by tens of percent, and it would hit one server and not the other.
    for _ in 1 2 3 4 5; do
        for target in "bare axum|http://127.0.0.1:$bare_port/products/Tux" "front-end (cached)|$frontend/products/Tux"; do
            printf -- '--- %s\n' "${target%%|*}" >>"$out"
            wrk -t2 -c32 -d5s --latency "${target#*|}" >>"$out"
        done
    done
    "$bin_dir/toystore-lab" wrk medians "$out"
    # Misses: query every toy in turn, more toys than the cache holds, so every read misses.
    local catalog="http://127.0.0.1:$TOYSTORE_CATALOG_PORT"
    local misses_before catalog_before misses_after catalog_after
    misses_before=$(metric "$frontend" frontend_cache_misses_total)
    catalog_before=$(metric "$catalog" 'catalog_http_request_duration_seconds_count{method="GET",route="/products/{name}"')
    local urls
    urls=$("$bin_dir/toystore-lab" products --frontend "$frontend" --urls) || die "the front-end lists no toys"
    for _ in 1 2 3; do
        while read -r url; do curl -s "$url" >/dev/null; done <<<"$urls"
    done
    misses_after=$(metric "$frontend" frontend_cache_misses_total)
    catalog_after=$(metric "$catalog" 'catalog_http_request_duration_seconds_count{method="GET",route="/products/{name}"')
    echo "cache misses: $((misses_after - misses_before)), catalog product reads: $((catalog_after - catalog_before))"
}

bench_orders() {
    say "orders: straight to the Raft leader, fsync on (3 replicas, RocksDB WAL synced)"
    rm -f "$results/orders.csv"
    local mode max
    for mode in "batching on|256" "batching off|1"; do
        max="${mode#*|}"
        fresh_cluster TOYSTORE_INITIAL_STOCK=1000000000 TOYSTORE_BATCH_MAX="$max"
        echo "before:"
        raft_facts
        "$bin_dir/toystore-bench" orders --target node --url "$(leader_url)" \
            --concurrency 1,16,64 --seconds 10 --label "${mode%%|*}" --csv "$results/orders.csv"
        echo "after:"
        raft_facts
    done
}

bench_e2e() {
    say "e2e: POST /orders through the front-end"
    rm -f "$results/e2e.csv"
    fresh_cluster TOYSTORE_INITIAL_STOCK=1000000000
    echo "before:"
    raft_facts
    "$bin_dir/toystore-bench" orders --target frontend --url "$frontend" \
        --concurrency 1,32 --seconds 10 --label "front-end" --csv "$results/e2e.csv"
    echo "after:"
    raft_facts
}

bench_catalog() {
    say "catalog: kill -9 of the catalog 5 times under load, restarted 1.5 s later"
    fresh_cluster TOYSTORE_INITIAL_STOCK=1000000000
    "$bin_dir/toystore-bench" catalog-restart --frontend "$frontend" \
        --catalog "http://127.0.0.1:$TOYSTORE_CATALOG_PORT" --nodes "$TOYSTORE_NODES" \
        --home "$TOYSTORE_HOME" --scripts "$here" --kills 5 --down-ms 1500
}

# metric_value URL NAME: the value of one Prometheus series (0 when absent).
metric_value() {
    curl -s --max-time 2 "$1/metrics" | awk -v name="$2" '$1 == name { print $2; found = 1 } END { if (!found) print 0 }'
}

bench_retention() {
    need_tools wrk=wrk
    local retention=20 seconds=180 every=15
    say "retention: peak order rate for ${seconds}s with the dedup retention at ${retention}s; records stored, every ${every}s"
    fresh_cluster TOYSTORE_INITIAL_STOCK=1000000000 TOYSTORE_DEDUP_RETENTION_SECS=$retention \
        TOYSTORE_RESERVATION_TIMEOUT_MS=$((retention * 250))
    local catalog="http://127.0.0.1:$TOYSTORE_CATALOG_PORT" entry
    local -a nodes=()
    IFS=',' read -ra entries <<<"$TOYSTORE_NODES"
    for entry in "${entries[@]}"; do nodes+=("${entry#*=}"); done
    wrk -t2 -c64 -d"${seconds}s" --timeout 5s -s "$here/bench/requests.lua" "$frontend" -- order Tux Lego Barbie \
        >"$results/retention-wrk.out" 2>&1 &
    local load=$! t=0 node
    printf '%6s %10s %16s %18s %s\n' "t_s" "orders" "catalog_records" "catalog_pending" "replica requests_stored / abandons_stored"
    while kill -0 "$load" 2>/dev/null; do
        local orders line=""
        orders=$(curl -s --max-time 2 "${nodes[0]}/status" | sed -n 's/.*"orders":\([0-9]*\).*/\1/p')
        for node in "${nodes[@]}"; do
            line+=" $(metric_value "$node" order_requests_stored)/$(metric_value "$node" order_abandons_stored)"
        done
        printf '%6s %10s %16s %18s%s\n' "$t" "${orders:-?}" "$(metric_value "$catalog" catalog_reservation_records)" \
            "$(metric_value "$catalog" catalog_pending_reservations)" "$line"
        sleep "$every"
        t=$((t + every))
    done
    wait "$load" || true
    grep -E "Requests/sec|Non-2xx" "$results/retention-wrk.out" || true
}

bench_failover() {
    say "failover: kill -9 of the Raft leader, 10 times"
    fresh_cluster TOYSTORE_INITIAL_STOCK=1000000000
    "$bin_dir/toystore-bench" failover --frontend "$frontend" --nodes "$TOYSTORE_NODES" \
        --home "$TOYSTORE_HOME" --scripts "$here" --kills 10 --csv "$results/failover.csv"
}

# ---------------------------------------------------------------------------------------------
# etcd: the store against a 3-member etcd on this machine, in one run.

etcd_base="${TOYSTORE_ETCD_PORT_BASE:-12370}"
etcd_dir=""          # the temporary folder holding the members' data (removed on exit)
etcd_launched=()     # the pids `&` returned for the members
load_pid=""          # the wrk run in progress
tee_pid=""           # the tee copying this mode's output to $results/etcd.out
etcd_range_key="b3JkZXItMA=="                            # "order-0", read by the range runs
etcd_value="eyJuYW1lIjoiVHV4IiwicXVhbnRpdHkiOjF9"         # {"name":"Tux","quantity":1}

etcd_client_port() { echo $((etcd_base + $1)); }
etcd_peer_port() { echo $((etcd_base + 10 + $1)); }

# etcd_check_ports: every port etcd would use is free and none is one of the store's.
etcd_check_ports() {
    local -a store_ports=("$TOYSTORE_FRONTEND_PORT" "$TOYSTORE_CATALOG_PORT")
    local entry i port
    IFS=',' read -ra entries <<<"$TOYSTORE_NODES"
    for entry in "${entries[@]}"; do store_ports+=("${entry##*:}"); done
    if ! [[ $etcd_base =~ ^[0-9]+$ ]] || ((etcd_base < 1 || etcd_base + 13 > 65535)); then
        die "TOYSTORE_ETCD_PORT_BASE must be a port number below 65522, not '$etcd_base'"
    fi
    for i in 1 2 3; do
        for port in "$(etcd_client_port "$i")" "$(etcd_peer_port "$i")"; do
            [[ " ${store_ports[*]} " != *" $port "* ]] ||
                die "etcd's port $port is one of the store's (${store_ports[*]}): set TOYSTORE_ETCD_PORT_BASE"
            if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
                die "port $port is in use: set TOYSTORE_ETCD_PORT_BASE to a free range"
            fi
        done
    done
}

# etcd_start: three members with Debian's defaults (the WAL fsynced before every commit
# is acknowledged), each in a session and process group of its own, data in a temporary folder.
etcd_start() {
    local i members="" log_dir="$results/etcd"
    etcd_dir="$(mktemp -d "${TMPDIR:-/tmp}/toystore-etcd.XXXXXX")"
    for i in 1 2 3; do
        members+="${members:+,}member-$i=http://127.0.0.1:$(etcd_peer_port "$i")"
    done
    for i in 1 2 3; do
        # The inner bash writes its own pid, which is the group's id even if setsid forked,
        # then becomes etcd.
        # shellcheck disable=SC2016
        setsid bash -c 'echo "$$" >"$0" && exec "$@"' "$etcd_dir/member-$i.pid" \
            etcd --name "member-$i" --data-dir "$etcd_dir/member-$i" \
            --listen-client-urls "http://127.0.0.1:$(etcd_client_port "$i")" \
            --advertise-client-urls "http://127.0.0.1:$(etcd_client_port "$i")" \
            --listen-peer-urls "http://127.0.0.1:$(etcd_peer_port "$i")" \
            --initial-advertise-peer-urls "http://127.0.0.1:$(etcd_peer_port "$i")" \
            --initial-cluster "$members" --initial-cluster-state new \
            --initial-cluster-token "toystore-bench-$$" \
            --logger zap --log-outputs stderr --log-level warn \
            </dev/null >"$log_dir/member-$i.log" 2>&1 &
        etcd_launched+=("$!")
    done
    # Ready once a put commits; that put is also the key the range runs read.
    local url
    url="http://127.0.0.1:$(etcd_client_port 1)"
    for _ in $(seq 100); do
        if curl -sf --max-time 1 -X POST "$url/v3/kv/put" \
            -d "{\"key\":\"$etcd_range_key\",\"value\":\"$etcd_value\"}" >/dev/null; then
            return 0
        fi
        sleep 0.2
    done
    tail -n 5 "$log_dir"/member-*.log >&2
    die "etcd did not accept a put within 20 s (logs in $log_dir)"
}

# etcd_status N: "<raft term> <member id> <leader id>" of member N (empty if it does not answer).
etcd_status() {
    curl -s --max-time 1 -X POST "http://127.0.0.1:$(etcd_client_port "$1")/v3/maintenance/status" -d '{}' |
        python3 -c 'import json,sys; s=json.load(sys.stdin); print(s["raftTerm"], s["header"]["member_id"], s["leader"])' \
            2>/dev/null || true
}

# etcd_leader: the number of the member that leads (waiting up to 5 s for an election).
etcd_leader() {
    local i term id leader
    for _ in $(seq 50); do
        for i in 1 2 3; do
            read -r term id leader < <(etcd_status "$i") || true
            if [[ -n ${id:-} && $id == "${leader:-}" ]]; then
                echo "$i"
                return 0
            fi
        done
        sleep 0.1
    done
    die "no etcd member reports itself leader"
}

# etcd_facts: every member's Raft term and whether it leads (printed before and after: a term
# that moves means an election under load).
etcd_facts() {
    local i term id leader
    for i in 1 2 3; do
        read -r term id leader < <(etcd_status "$i") || true
        if [[ -z ${id:-} ]]; then
            printf '  etcd member %s: not answering\n' "$i"
        else
            printf '  etcd member %s: term %s, %s\n' "$i" "$term" \
                "$([[ $id == "$leader" ]] && echo leader || echo follower)"
        fi
    done
}

# etcd_stop: stops every member's process group (SIGTERM, SIGKILL after 5 s), deletes the data
# folder, and checks that neither is left.
etcd_stop() {
    [[ -n $etcd_dir ]] || return 0
    local i group
    local -a groups=()
    for i in 1 2 3; do
        if [[ -s $etcd_dir/member-$i.pid ]]; then groups+=("$(cat "$etcd_dir/member-$i.pid")"); fi
    done
    for group in "${groups[@]}"; do kill -TERM -- "-$group" 2>/dev/null || true; done
    for group in "${etcd_launched[@]}"; do kill -TERM "$group" 2>/dev/null || true; done
    for _ in $(seq 50); do
        etcd_running || break
        sleep 0.1
    done
    for group in "${groups[@]}"; do kill -KILL -- "-$group" 2>/dev/null || true; done
    for group in "${etcd_launched[@]}"; do kill -KILL "$group" 2>/dev/null || true; done
    wait "${etcd_launched[@]}" 2>/dev/null || true
    rm -rf -- "$etcd_dir"
    if etcd_running || [[ -e $etcd_dir ]]; then
        printf 'bench.sh: warning: etcd left behind: processes %s, folder %s\n' \
            "$(pgrep -d' ' -f -- "--data-dir $etcd_dir/" || echo none)" \
            "$([[ -e $etcd_dir ]] && echo "$etcd_dir" || echo removed)" >&2
    else
        echo "etcd: 3 members stopped, no etcd process of this run left, $etcd_dir deleted"
    fi
    etcd_dir=""
}

# etcd_running: whether any process of this run's etcd is alive.
etcd_running() { pgrep -f -- "--data-dir $etcd_dir/" >/dev/null 2>&1; }

# etcd_cleanup: the EXIT trap of `etcd`: stops the load, etcd and the store, whatever ended it.
etcd_cleanup() {
    local status=$?
    trap - EXIT INT TERM
    set +e
    # If tee is gone (the whole group got SIGTERM), write to the terminal, not a closed pipe.
    if [[ -n $tee_pid ]] && ! kill -0 "$tee_pid" 2>/dev/null; then exec 1>&3 2>&4; fi
    ((status == 0)) || echo "bench.sh: stopping (exit status $status)"
    if [[ -n $load_pid ]]; then
        kill -TERM "$load_pid" 2>/dev/null
        wait "$load_pid" 2>/dev/null
    fi
    etcd_stop
    "$here/down.sh" >/dev/null 2>&1
    echo "store: stopped"
    if [[ -n $tee_pid ]]; then
        exec 1>&3 2>&4
        wait "$tee_pid" 2>/dev/null
    fi
    exit "$status"
}

# measure ROUND NAME CONNECTIONS URL KIND [ARGS...]: one wrk run of cluster/bench/requests.lua
# (KIND and ARGS are its arguments), its output in $results/etcd/round-ROUND/NAME.txt (ROUND
# "warm-up": in $results/etcd/warm-up, not printed).
measure() {
    local round=$1 name=$2 connections=$3 url=$4
    shift 4
    local out="$results/etcd/round-$round/$name.txt" threads=2
    [[ $round != warm-up ]] || out="$results/etcd/warm-up/$name.txt"
    ((connections > 1)) || threads=1
    mkdir -p "${out%/*}"
    # In the background, so that a signal reaches the trap at once rather than after wrk.
    wrk --latency -t"$threads" -c"$connections" -d"${seconds}s" --timeout 5s \
        -s "$here/bench/requests.lua" "$url" -- "$@" >"$out" 2>&1 &
    load_pid=$!
    wait "$load_pid" || die "wrk failed ($name): $(tail -n 3 "$out")"
    load_pid=""
    [[ $round == warm-up ]] && return 0
    printf '  %-16s %s\n' "$name" "$("$bin_dir/toystore-lab" wrk line "$out")"
}

bench_etcd() {
    need_tools wrk=wrk etcd=etcd-server
    rm -rf "$results/etcd"
    mkdir -p "$results/etcd"
    trap etcd_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    local version
    version="$(etcd --version | awk '/^etcd Version:/ { print $3 }')"
    say "etcd: the store against a 3-member etcd $version, fsync on; $rounds rounds, ${seconds} s per run"
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)," \
        "$(nproc) cores, load average$(uptime | sed 's/.*load average//')"

    fresh_cluster TOYSTORE_INITIAL_STOCK=10000000
    etcd_check_ports
    etcd_start
    echo "store: front-end $frontend (batching at the front-end, 3 replicas, fsync on)"
    echo "etcd:  clients at 127.0.0.1:$(etcd_client_port 1)-$(etcd_client_port 3)," \
        "peers at :$(etcd_peer_port 1)-$(etcd_peer_port 3), data in $etcd_dir"

    # Order 0, read by the read runs; the toys, ordered in turn by the order runs.
    curl -sf -X POST "$frontend/orders" -H 'Content-Type: application/json' \
        -d '{"name":"Tux","quantity":1}' >/dev/null || die "the first order failed"
    local -a toys
    mapfile -t toys < <("$bin_dir/toystore-lab" products --frontend "$frontend")
    ((${#toys[@]})) || die "the front-end lists no toys"

    local leader etcd_url round
    leader="$(etcd_leader)"
    etcd_url="http://127.0.0.1:$(etcd_client_port "$leader")"
    echo "before:"
    raft_facts
    etcd_facts
    # Warm-up, 2 s each, not measured: connections, caches, the first RocksDB and bbolt pages.
    local measured_seconds=$seconds
    seconds=2
    measure warm-up store 64 "$frontend" order "${toys[@]}"
    measure warm-up etcd 64 "$etcd_url" put
    seconds=$measured_seconds
    for ((round = 1; round <= rounds; round++)); do
        # etcd's writes go to its leader (no forwarding hop: etcd's best case). Asked anew every
        # round, in case it moved.
        leader="$(etcd_leader)"
        etcd_url="http://127.0.0.1:$(etcd_client_port "$leader")"
        echo "round $round of $rounds (etcd's leader: member $leader)"
        local -a order=(store etcd)
        ((round % 2)) || order=(etcd store)
        local system
        for system in "${order[@]}"; do
            if [[ $system == store ]]; then
                measure "$round" store-order-c1 1 "$frontend" order "${toys[@]}"
                measure "$round" store-order-c64 64 "$frontend" order "${toys[@]}"
                measure "$round" store-read-c64 64 "$frontend" read 0
            else
                measure "$round" etcd-put-c1 1 "$etcd_url" put
                measure "$round" etcd-put-c64 64 "$etcd_url" put
                measure "$round" etcd-range-c1 1 "$etcd_url" range "$etcd_range_key"
                measure "$round" etcd-range-c64 64 "$etcd_url" range "$etcd_range_key"
            fi
        done
    done
    echo "after:"
    raft_facts
    etcd_facts
    echo
    "$bin_dir/toystore-lab" wrk table "$results/etcd" | tee "$results/etcd/summary.txt"
}

what="${1:-all}"
(($# == 0)) || shift
rounds=3
seconds=8
while (($#)); do
    [[ $what == etcd ]] || die "unexpected argument '$1' (only etcd takes options)"
    case $1 in
    -h | --help)
        what=--help
        break
        ;;
    --rounds=* | --seconds=*) value="${1#*=}" option="${1%%=*}" ;;
    --rounds | --seconds)
        (($# >= 2)) || die "$1 needs a value"
        option=$1 value=$2
        shift
        ;;
    *) die "unknown option '$1' (etcd takes --rounds N and --seconds S)" ;;
    esac
    shift
    [[ $value =~ ^[1-9][0-9]*$ ]] || die "$option must be a positive integer, not '$value'"
    if [[ $option == --rounds ]]; then rounds=$value; else seconds=$value; fi
done
case "$what" in
cache | orders | e2e | failover | catalog | retention) "bench_$what" 2>&1 | tee "$results/$what.out" ;;
all)
    for one in cache orders e2e failover catalog; do
        "bench_$one" 2>&1 | tee "$results/$one.out"
    done
    ;;
etcd)
    # Not in a pipeline: the traps that stop etcd and the store must belong to this shell.
    # tee ignores SIGINT, so that a ^C still lets it record the clean-up.
    exec 3>&1 4>&2
    exec > >(
        trap '' INT
        exec tee "$results/etcd.out"
    ) 2>&1
    tee_pid=$!
    bench_etcd
    ;;
-h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0" ;;
*) die "unknown benchmark '$what' (cache, orders, e2e, failover, all or etcd)" ;;
esac
"$here/down.sh" >/dev/null 2>&1 || true
