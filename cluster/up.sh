#!/usr/bin/env bash
# cluster/up.sh: builds the toy store and starts it on this machine: the catalog, the three
# order-raft nodes (Raft group bootstrapped on first start) and the front-end, all on 127.0.0.1.
#
# Usage: cluster/up.sh            (from any directory)
#
# Idempotent: a service that already runs is left alone; one that died is restarted on its
# old data. Waits until every /health answers and a Raft leader exists, then prints the URLs.
#
# Environment (caller's values win over cluster/cluster.env):
#   TOYSTORE_HOME       run directory (default <repo>/run): data/, logs/, pids/, cluster.token,
#                       ports.env
#   TOYSTORE_PORT_BASE  front-end = BASE, catalog = BASE+100, node N = BASE+200+N (default 8000);
#                       also TOYSTORE_FRONTEND_PORT, TOYSTORE_CATALOG_PORT, TOYSTORE_NODES
#   TOYSTORE_BIN_DIR    use the binaries in this directory and do not build
#   CARGO_TARGET_DIR    where cargo builds (binaries from $CARGO_TARGET_DIR/release)
#   TOYSTORE_UP_TIMEOUT seconds to wait for health and a leader (default 60)
#   TOYSTORE_INITIAL_STOCK, TOYSTORE_RESTOCK_SECS, TOYSTORE_CACHE_CAPACITY, TOYSTORE_NO_CACHE,
#   RUST_LOG and every other exported TOYSTORE_* variable reach the services unchanged.
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

ts_args 0 0 "usage: cluster/up.sh" "$@"

# ---------------------------------------------------------------------------------------------
# Prerequisites

have_root_apt() { [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; }

apt_install() {
    ts_say "installing $* with apt-get …"
    if ! DEBIAN_FRONTEND=noninteractive apt-get update -qq ||
        ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"; then
        ts_die "apt-get install $* failed"
    fi
}

have_libclang() {
    dpkg -s libclang-dev >/dev/null 2>&1 && return 0
    local dir
    for dir in ${LIBCLANG_PATH:-} /usr/lib /usr/lib64 /usr/local/lib /usr/lib/llvm-*/lib; do
        [[ -d $dir ]] || continue
        if [[ -n $(find "$dir" -maxdepth 3 \( -name 'libclang.so*' -o -name 'libclang-*.so*' \) -print -quit 2>/dev/null) ]]; then
            return 0
        fi
    done
    return 1
}

# Tools the scripts themselves use.
missing=()
for tool in curl setsid; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]} > 0)); then
    if have_root_apt; then
        pkgs=()
        for tool in "${missing[@]}"; do
            case $tool in setsid) pkgs+=(util-linux) ;; *) pkgs+=("$tool") ;; esac
        done
        apt_install "${pkgs[@]}"
    else
        ts_die "missing ${missing[*]}; install them first (Debian/Ubuntu: sudo apt-get install -y ${missing[*]/setsid/util-linux})"
    fi
fi

