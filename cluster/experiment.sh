#!/usr/bin/env bash
# cluster/experiment.sh: the lab's evaluation (Part 4): the latency each client sees per request
# type, with the front-end's cache on and off, for order probabilities p = 0, 0.2, 0.4, 0.6, 0.8.
#
# Usage: cluster/experiment.sh [--iterations N] [--clients C] [--seed S] [--data DIR]
#   --iterations N  queries per client session in each setting (default 400: at p = 0.8 the five
#                   sessions then order ~1600 units, fewer than the 1800 in stock (18 toys x 100),
#                   so p stays the order probability; the ten settings take 1-2 minutes on a
#                   2-core machine)
#   --clients C     concurrent client sessions (default 5, as the lab asks)
#   --seed S        seed of the client's random choices, the same in every setting (default 42)
#   --data DIR      where the results go (default <repo>/plots/data)
#
# Each of the ten settings runs on a freshly wiped cluster (cluster/down.sh --wipe, then
# cluster/up.sh), cache on and cache off (TOYSTORE_NO_CACHE=1) taking turns at each p, and is
# measured after an unmeasured warm-up of 100 queries per session (p = 0, so no stock). The stock
# settings are the lab's (initial stock 100, restock every 10 s) unless TOYSTORE_INITIAL_STOCK or
# TOYSTORE_RESTOCK_SECS are set. Out-of-stock answers are not errors.
#
# Writes:
#   DIR/latency.csv   cache,p,kind,count,errors,p50_ms,p90_ms,p99_ms,mean_ms (read by `plots`:
#                     cargo run -p plots)
#   DIR/raw/          per setting latency-cache-{on,off}-pP.{json,csv,out}: the client's JSON
#                     summary, the same table as the client's CSV, and its printed report
#                     (.warmup.out: the warm-up's); cluster.log (the output of up.sh and
#                     down.sh) and params.txt
# Prints one line per setting as it finishes, a summary table and the wall time. Exits 1 if any
# setting could not run, or its client saw request errors or failed to verify an order.
#
# Environment:
#   TOYSTORE_HOME       run directory of the experiment's cluster (default <repo>/run/experiment;
#                       its data is wiped before every setting, so never the default cluster's)
#   TOYSTORE_PORT_BASE  ports of the experiment's cluster (default 8600: front-end 8600, catalog
#                       8700, nodes 8801-8803), so it does not disturb a default cluster
#   TOYSTORE_BIN_DIR    the release binaries to use (else built once with cargo); they are copied
#                       to $TOYSTORE_HOME/bin first, so a rebuild during the run changes nothing
#   TOYSTORE_INITIAL_STOCK, TOYSTORE_RESTOCK_SECS, TOYSTORE_CACHE_CAPACITY and the other
#   TOYSTORE_* service knobs reach the services unchanged.
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

usage="usage: cluster/experiment.sh [--iterations N] [--clients C] [--seed S] [--data DIR]"
ts_args 0 8 "$usage" "$@"

iterations=400
clients=5
seed=42
data="$TS_REPO/plots/data"
while (($# > 0)); do
    ts_option "$usage" "--iterations --clients --seed --data" "$@"
    shift "$TS_SHIFT"
    case $TS_OPT in
    --iterations) iterations=$TS_VALUE ;;
    --clients) clients=$TS_VALUE ;;
    --seed) seed=$TS_VALUE ;;
    --data) data=$TS_VALUE ;;
    esac
