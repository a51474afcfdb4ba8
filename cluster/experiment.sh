#!/usr/bin/env bash
# cluster/experiment.sh: the lab's evaluation (Part 4): the latency each client sees per request
# type, with the front-end's cache on and off, for order probabilities p = 0, 0.2, 0.4, 0.6,
# 0.8, each setting on a freshly wiped local cluster. A wrapper: builds the release binaries
# when they are missing and runs `toystore-lab experiment` (the engine,
# client/src/lab/experiment.rs) with the arguments given.
#
# Usage: cluster/experiment.sh [--iterations N] [--clients C] [--seed S] [--data DIR]
#        cluster/experiment.sh --help   (every option)
# Writes DATA/latency.csv (drawn by `cargo run -p plots`) and DATA/raw/latency-*.
# Exit status: 0 every setting ran clean, 1 a setting failed, 2 the run could not be
# completed, 130 interrupted.
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

ts_run_engine experiment "$@"
