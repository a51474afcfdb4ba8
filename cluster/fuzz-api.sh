#!/usr/bin/env bash
# cluster/fuzz-api.sh: holds the running store to its OpenAPI document. Starts a store of its
# own (its own TOYSTORE_HOME and ports, so it never touches a cluster you run), points
# schemathesis at the front-end's /openapi.json with every check, then checks that the store
# is still healthy and that its stock adds up (every unit that left the stock belongs to an
# order the public API returns), and stops the store.
#
# Usage: cluster/fuzz-api.sh
#
# Environment:
#   TOYSTORE_BIN_DIR        the service binaries to run (default: the debug build in
#                           $CARGO_TARGET_DIR, built first with the same command the tests use)
#   TOYSTORE_FUZZ_EXAMPLES  test cases per operation (default 50)
#   TOYSTORE_FUZZ_SEED      schemathesis' random seed (default 1: the same run every time;
#                           change it to explore)
#   TOYSTORE_VENV           Python venv schemathesis is installed in, made on first use
#                           (default $HOME/.cache/toystore-venv)
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

ts_args 0 0 "usage: cluster/fuzz-api.sh" "$@"
ts_need_tools curl python3

# The schemathesis release whose command line and config file this script is written for (the
# CLI changed between 3.x and 4.x).
SCHEMATHESIS=schemathesis==4.32.5
examples=${TOYSTORE_FUZZ_EXAMPLES:-50}
seed=${TOYSTORE_FUZZ_SEED:-1}
ts_need_positive TOYSTORE_FUZZ_EXAMPLES "$examples"
ts_need_natural TOYSTORE_FUZZ_SEED "$seed"
venv=${TOYSTORE_VENV:-${HOME:-/root}/.cache/toystore-venv}

# ---------------------------------------------------------------------------------------------
# schemathesis, in a venv of its own

if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -qF "${SCHEMATHESIS#*==}"; then
    ts_say "installing $SCHEMATHESIS into $venv …"
    python3 -m venv "$venv" || ts_die "cannot make a venv in $venv (Debian: apt-get install -y python3-venv)"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "$SCHEMATHESIS" ||
        ts_die "pip install $SCHEMATHESIS failed"
fi

# ---------------------------------------------------------------------------------------------
# A store of its own

