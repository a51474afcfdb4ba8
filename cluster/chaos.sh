#!/usr/bin/env bash
# cluster/chaos.sh: crash failures while clients run (the lab's Part 4). A wrapper: builds the
# release binaries when they are missing and runs `toystore-lab chaos` (the engine,
# client/src/lab/chaos.rs) with the arguments given. Five client sessions order with
# probability 0.8 while, each round, one replica is killed with kill -9 (cluster/kill.sh) and
# restarted on its data (cluster/restart.sh); round 1 kills the Raft leader.
#
# Usage: cluster/chaos.sh [--rounds R] [--iterations N] [--seed S] [--data DIR]
#        cluster/chaos.sh --help   (every option)
# Writes DATA/failover.csv (drawn by `cargo run -p plots`) and DATA/raw/failover-*.
# Exit status: 0 every verdict holds, 1 a verdict failed, 2 the run could not be completed,
# 130 interrupted.
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

ts_run_engine chaos "$@"
