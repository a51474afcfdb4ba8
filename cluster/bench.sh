#!/usr/bin/env bash
# cluster/bench.sh: the project's benchmarks, on loopback, against release builds.
#
# Usage: cluster/bench.sh [cache|orders|e2e|failover|all]   (default: all)
#
#   cache     wrk -t2 -c32 on the front-end's cached GET /products/Tux and on a bare axum
#             handler serving the same body, alternating five 5 s rounds (medians); plus a check
#             that every cache miss costs exactly one catalog read.
#   orders    orders/s and p50/p99 straight to the Raft leader at 1, 16 and 64 concurrent
#             clients, with batching on (--batch-max 256) and off (--batch-max 1).
#   e2e       POST /orders through the front-end at 1 and 32 concurrent clients.
#   failover  kill -9 of the Raft leader 10 times; the gap until the next acknowledged order.
#
# Each benchmark starts its own cluster (cluster/up.sh) in $TOYSTORE_HOME (default run/bench)
# on ports from $TOYSTORE_PORT_BASE (default 8400), so it does not disturb a cluster started
# with the defaults, and stops it afterwards. Results (the printed tables, CSV) are written to
# $TOYSTORE_HOME/results. Needs wrk for `cache` (installed with apt-get when run as root).
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

# leader_url: the base URL of the replica that reports itself Raft leader.
leader_url() {
    local entry url
    IFS=',' read -ra entries <<<"$TOYSTORE_NODES"
    for entry in "${entries[@]}"; do
        url="${entry#*=}"
        if curl -s --max-time 1 "$url/status" | python3 -c \
            'import json,sys; sys.exit(0 if json.load(sys.stdin)["data"]["role"] == "leader" else 1)' 2>/dev/null; then
            printf '%s' "$url"
            return 0
        fi
    done
    die "no replica reports itself leader"
}

# metric URL NAME: the sum of a Prometheus metric's samples whose line starts with NAME.
metric() {
    curl -s --max-time 2 "$1/metrics" | awk -v name="$2" 'index($0, name) == 1 { sum += $NF } END { print sum + 0 }'
}

# raft_facts: one line per replica: its Raft term and role, and how many requests it forwarded
# to a leader (order_forwarded_total). Printed before and after a load: the term must stay put
# (no election under load) and, once the selected replica leads, nothing is forwarded.
raft_facts() {
    local entry id url term role forwarded
    IFS=',' read -ra entries <<<"$TOYSTORE_NODES"
    for entry in "${entries[@]}"; do
        id="${entry%%=*}"
        url="${entry#*=}"
        read -r term role < <(curl -s --max-time 1 "$url/status" | python3 -c \
            'import json,sys; d=json.load(sys.stdin)["data"]; print(d["term"], d["role"])' 2>/dev/null || echo "- -")
        forwarded=$(metric "$url" order_forwarded_total)
        printf '  replica %s: term %s, %s, forwarded %s\n' "$id" "$term" "$role" "$forwarded"
    done
}

bench_cache() {
    if ! command -v wrk >/dev/null 2>&1; then
        if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
            apt-get install -y -qq wrk >/dev/null || die "cannot install wrk"
        else
            die "wrk is needed for the cache benchmark: apt-get install -y wrk"
        fi
    fi
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
    python3 - "$out" <<'EOF'
import re, statistics, sys
text = open(sys.argv[1]).read()
runs = re.split(r"^--- ", text, flags=re.M)[1:]
by_server = {}
for run in runs:
    name = run.splitlines()[0]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", run).group(1))
    def pct(p):
        m = re.search(r"^\s+%s%%\s+([\d.]+)(us|ms|s)" % p, run, flags=re.M)
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value
    by_server.setdefault(name, []).append((rps, pct(50), pct(99)))
print(f"{'server':<20} {'requests/s':>11} {'p50_ms':>8} {'p99_ms':>8}   (medians of {len(runs) // 2} rounds)")
medians = {}
for name, rows in by_server.items():
    rps, p50, p99 = (statistics.median(column) for column in zip(*rows))
    medians[name] = rps
    print(f"{name:<20} {rps:>11.0f} {p50:>8.2f} {p99:>8.2f}")
names = list(medians)
print(f"front-end / bare: {medians[names[1]] / medians[names[0]]:.0%} of the bare handler's throughput")
EOF
    # Misses: query every toy in turn, more toys than the cache holds, so every read misses.
    local catalog="http://127.0.0.1:$TOYSTORE_CATALOG_PORT"
    local misses_before catalog_before misses_after catalog_after
    misses_before=$(metric "$frontend" frontend_cache_misses_total)
    catalog_before=$(metric "$catalog" 'catalog_http_request_duration_seconds_count{method="GET",route="/products/{name}"')
    local names
    names=$(curl -s "$frontend/products" | python3 -c \
        'import json,sys,urllib.parse; print("\n".join(urllib.parse.quote(t["name"]) for t in json.load(sys.stdin)["data"]))')
    for _ in 1 2 3; do
        while read -r name; do curl -s "$frontend/products/$name" >/dev/null; done <<<"$names"
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

bench_failover() {
    say "failover: kill -9 of the Raft leader, 10 times"
    fresh_cluster TOYSTORE_INITIAL_STOCK=1000000000
    "$bin_dir/toystore-bench" failover --frontend "$frontend" --nodes "$TOYSTORE_NODES" \
        --home "$TOYSTORE_HOME" --scripts "$here" --kills 10 --csv "$results/failover.csv"
}

what="${1:-all}"
case "$what" in
cache | orders | e2e | failover) "bench_$what" 2>&1 | tee "$results/$what.out" ;;
all)
    for one in cache orders e2e failover; do
        "bench_$one" 2>&1 | tee "$results/$one.out"
    done
    ;;
-h | --help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//' ;;
*) die "unknown benchmark '$what' (cache, orders, e2e, failover or all)" ;;
esac
"$here/down.sh" >/dev/null 2>&1 || true
