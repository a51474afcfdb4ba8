#!/usr/bin/env bash
# cluster/bench.sh: the project's benchmarks, on loopback, against release builds. A wrapper:
# builds the release binaries when they are missing and runs `toystore-lab bench` (the engine,
# client/src/lab/bench/) with the arguments given.
#
# Usage: cluster/bench.sh [cache|orders|e2e|failover|catalog|retention|all]   (default: all)
#        cluster/bench.sh etcd [--rounds N] [--seconds S]
#        cluster/bench.sh --help   (what each one measures, every option)
#
# Each benchmark starts its own cluster (cluster/up.sh) in $TOYSTORE_HOME (default run/bench)
# on ports from $TOYSTORE_PORT_BASE (default 8400), so it does not disturb a cluster started
# with the defaults, and stops it afterwards; `etcd` also starts a 3-member etcd, clients at
# $TOYSTORE_ETCD_PORT_BASE+1..3 (default 12370), and stops it. What a benchmark prints, its
# CSV and wrk's outputs go to $TOYSTORE_HOME/results. Needs wrk (and etcd for `etcd`); run as
# root, it installs them with apt-get.
# Exit status: 0 done, 1 a benchmark's check failed, 2 it could not run, 130 interrupted.
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

ts_run_engine bench "$@"
