#!/usr/bin/env bash
# cluster/verify.sh: Jepsen-style verification of the toy store on separate hosts. A wrapper:
# builds the release binaries when they are missing and runs `toystore-lab verify` (the engine,
# client/src/lab/verify.rs) with the arguments given. Needs root, like cluster/hosts.sh.
#
# Usage: cluster/verify.sh --rounds R [--seed S] [--fault-secs F] [--faults LIST]
#                          [--retention SECS] [--order-cache on|off|mixed] [--break KIND] [--keep]
#        cluster/verify.sh --help   (every option, and the faults)
# Exit status: 0 no violation, 1 violations, 2 the run could not be completed, 130 interrupted.
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

ts_run_engine verify "$@"
