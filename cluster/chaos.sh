#!/usr/bin/env bash
# cluster/chaos.sh: crash failures while clients run (the lab's Part 4): 5 client sessions order
# with probability 0.8 while, each round, one order replica is killed with kill -9
# (cluster/kill.sh) and restarted a few seconds later on its old data (cluster/restart.sh).
# Round 1 always kills the Raft leader; later rounds kill a replica picked at random (seeded).
#
# Usage: cluster/chaos.sh [--rounds R] [--iterations N] [--seed S] [--data DIR]
#   --rounds R      kill/restart rounds (default 3)
#   --iterations N  queries per client session (default: calibrated, see below)
#   --seed S        seed of the client and of the choice of replicas (default 42)
#   --data DIR      where the results go (default <repo>/plots/data)
#
# A round: kill the replica, 3 s down, restart it, wait until it has caught up with the leader's
# applied index, 2 s of steady load. The client starts 2 s before round 1 and runs to its end.
# Its sessions must still be sending requests when the last replica comes back: without
# --iterations, a 100-iteration calibration run on the fresh cluster measures how fast the
# sessions go on this machine and the iterations are set for the sessions to last the planned
# rounds plus 25% (the calibration's orders are verified too and count in the final digests).
# At the end, three verdicts, each printed; the script exits 1 unless all hold:
#   1. the client saw no request error and every acknowledged order verified (client exit 0);
#   2. its sessions were still sending requests when the last replica came back;
#   3. every replica is up and all report the same applied index and digest (polled for up to
#      30 s once the client has finished).
# It also prints one row per round: the replica killed, whether it was the Raft leader, the
# leader after the kill, the longest request latency around the kill (requests in flight at the
# kill or sent before the restart), failed requests, and the gap until the first order sent
# after the kill was acknowledged.
#
# Writes:
#   DIR/failover.csv  time_s,kind,latency_ms,status,session,node: one row per client request
#                     (time_s = seconds since the client's run start; node empty) and one per
#                     kill/restart (node = the replica; latency, status, session empty); read by
#                     `plots` (cargo run -p plots)
#   DIR/raw/          failover-client.{json,out}, failover-timeline.csv (the client's own
#                     outputs), failover-events.csv (every kill and restart with its Unix time in
#                     ms before and after the script ran it), failover-cluster.log,
#                     failover-params.txt, failover-calibration.* (the calibration run's outputs)
# Event times in failover.csv: a kill is placed when kill.sh had confirmed the process dead, a
# restart when restart.sh saw the node answer /health again; the origin is the client's
# started_unix_ms (from its JSON summary; a client without it: the moment the script started it).
#
# Environment:
#   TOYSTORE_HOME       run directory of the chaos cluster (default <repo>/run/chaos; wiped first)
#   TOYSTORE_PORT_BASE  its ports (default 9200: front-end 9200, catalog 9300, nodes 9401-9403)
#   TOYSTORE_BIN_DIR    the release binaries to use (else built once with cargo); they are copied
#                       to $TOYSTORE_HOME/bin first, so a rebuild during the run changes nothing
#   TOYSTORE_INITIAL_STOCK  stock per toy (default 1000000, so no order runs out of stock)
#   CHAOS_DOWN_SECS, CHAOS_STEADY_SECS  seconds a killed replica stays down (3) and of steady
#                       load between rounds (2)
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

usage="usage: cluster/chaos.sh [--rounds R] [--iterations N] [--seed S] [--data DIR]"
ts_args 0 8 "$usage" "$@"

rounds=3
iterations=""
seed=42
data="$TS_REPO/plots/data"
while (($# > 0)); do
    ts_option "$usage" "--rounds --iterations --seed --data" "$@"
    shift "$TS_SHIFT"
    case $TS_OPT in
    --rounds) rounds=$TS_VALUE ;;
    --iterations) iterations=$TS_VALUE ;;
    --seed) seed=$TS_VALUE ;;
    --data) data=$TS_VALUE ;;
    esac