if [[ -n ${TOYSTORE_BIN_DIR:-} ]]; then
    [[ $TOYSTORE_BIN_DIR == /* ]] || TOYSTORE_BIN_DIR="$PWD/$TOYSTORE_BIN_DIR"
    bin_dir=$TOYSTORE_BIN_DIR
    build=0
else
    build=1
    if ! command -v cargo >/dev/null 2>&1 && [[ -x $HOME/.cargo/bin/cargo ]]; then
        PATH="$HOME/.cargo/bin:$PATH"
    fi
    command -v cargo >/dev/null 2>&1 ||
        ts_die "cargo not found. Install Rust with rustup:
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y && . \"\$HOME/.cargo/env\"
then run cluster/up.sh again."
    # rocksdb's build needs clang and libclang (bindgen).
    need=()
    command -v clang >/dev/null 2>&1 || need+=(clang)
    have_libclang || need+=(libclang-dev)
    if ((${#need[@]} > 0)); then
        if have_root_apt; then
            apt_install clang libclang-dev
        else
            ts_die "building rocksdb needs clang and libclang, missing: ${need[*]}. Install them, e.g.
    sudo apt-get update && sudo apt-get install -y clang libclang-dev     (Debian/Ubuntu)
    sudo dnf install -y clang clang-devel                                 (Fedora)
then run cluster/up.sh again."
        fi
    fi
    target=${CARGO_TARGET_DIR:-$TS_REPO/target}
    [[ $target == /* ]] || target="$TS_REPO/$target"
    bin_dir="$target/release"
fi

# ---------------------------------------------------------------------------------------------
# Configuration, build

ts_init up
ts_lock
mkdir -p "$TS_DATA" "$TS_LOGS" "$TS_PIDS"

if ((build)); then
    ts_say "building release binaries with cargo (a first build compiles rocksdb: ~15 minutes) …"
    (cd "$TS_REPO" && cargo build --release --bins -p catalog -p frontend -p order-raft -p client) ||
        ts_die "cargo build failed"
fi
for bin in catalog order-raft frontend toystore-lab; do
    [[ -x $bin_dir/$bin ]] || ts_die "$bin_dir/$bin is missing or not executable"
done

token=$(ts_token)
ts_write_ports "$bin_dir"
# What ts_lab runs (an older run of this home may have recorded other binaries).
TS_RECORDED_BIN_DIR=$bin_dir

timeout_secs=${TOYSTORE_UP_TIMEOUT:-60}
[[ $timeout_secs =~ ^[0-9]+$ ]] || ts_die "TOYSTORE_UP_TIMEOUT=$timeout_secs is not a number of seconds"
deadline=$(($(date +%s) + timeout_secs))

# start_one SERVICE: starts it unless it already runs.
start_one() {
    local svc=$1 pid
    if pid=$(ts_alive "$svc"); then
        printf '  %-9s already running (pid %s)\n' "$(ts_label "$svc")" "$pid"
        return 0
    fi
    if [[ -f $(ts_pidfile "$svc") ]]; then
        rm -f "$(ts_pidfile "$svc")"
    fi
    pid=$(ts_start "$svc" "$bin_dir" "$token")
    printf '  %-9s started (pid %s)\n' "$(ts_label "$svc")" "$pid"
}

ts_say "starting the toy store in $TOYSTORE_HOME"
start_one catalog
ts_wait_healthy catalog "$deadline"

for id in "${TS_NODE_IDS[@]}"; do
    start_one "node-$id"
done
for id in "${TS_NODE_IDS[@]}"; do
    ts_wait_healthy "node-$id" "$deadline"
done

# A leader, recognised by every node, must exist before the front-end selects a replica.
while ! leader=$(ts_settled_leader); do
    for id in "${TS_NODE_IDS[@]}"; do
        ts_alive "node-$id" >/dev/null || ts_fail_with_log "node-$id" "node $id exited"
    done
    if (($(date +%s) >= deadline)); then
        ts_say "the order nodes did not agree on a Raft leader within ${timeout_secs}s; node status:" >&2
        for id in "${TS_NODE_IDS[@]}"; do
            printf '  node %s: %s\n' "$id" "$(ts_get "${TS_NODE_URL[$id]}/status" || echo 'no answer')" >&2
        done
        ts_fail_with_log "node-${TS_NODE_IDS[0]}" "no Raft leader"
    fi
    sleep 0.2
done

start_one frontend
ts_wait_healthy frontend "$deadline"

# The front-end selects the highest healthy replica, and leadership follows the selection:
# wait (briefly) for the selected replica to lead, so orders take no forwarding hop.
selected_leads() {
    ts_lab leader --selected --frontend "$TS_FRONTEND_URL" --nodes "$(ts_live_nodes)" >/dev/null
}
handover_deadline=$(($(date +%s) + 10))
until selected_leads; do
    if (($(date +%s) >= handover_deadline)); then
        ts_say "note: the front-end's selected replica has not become the Raft leader yet; it forwards orders meanwhile (see cluster/status.sh)"
        break
    fi
    sleep 0.1
done
leader=$(ts_settled_leader || ts_leader || echo "$leader")

# ---------------------------------------------------------------------------------------------
# Report

read -r leader_id leader_term <<<"$leader"
ts_say ""
ts_say "the toy store is up (Raft leader: node $leader_id, term $leader_term)"
printf '  %-9s %-26s pid %s\n' "front-end" "$TS_FRONTEND_URL" "$(ts_alive frontend)"
printf '  %-9s %-26s pid %s\n' "catalog" "$TS_CATALOG_URL" "$(ts_alive catalog)"
for id in "${TS_NODE_IDS[@]}"; do
    printf '  %-9s %-26s pid %s\n' "node $id" "${TS_NODE_URL[$id]}" "$(ts_alive "node-$id")"
done
ts_say "  data:     $TS_DATA"
ts_say "  logs:     $TS_LOGS"
ts_say "  binaries: $bin_dir"
ts_say "try:  curl $TS_FRONTEND_URL/products/Tux"