done
ts_need_positive --iterations "$iterations"
ts_need_positive --clients "$clients"
ts_need_natural --seed "$seed"
[[ -n $data ]] || ts_die "--data needs a directory"
[[ $data == /* ]] || data="$PWD/$data"

ts_need_tools curl python3 setsid flock

# The experiment's own cluster: its own home and ports.
export TOYSTORE_HOME="${TOYSTORE_HOME:-$TS_REPO/run/experiment}"
[[ $TOYSTORE_HOME == /* ]] || TOYSTORE_HOME="$PWD/$TOYSTORE_HOME"
export TOYSTORE_PORT_BASE="${TOYSTORE_PORT_BASE:-8600}"
if [[ ${TOYSTORE_HOME%/} == "$TS_REPO/run" ]]; then
    ts_die "TOYSTORE_HOME=$TOYSTORE_HOME is the default cluster's home, whose data this script would wipe; unset it (default $TS_REPO/run/experiment) or choose another"
fi
if [[ ${TOYSTORE_CACHE_CAPACITY:-} =~ ^0+$ ]]; then
    ts_die "TOYSTORE_CACHE_CAPACITY=0 turns the cache off in the 'cache on' settings too; unset it"
fi

ts_run_from_copy
client_bin="$TOYSTORE_BIN_DIR/client"

raw="$data/raw"
mkdir -p "$raw" || ts_die "cannot create $raw"
rm -f "$raw"/latency-*
cluster_log="$raw/cluster.log"
: >"$cluster_log"

probs=(0 0.2 0.4 0.6 0.8)
# Unmeasured queries (p = 0: no stock is used) before each measured run, so that it starts on a
# settled cluster with the front-end's connections open and its cache filled.
warmup_iterations=100
caches=(on off)
total=$((${#probs[@]} * ${#caches[@]}))

# ---------------------------------------------------------------------------------------------
# Helpers

now_s() { printf '%s' "${EPOCHREALTIME/,/.}"; }
# secs_since START: seconds (one decimal) since START (an EPOCHREALTIME value).
secs_since() { python3 -c 'import sys, time; print(f"{time.time() - float(sys.argv[1]):.1f}")' "$1"; }
clock() { python3 -c 'import sys; s = int(float(sys.argv[1])); print(f"{s // 60}:{s % 60:02d}")' "$1"; }

ts_clean_up_run_on_exit "$cluster_log"

# fresh_cluster CACHE: a wiped cluster with the cache on or off; fails (with the end of the log
# on stderr) if it does not come up.
fresh_cluster() {
    local cache=$1
    local -a env_args=()
    if [[ $cache == on ]]; then env_args=(-u TOYSTORE_NO_CACHE); else env_args=(TOYSTORE_NO_CACHE=1); fi
    printf '\n===== %s: cache %s\n' "$(date -u +%FT%TZ)" "$cache" >>"$cluster_log"
    TS_RUN_STARTED=1
    if ! "$TS_CLUSTER_DIR/down.sh" --wipe >>"$cluster_log" 2>&1; then
        ts_warn "cluster/down.sh --wipe failed in $TOYSTORE_HOME (see $cluster_log)"
        return 1
    fi
    if ! env "${env_args[@]}" "$TS_CLUSTER_DIR/up.sh" >>"$cluster_log" 2>&1; then
        ts_warn "cluster/up.sh failed in $TOYSTORE_HOME; the end of $cluster_log:"
        tail -n 15 "$cluster_log" | sed 's/^/    /' >&2
        return 1
    fi
    ts_init use
    # The front-end must run with the cache we asked for.
    local body capacity
    body=$(ts_get "$TS_FRONTEND_URL/status") || {
        ts_warn "the front-end at $TS_FRONTEND_URL/status does not answer"
        return 1
    }
    capacity=$(ts_json "$body" data.cache.capacity)
    if [[ ! $capacity =~ ^[0-9]+$ ]]; then
        ts_warn "the front-end's /status has no cache capacity: $body"
        return 1
    fi
    if [[ $cache == on ]] && ((capacity == 0)); then
        ts_warn "the front-end runs without a cache although the setting is 'cache on'"
        return 1
    elif [[ $cache == off ]] && ((capacity != 0)); then
        ts_warn "the front-end runs with a cache of $capacity although TOYSTORE_NO_CACHE=1"
        return 1
    fi
}

# check_run JSON CSV: reads the client's JSON summary, writes the client's CSV table next to it
# and prints "STATUS ORDERS OUT_OF_STOCK ERRORS VERIFY_FAILURES REQUESTS QUERY_P50 ORDER_P50
# LOOKUP_P50" (STATUS ok or failed); exits 2 if the JSON is missing or unreadable.
check_run() {
    python3 - "$1" "$2" <<'EOF'
import json, sys
path, csv_path = sys.argv[1], sys.argv[2]
try:
    with open(path) as f:
        doc = json.load(f)
    stats, totals = doc["stats"], doc["totals"]
except Exception as e:
    print(f"cannot read {path}: {e}", file=sys.stderr)
    sys.exit(2)
def num(v):
    return 0 if v is None else v
with open(csv_path, "w") as out:
    out.write("kind,count,errors,p50_ms,p90_ms,p99_ms,max_ms,mean_ms\n")
    for kind in ("query", "order", "lookup"):
        s = stats.get(kind) or {}
        out.write("{},{},{},{:.3f},{:.3f},{:.3f},{:.3f},{:.3f}\n".format(
            kind, num(s.get("count")), num(s.get("errors")), *(float(num(s.get(k))) for k in
            ("p50_ms", "p90_ms", "p99_ms", "max_ms", "mean_ms"))))
errors = num(totals.get("request_errors"))
failures = max(num(totals.get("verification_failures")), len(doc.get("failures") or []))
status = "ok" if errors == 0 and failures == 0 else "failed"
def p50(kind):
    s = stats.get(kind) or {}
    return f"{float(num(s.get('p50_ms'))):.2f}" if num(s.get("count")) > 0 else "-"
print(status, num(totals.get("orders_placed")), num(totals.get("out_of_stock")), errors, failures,
      num(totals.get("requests")), p50("query"), p50("order"), p50("lookup"))
EOF
}

# ---------------------------------------------------------------------------------------------
# The runs

{
    printf 'cluster/experiment.sh run of %s\n' "$(date -u +%FT%TZ)"
    printf 'commit %s\n' "$(git -C "$TS_REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    printf 'iterations %s, clients %s, seed %s\n' "$iterations" "$clients" "$seed"
    printf 'initial stock %s, restock every %s s, cache capacity %s\n' \
        "${TOYSTORE_INITIAL_STOCK:-100 (default)}" "${TOYSTORE_RESTOCK_SECS:-10 (default)}" \
        "${TOYSTORE_CACHE_CAPACITY:-10 (default)}"
    printf 'binaries %s (copied from %s)\nhome %s, port base %s\n' "$TOYSTORE_BIN_DIR" "$TS_BINS_FROM" "$TOYSTORE_HOME" "$TOYSTORE_PORT_BASE"
} >"$raw/params.txt"

ts_say "experiment: $clients client sessions x $iterations iterations, seed $seed, p in {${probs[*]}}, cache on and off ($total settings)"
ts_say "  stock: initial ${TOYSTORE_INITIAL_STOCK:-100}, restock every ${TOYSTORE_RESTOCK_SECS:-10} s; cluster in $TOYSTORE_HOME, front-end port $TOYSTORE_PORT_BASE"
ts_say "  results: $data/latency.csv, raw files in $raw"

start_all=$(now_s)
failed=0
n=0
for p in "${probs[@]}"; do
    for cache in "${caches[@]}"; do
        n=$((n + 1))
        name="latency-cache-$cache-p$p"
        start_one=$(now_s)
        why=""
        if ! fresh_cluster "$cache"; then
            why="the cluster did not start"
        elif ! "$client_bin" --frontend "$TS_FRONTEND_URL" --clients "$clients" --prob 0 \
            --iterations "$warmup_iterations" --seed "$((seed + 1))" --quiet >"$raw/$name.warmup.out" 2>&1; then
            why="the warm-up queries failed (see $raw/$name.warmup.out)"
        else
            client_start=$(now_s)
            rc=0
            "$client_bin" --frontend "$TS_FRONTEND_URL" --clients "$clients" --prob "$p" \
                --iterations "$iterations" --seed "$seed" --out "$raw/$name.json" --quiet \
                >"$raw/$name.out" 2>&1 &
            TS_RUN_CLIENT_PID=$!
            wait "$TS_RUN_CLIENT_PID" || rc=$?
            TS_RUN_CLIENT_PID=""
            client_secs=$(secs_since "$client_start")
            if result=$(check_run "$raw/$name.json" "$raw/$name.csv"); then
                read -r status orders oos errors vfail requests q50 o50 l50 <<<"$result"
                if [[ $status != ok ]]; then
                    why="$errors request errors, $vfail verification failures (see $raw/$name.out)"
                elif ((rc != 0 && rc != 1)); then
                    why="the client exited with status $rc (see $raw/$name.out)"
                fi
            else
                why="the client wrote no summary (exit status $rc; see $raw/$name.out)"
                tail -n 5 "$raw/$name.out" | sed 's/^/    /' >&2 || true
            fi
        fi
        elapsed=$(secs_since "$start_one")
        total_clock=$(clock "$(secs_since "$start_all")")
        if [[ -z $why ]]; then
            note=""
            ((rc == 0)) || note=", client exit $rc with no error"
            printf '[%2d/%d] p=%-3s cache %-3s  ok      %5.1f s (client %4.1f s)  %6d requests, %5d orders, %4d out of stock  p50 query %s / order %s / lookup %s ms%s  [%s]\n' \
                "$n" "$total" "$p" "$cache" "$elapsed" "$client_secs" "$requests" "$orders" "$oos" "$q50" "$o50" "$l50" "$note" "$total_clock"
        else
            failed=$((failed + 1))
            printf '[%2d/%d] p=%-3s cache %-3s  FAILED  %5.1f s: %s  [%s]\n' \
                "$n" "$total" "$p" "$cache" "$elapsed" "$why" "$total_clock"
            # The client's first error samples, if it printed any.
            if [[ -f $raw/$name.out ]]; then
                sed -n '/^request errors (first/,/^$/p' "$raw/$name.out" | sed -n '2,4s/^ */    /p'
            fi
        fi
    done
done

if ((TS_RUN_STARTED)); then
    "$TS_CLUSTER_DIR/down.sh" >>"$cluster_log" 2>&1 || ts_warn "cluster/down.sh failed; see $cluster_log"
    TS_RUN_STARTED=0
fi

# ---------------------------------------------------------------------------------------------
# latency.csv and the summary

python3 - "$raw" "$data/latency.csv" "${probs[*]}" <<'EOF'
import json, os, sys
raw, out_path, probs = sys.argv[1], sys.argv[2], sys.argv[3].split()
kinds = ("query", "order", "lookup")
rows, table = [], []
for cache in ("on", "off"):
    for p in probs:
        path = os.path.join(raw, f"latency-cache-{cache}-p{p}.json")
        try:
            with open(path) as f:
                doc = json.load(f)
        except Exception:
            continue
        stats, totals = doc["stats"], doc["totals"]
        for kind in kinds:
            s = stats.get(kind) or {}
            v = lambda k: float(s.get(k) or 0)
            rows.append(f"{cache},{p},{kind},{int(s.get('count') or 0)},{int(s.get('errors') or 0)},"
                        f"{v('p50_ms'):.3f},{v('p90_ms'):.3f},{v('p99_ms'):.3f},{v('mean_ms'):.3f}")
        table.append((cache, p, stats, totals))
tmp = out_path + ".tmp"
with open(tmp, "w") as f:
    f.write("cache,p,kind,count,errors,p50_ms,p90_ms,p99_ms,mean_ms\n")
    f.write("".join(r + "\n" for r in rows))
os.replace(tmp, out_path)

def cell(stats, kind):
    s = stats.get(kind) or {}
    if not s.get("count"):
        return "-"
    return f"{s['p50_ms']:.2f} / {s['p99_ms']:.2f}"
print()
print(f"{'cache':<6}{'p':>4}  {'query p50 / p99':>16}  {'order p50 / p99':>16}  {'lookup p50 / p99':>17}"
      f"  {'orders':>7}  {'out of stock':>12}  {'errors':>6}  {'client s':>8}")
for cache, p, stats, totals in table:
    errors = int(totals.get("request_errors") or 0) + int(totals.get("verification_failures") or 0)
    print(f"{cache:<6}{p:>4}  {cell(stats, 'query'):>16}  {cell(stats, 'order'):>16}  {cell(stats, 'lookup'):>17}"
          f"  {int(totals.get('orders_placed') or 0):>7}  {int(totals.get('out_of_stock') or 0):>12}"
          f"  {errors:>6}  {float(totals.get('wall_time_s') or 0):>8.1f}")
print("(latencies in ms; errors = request errors + verification failures)")
q = {(c, p): (st.get("query") or {}) for c, p, st, _ in table}
parts = []
for p in probs:
    on, off = q.get(("on", p), {}), q.get(("off", p), {})
    if on.get("count") and off.get("count") and on.get("p50_ms"):
        parts.append(f"p={p}: {off['p50_ms'] / on['p50_ms']:.1f}x")
if parts:
    print("query median, cache off / cache on: " + ", ".join(parts))
print(f"wrote {out_path} ({len(rows)} rows)")
EOF

ts_say "wall time: $(clock "$(secs_since "$start_all")") (m:ss)"
if ((failed > 0)); then
    ts_die "$failed of $total settings failed (see above and $raw)"
fi
ts_say "all $total settings ran without request errors or verification failures; render the figures with: cargo run -p plots"