done
ts_need_positive --rounds "$rounds"
[[ -z $iterations ]] || ts_need_positive --iterations "$iterations"
ts_need_natural --seed "$seed"
[[ -n $data ]] || ts_die "--data needs a directory"
[[ $data == /* ]] || data="$PWD/$data"
clients=5
prob=0.8
warmup_secs=2
down_secs=${CHAOS_DOWN_SECS:-3}
steady_secs=${CHAOS_STEADY_SECS:-2}
catchup_timeout=30
calibration_iterations=100
converge_timeout=30
[[ $down_secs =~ ^[0-9]+(\.[0-9]+)?$ ]] || ts_die "CHAOS_DOWN_SECS=$down_secs is not a number of seconds"
[[ $steady_secs =~ ^[0-9]+(\.[0-9]+)?$ ]] || ts_die "CHAOS_STEADY_SECS=$steady_secs is not a number of seconds"

ts_need_tools curl python3 setsid flock

export TOYSTORE_HOME="${TOYSTORE_HOME:-$TS_REPO/run/chaos}"
[[ $TOYSTORE_HOME == /* ]] || TOYSTORE_HOME="$PWD/$TOYSTORE_HOME"
export TOYSTORE_PORT_BASE="${TOYSTORE_PORT_BASE:-9200}"
export TOYSTORE_INITIAL_STOCK="${TOYSTORE_INITIAL_STOCK:-1000000}"
if [[ ${TOYSTORE_HOME%/} == "$TS_REPO/run" ]]; then
    ts_die "TOYSTORE_HOME=$TOYSTORE_HOME is the default cluster's home, whose data this script would wipe; unset it (default $TS_REPO/run/chaos) or choose another"
fi

ts_run_from_copy

raw="$data/raw"
mkdir -p "$raw" || ts_die "cannot create $raw"
rm -f "$raw"/failover-*
cluster_log="$raw/failover-cluster.log"
events="$raw/failover-events.csv"
client_json="$raw/failover-client.json"
client_out="$raw/failover-client.out"
timeline="$raw/failover-timeline.csv"
: >"$cluster_log"
printf 'round,kind,node,was_leader,leader,term,unix_ms_before,unix_ms_after\n' >"$events"

# ---------------------------------------------------------------------------------------------
# Helpers

now_ms() {
    local t=${EPOCHREALTIME/[.,]/}
    printf '%s' "$((t / 1000))"
}
secs_between() { python3 -c 'import sys; print(f"{(int(sys.argv[2]) - int(sys.argv[1])) / 1000:.1f}")' "$1" "$2"; }

ts_clean_up_run_on_exit "$cluster_log"

client_running() { [[ -n $TS_RUN_CLIENT_PID ]] && kill -0 "$TS_RUN_CLIENT_PID" 2>/dev/null; }

# node_field ID PATH…: the /status fields of node ID, one per line ("-" when it does not answer).
node_fields() {
    local id=$1 body
    shift
    body=$(ts_get "${TS_NODE_URL[$id]}/status") || body=""
    ts_json "$body" "$@"
}

# wait_leader SECONDS: prints "ID TERM" of the Raft leader, waiting up to SECONDS for one.
wait_leader() {
    local deadline=$(($(date +%s) + $1)) leader
    until leader=$(ts_leader); do
        (($(date +%s) < deadline)) || return 1
        sleep 0.2
    done
    printf '%s' "$leader"
}

# caught_up ID: node ID has applied at least what the leader had applied a moment before.
caught_up() {
    local id=$1 leader lead_applied applied
    leader=$(ts_leader) || return 1
    read -r leader _ <<<"$leader"
    [[ $leader == "$id" ]] && return 0
    lead_applied=$(node_fields "$leader" data.applied_index)
    [[ $lead_applied =~ ^[0-9]+$ ]] || return 1
    sleep 0.1
    applied=$(node_fields "$id" data.applied_index)
    [[ $applied =~ ^[0-9]+$ ]] && ((applied >= lead_applied))
}

# ---------------------------------------------------------------------------------------------
# A fresh cluster, and the client

write_params() {
    printf 'cluster/chaos.sh run of %s\n' "$(date -u +%FT%TZ)"
    printf 'commit %s\n' "$(git -C "$TS_REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    printf 'rounds %s, iterations %s, clients %s, prob %s, seed %s\n' "$rounds" "$iterations" "$clients" "$prob" "$seed"
    printf 'down %s s, steady %s s, warm-up %s s, initial stock %s\n' "$down_secs" "$steady_secs" "$warmup_secs" "$TOYSTORE_INITIAL_STOCK"
    printf 'binaries %s (copied from %s)\nhome %s, port base %s\n' "$TOYSTORE_BIN_DIR" "$TS_BINS_FROM" "$TOYSTORE_HOME" "$TOYSTORE_PORT_BASE"
}

ts_say "chaos: $rounds rounds of kill -9 and restart under $clients client sessions (p $prob, ${iterations:-calibrated} iterations each, seed $seed)"
ts_say "  cluster in $TOYSTORE_HOME, front-end port $TOYSTORE_PORT_BASE; results: $data/failover.csv, raw files in $raw"

start_all=$(now_ms)
TS_RUN_STARTED=1
"$TS_CLUSTER_DIR/down.sh" --wipe >>"$cluster_log" 2>&1 || ts_die "cluster/down.sh --wipe failed (see $cluster_log)"
if ! "$TS_CLUSTER_DIR/up.sh" >>"$cluster_log" 2>&1; then
    tail -n 15 "$cluster_log" | sed 's/^/    /' >&2
    ts_die "cluster/up.sh failed (see $cluster_log)"
fi
ts_init use
((${#TS_NODE_IDS[@]} >= 3)) || ts_die "chaos needs at least 3 order nodes, the cluster has ${#TS_NODE_IDS[@]}"
leader=$(wait_leader 10) || ts_die "no Raft leader after cluster/up.sh"
ts_say "cluster up in $(secs_between "$start_all" "$(now_ms)") s (Raft leader: node ${leader% *}, term ${leader#* })"

# Calibration: how many iterations a session runs per second here, with no fault.
if [[ -z $iterations ]]; then
    # warm-up, then per round: down, restart and leader check (~2 s), catch-up (~2 s), steady
    # (not after the last round); then 3 s of load after the last restart.
    planned=$(python3 -c 'import sys; w, r, d, s = map(float, sys.argv[1:]); print(f"{w + r * (d + 4 + s) - s + 3:.0f}")' \
        "$warmup_secs" "$rounds" "$down_secs" "$steady_secs")
    cal_rc=0
    "$TOYSTORE_BIN_DIR/client" --frontend "$TS_FRONTEND_URL" --clients "$clients" --prob "$prob" \
        --iterations "$calibration_iterations" --seed "$((seed + 1))" --out "$raw/failover-calibration.json" \
        --timeline "$raw/failover-calibration-timeline.csv" --quiet >"$raw/failover-calibration.out" 2>&1 || cal_rc=$?
    if ((cal_rc != 0)); then
        tail -n 12 "$raw/failover-calibration.out" | sed 's/^/    /' >&2
        ts_die "the calibration run failed before any fault (exit $cal_rc; see $raw/failover-calibration.out)"
    fi
    read -r rate iterations < <(python3 - "$raw/failover-calibration-timeline.csv" "$calibration_iterations" "$planned" <<'EOF'
import csv, math, sys
path, n, planned = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
with open(path) as f:
    ends = [float(r["start_ms"]) + float(r["latency_ms"]) for r in csv.DictReader(f) if r["kind"] in ("query", "order")]
span = max(ends) / 1000.0 if ends else 1.0
rate = n / max(span, 0.001)
print(f"{rate:.0f}", max(1000, math.ceil(rate * planned * 1.25 / 100) * 100))
EOF
    ) || ts_die "cannot compute the iterations from the calibration run's timeline ($raw/failover-calibration-timeline.csv)"
    ts_say "calibration: a session runs ~$rate iterations/s here; the rounds should take ~${planned} s: $iterations iterations"
fi
write_params >"$raw/failover-params.txt"

client_launch_ms=$(now_ms)
"$TOYSTORE_BIN_DIR/client" --frontend "$TS_FRONTEND_URL" --clients "$clients" --prob "$prob" \
    --iterations "$iterations" --seed "$seed" --out "$client_json" --timeline "$timeline" --quiet \
    >"$client_out" 2>&1 &
TS_RUN_CLIENT_PID=$!
ts_say "client started (pid $TS_RUN_CLIENT_PID); first kill in ${warmup_secs} s"
sleep "$warmup_secs"

# ---------------------------------------------------------------------------------------------
# The rounds

RANDOM=$seed
last_restart_ms=0
rounds_done=0
early=""
for ((round = 1; round <= rounds; round++)); do
    if ! client_running; then
        early="the client finished before round $round"
        break
    fi
    leader=$(wait_leader 10) || ts_die "round $round: no Raft leader for 10 s (see cluster/status.sh with TOYSTORE_HOME=$TOYSTORE_HOME)"
    read -r leader_id leader_term <<<"$leader"
    if ((round == 1)); then
        target=$leader_id
    else
        target=${TS_NODE_IDS[RANDOM % ${#TS_NODE_IDS[@]}]}
    fi
    was_leader=no
    if [[ $target == "$leader_id" ]]; then was_leader=yes; fi

    before=$(now_ms)
    "$TS_CLUSTER_DIR/kill.sh" "$target" >>"$cluster_log" 2>&1 || ts_die "round $round: cluster/kill.sh $target failed (see $cluster_log)"
    after=$(now_ms)
    printf '%s,kill,%s,%s,%s,%s,%s,%s\n' "$round" "$target" "$was_leader" "$leader_id" "$leader_term" "$before" "$after" >>"$events"
    kill_ms=$after
    sleep "$down_secs"

    new_leader=$(wait_leader 10) || new_leader="none -"
    before=$(now_ms)
    "$TS_CLUSTER_DIR/restart.sh" "$target" >>"$cluster_log" 2>&1 || ts_die "round $round: cluster/restart.sh $target failed (see $cluster_log)"
    after=$(now_ms)
    printf '%s,restart,%s,,%s,%s,%s,%s\n' "$round" "$target" "${new_leader% *}" "${new_leader#* }" "$before" "$after" >>"$events"
    last_restart_ms=$after

    deadline=$(($(date +%s) + catchup_timeout))
    caught="no (after ${catchup_timeout} s)"
    while (($(date +%s) < deadline)); do
        if caught_up "$target"; then
            caught="$(secs_between "$after" "$(now_ms)") s"
            break
        fi
        sleep 0.2
    done
    rounds_done=$round
    printf 'round %d: killed node %s (%s) at %s s; leader then: node %s; restarted at %s s; caught up: %s\n' \
        "$round" "$target" "$([[ $was_leader == yes ]] && echo "the Raft leader, term $leader_term" || echo "a follower")" \
        "$(secs_between "$client_launch_ms" "$kill_ms")" "${new_leader% *}" \
        "$(secs_between "$client_launch_ms" "$last_restart_ms")" "$caught"
    if ((round < rounds)); then sleep "$steady_secs"; fi
done

ts_say "rounds done; waiting for the client to finish …"
client_rc=0
wait "$TS_RUN_CLIENT_PID" || client_rc=$?
TS_RUN_CLIENT_PID=""
client_end_ms=$(now_ms)
ts_say "client finished with exit status $client_rc"

# ---------------------------------------------------------------------------------------------
# Convergence: every replica up, one applied index, one digest.

converged=0
deadline=$(($(date +%s) + converge_timeout))
while :; do
    declare -A applied=() digest=() role=()
    all_up=1
    for id in "${TS_NODE_IDS[@]}"; do
        if ! ts_alive "node-$id" >/dev/null; then
            all_up=0
            applied[$id]=down digest[$id]=- role[$id]=-
            continue
        fi
        mapfile -t f < <(node_fields "$id" data.role data.applied_index data.digest)
        role[$id]=${f[0]} applied[$id]=${f[1]} digest[$id]=${f[2]}
    done
    mapfile -t distinct < <(for id in "${TS_NODE_IDS[@]}"; do printf '%s %s\n' "${applied[$id]}" "${digest[$id]}"; done | sort -u)
    if ((all_up)) && ((${#distinct[@]} == 1)) && [[ ${applied[${TS_NODE_IDS[0]}]} =~ ^[0-9]+$ && ${digest[${TS_NODE_IDS[0]}]} != - ]]; then
        converged=1
        break
    fi
    (($(date +%s) < deadline)) || break
    sleep 0.5
done
converge_secs=$(secs_between "$client_end_ms" "$(now_ms)")

# ---------------------------------------------------------------------------------------------
# failover.csv and the round table

analysis_rc=0
analysis="$raw/failover-analysis.txt"
rm -f "$analysis"
python3 - "$client_json" "$timeline" "$events" "$data/failover.csv" "$client_launch_ms" "$analysis" <<'EOF' || analysis_rc=$?
import csv, json, os, sys
client_json, timeline_path, events_path, out_path, launch_ms, analysis_path = sys.argv[1:7]
launch_ms = int(launch_ms)

origin, how = launch_ms, "the moment the script started the client (its JSON has no started_unix_ms)"
try:
    with open(client_json) as f:
        doc = json.load(f)
    if isinstance(doc.get("started_unix_ms"), (int, float)):
        origin, how = float(doc["started_unix_ms"]), "the client's started_unix_ms"
except Exception:
    how = "the moment the script started the client (no client JSON)"

requests = []
try:
    with open(timeline_path) as f:
        for row in csv.DictReader(f):
            requests.append((float(row["start_ms"]) / 1000.0, row["kind"], float(row["latency_ms"]),
                             int(row["status"]), row["session"]))
except FileNotFoundError:
    print(f"no client timeline at {timeline_path}", file=sys.stderr)
    sys.exit(3)

events = []
with open(events_path) as f:
    for row in csv.DictReader(f):
        row["t"] = (int(row["unix_ms_after"]) - origin) / 1000.0
        events.append(row)

rows = [(t, 0, f"{t:.3f},{kind},{lat:.3f},{status},{session},") for t, kind, lat, status, session in requests]
rows += [(max(e["t"], 0.0), 1, f"{max(e['t'], 0.0):.3f},{e['kind']},,,,{e['node']}") for e in events]
rows.sort(key=lambda r: (r[0], r[1]))
tmp = out_path + ".tmp"
with open(tmp, "w") as f:
    f.write("time_s,kind,latency_ms,status,session,node\n")
    f.write("".join(r[2] + "\n" for r in rows))
os.replace(tmp, out_path)
print(f"wrote {out_path}: {len(requests)} requests and {len(events)} events; time origin: {how}")

def failed(status):
    return status not in (200, 400, 404)

print()
print(f"{'round':>5}  {'node':>4}  {'leader?':>7}  {'kill s':>7}  {'restart s':>9}  {'new leader':>14}"
      f"  {'requests':>8}  {'max latency':>18}  {'failed':>6}  {'order gap':>9}")
kills = [e for e in events if e["kind"] == "kill"]
restarts = {e["round"]: e for e in events if e["kind"] == "restart"}
for k in kills:
    r = restarts.get(k["round"])
    t_kill = k["t"]
    t_end = (r["t"] if r else t_kill + 3.0) + 1.0
    window = [q for q in requests if q[0] <= t_end and q[0] + q[2] / 1000.0 >= t_kill]
    worst = max(window, key=lambda q: q[2], default=None)
    worst_s = f"{worst[2]:.1f} ms ({worst[1]})" if worst else "-"
    acks = [q[0] + q[2] / 1000.0 for q in requests if q[1] == "order" and q[0] >= t_kill and q[3] == 200]
    gap = f"{(min(acks) - t_kill) * 1000:.0f} ms" if acks else "-"
    new_leader = f"{r['leader']} (term {r['term']})" if r else "-"
    t_restart = f"{r['t']:.2f}" if r else "-"
    print(f"{k['round']:>5}  {k['node']:>4}  {k['was_leader']:>7}  {t_kill:>7.2f}  "
          f"{t_restart:>9}  {new_leader:>14}  {len(window):>8}  {worst_s:>18}"
          f"  {sum(failed(q[3]) for q in window):>6}  {gap:>9}")
sessions_end = max((q[0] + q[2] / 1000.0 for q in requests if q[1] in ("query", "order")), default=0.0)
last_restart = max((e["t"] for e in events if e["kind"] == "restart"), default=0.0)
client_end = max((q[0] + q[2] / 1000.0 for q in requests), default=0.0)
with open(analysis_path, "w") as f:
    f.write(f"{sessions_end:.3f} {last_restart:.3f} {client_end:.3f}\n")
others = sorted(q[2] for q in requests)
if others:
    print(f"(all {len(others)} requests: p50 {others[len(others) // 2]:.1f} ms, p99 {others[int(len(others) * 0.99)]:.1f} ms, "
          f"max {others[-1]:.1f} ms; failed {sum(failed(q[3]) for q in requests)}. "
          "A round's requests: in flight at the kill or sent until 1 s after the restart; "
          "order gap: from the kill until the first order sent after it was acknowledged)")
EOF

# ---------------------------------------------------------------------------------------------
# Verdicts

ts_say ""
ok=1
verdict() { # verdict PASS|FAIL TEXT
    printf '%-4s  %s\n' "$1" "$2"
    [[ $1 == PASS ]] || ok=0
}
summary=""
if [[ -s $client_json ]]; then
    mapfile -t t < <(ts_json "$(cat "$client_json")" totals.orders_placed totals.request_errors totals.verification_failures totals.requests)
    summary="${t[3]} requests, ${t[0]} orders placed, ${t[1]} request errors, ${t[2]} verification failures"
fi
if ((client_rc == 0)); then
    verdict PASS "the client saw no error and every acknowledged order verified (exit 0; $summary)"
else
    verdict FAIL "the client failed (exit $client_rc${summary:+; $summary}); see $client_out"
    tail -n 12 "$client_out" | sed 's/^/      /'
fi
sessions_end=-1
last_restart=0
if [[ -s $analysis ]]; then read -r sessions_end last_restart _ <"$analysis"; fi
if [[ -n $early ]]; then
    verdict FAIL "$early (after $rounds_done of $rounds rounds): raise --iterations"
elif [[ $sessions_end == -1 ]]; then
    verdict FAIL "no client timeline to tell whether the sessions outlasted the rounds"
elif python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) > float(sys.argv[2]) else 1)' "$sessions_end" "$last_restart"; then
    verdict PASS "the sessions outlasted all $rounds rounds (last restart at ${last_restart} s, last query or order answered at ${sessions_end} s)"
else
    verdict FAIL "the sessions stopped at ${sessions_end} s, before the last restart at ${last_restart} s: raise --iterations"
fi
if ((converged)); then
    verdict PASS "all ${#TS_NODE_IDS[@]} replicas agree: applied index ${applied[${TS_NODE_IDS[0]}]}, digest ${digest[${TS_NODE_IDS[0]}]:0:16}… (polled for ${converge_secs} s after the client ended)"
else
    verdict FAIL "the replicas do not agree ${converge_timeout} s after the client ended"
fi
for id in "${TS_NODE_IDS[@]}"; do
    printf '      node %s: %-9s applied %-8s digest %s\n' "$id" "${role[$id]}" "${applied[$id]}" "${digest[$id]:0:16}"
done
((analysis_rc == 0)) || verdict FAIL "could not write $data/failover.csv (see above)"

if ((TS_RUN_STARTED)); then
    "$TS_CLUSTER_DIR/down.sh" >>"$cluster_log" 2>&1 || ts_warn "cluster/down.sh failed; see $cluster_log"
    TS_RUN_STARTED=0
fi
ts_say "wall time: $(secs_between "$start_all" "$(now_ms)") s; the cluster is stopped, its data kept in $TOYSTORE_HOME"
((ok)) || ts_die "chaos run FAILED (see the verdicts above)"
ts_say "chaos run passed; render the figures with: cargo run -p plots"
