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

[[ -x $TOYSTORE_BIN_DIR/toystore-lab ]] ||
    ts_die "$TOYSTORE_BIN_DIR/toystore-lab is missing (build it: cargo build -p client)"
TOYSTORE_HOME=$(mktemp -d "${TMPDIR:-/tmp}/toystore-fuzz.XXXXXX")
TOYSTORE_PORT_BASE=$("$TOYSTORE_BIN_DIR/toystore-lab" free-port-base)
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

TOYSTORE_CLUSTER_TOKEN=$(<"$TOYSTORE_HOME/cluster.token") "$TOYSTORE_BIN_DIR/toystore-lab" audit \
    --frontend "$frontend" --catalog "$catalog" || ts_die "the store is not in order after the fuzzing (above)"
ts_say "OK: the store answered as its OpenAPI document says, and its stock adds up"