if [[ -z ${TOYSTORE_BIN_DIR:-} ]]; then
    target=${CARGO_TARGET_DIR:-$TS_REPO/target}
    [[ $target == /* ]] || target="$TS_REPO/$target"
    ts_say "building the debug binaries …"
    # The command tests/harness/processes.rs runs: the same features, so nothing is rebuilt.
    (cd "$TS_REPO" && cargo build --quiet --bins -p catalog -p frontend -p order-raft -p client \
        -p checker -p system-tests) || ts_die "cargo build failed"
    export TOYSTORE_BIN_DIR="$target/debug"
fi

# A port base whose five ports (BASE, BASE+100, BASE+201..203) are all free.
free_base() {
    python3 - <<'EOF'
import random, socket
for _ in range(200):
    base = random.randrange(20000, 30000)
    try:
        for port in (base, base + 100, base + 201, base + 202, base + 203):
            with socket.socket() as s:
                s.bind(("127.0.0.1", port))
    except OSError:
        continue
    print(base)
    break
EOF
}

TOYSTORE_HOME=$(mktemp -d "${TMPDIR:-/tmp}/toystore-fuzz.XXXXXX")
TOYSTORE_PORT_BASE=$(free_base)
[[ -n $TOYSTORE_PORT_BASE ]] || ts_die "no free ports for a store between 20000 and 30300"
export TOYSTORE_HOME TOYSTORE_PORT_BASE
# Unset what would point the store elsewhere than the port base.
unset TOYSTORE_FRONTEND_PORT TOYSTORE_CATALOG_PORT TOYSTORE_NODES
work=$(mktemp -d "${TMPDIR:-/tmp}/toystore-fuzz-work.XXXXXX")

stop_store() {
    "$TS_CLUSTER_DIR/down.sh" --wipe >/dev/null 2>&1 || ts_warn "cluster/down.sh failed for $TOYSTORE_HOME"
    rm -rf -- "$TOYSTORE_HOME" "$work"
}
trap stop_store EXIT

"$TS_CLUSTER_DIR/up.sh" >"$work/up.log" 2>&1 || {
    cat "$work/up.log" >&2
    ts_die "cluster/up.sh failed (logs in $TOYSTORE_HOME/logs)"
}
frontend="http://$TS_HOST:$TOYSTORE_PORT_BASE"
catalog="http://$TS_HOST:$((TOYSTORE_PORT_BASE + 100))"
ts_say "store up: front-end $frontend (TOYSTORE_HOME=$TOYSTORE_HOME)"

# ---------------------------------------------------------------------------------------------
# schemathesis

ts_say "schemathesis: every check, $examples examples per operation, seed $seed"
started=$(date +%s)
# From a scratch directory, so that nothing it writes lands in the repository. One worker: the
# store serves a fuzzer's requests one at a time exactly as it serves many, and one worker keeps
# the run's order (and so its orders and their numbers) the same for the same seed.
status=0
(cd "$work" && "$venv/bin/schemathesis" --config-file "$TS_CLUSTER_DIR/schemathesis.toml" run \
    "$frontend/openapi.json" \
    --checks all \
    --max-examples "$examples" \
    --seed "$seed" \
    --workers 1 \
    --generation-database none \
    --request-timeout 15 \
    --no-color) || status=$?
ts_say "schemathesis finished in $(($(date +%s) - started)) s (exit $status)"
((status == 0)) || ts_die "schemathesis found answers that break the OpenAPI document (above)"

# ---------------------------------------------------------------------------------------------
# Afterwards: healthy, and the stock adds up

token=$(<"$TOYSTORE_HOME/cluster.token")
FRONTEND=$frontend CATALOG=$catalog TOKEN=$token python3 - <<'EOF' || ts_die "the store is not in order after the fuzzing (above)"
import json, os, sys, time, urllib.error, urllib.request

frontend, catalog = os.environ["FRONTEND"], os.environ["CATALOG"]
internal = {"X-Cluster-Token": os.environ["TOKEN"]}

def get(url, headers=None):
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as err:
        return err.code, json.load(err)

status, body = get(frontend + "/products")
if status != 200 or any(toy["quantity"] < 0 for toy in body["data"]):
    sys.exit(f"GET /products answered {status}: {body}")
for service, base in (("front-end", frontend), ("catalog", catalog)):
    status, body = get(base + "/health")
    if status != 200:
        sys.exit(f"the {service}'s /health answered {status}: {body}")

# Reservations settle in the background (confirmed at once, abandoned ones within ~10 s).
deadline = time.time() + 60
while True:
    status, body = get(catalog + "/stock", internal)
    if status != 200:
        sys.exit(f"the catalog's /stock answered {status}: {body}")
    stock = body["data"]
    if all(toy["pending"] == 0 for toy in stock):
        break
    if time.time() > deadline:
        sys.exit(f"reservations still pending after 60 s: {stock}")
    time.sleep(0.5)

# Every order, through the public API: numbers are dense from 0.
bought, number = {}, 0
while True:
    status, body = get(f"{frontend}/orders/{number}")
    if status == 404:
        break
    if status != 200:
        sys.exit(f"GET /orders/{number} answered {status}: {body}")
    bought[body["data"]["name"]] = bought.get(body["data"]["name"], 0) + body["data"]["quantity"]
    number += 1

wrong = [
    f'{toy["name"]}: {toy["initial"]} + {toy["restocked"]} restocked - {toy["quantity"]} left '
    f'!= {bought.get(toy["name"], 0)} ordered'
    for toy in stock
    if toy["initial"] + toy["restocked"] - toy["quantity"] != bought.get(toy["name"], 0)
]
if wrong:
    sys.exit("the stock does not add up:\n  " + "\n  ".join(wrong))
print(f"store healthy; {number} orders, and every unit sold belongs to one of them")
EOF
ts_say "OK: the store answered as its OpenAPI document says, and its stock adds up"
