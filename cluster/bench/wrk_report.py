#!/usr/bin/env python3
"""Reads the output of `wrk --latency` runs for `cluster/bench.sh etcd`.

Usage:
  wrk_report.py line FILE   one line for one run: successful requests/s, p50, p99, failures
  wrk_report.py table DIR   the summary of DIR/round-*/SYSTEM-OP-cN.txt: every measurement's
                            median and range over the rounds, then the store/etcd ratios,
                            each computed within a round, with their median and range

A run's throughput counts only answers with a 2xx status (wrk's "Non-2xx or 3xx responses"
are subtracted), over the run's measured duration. Exits non-zero when a ratio is missing or
a run had failed requests.
"""

import re
import statistics
import sys
from pathlib import Path

UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
UNITS_S = {"ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}

# The measurements, in the order they are printed: file stem -> description.
MEASUREMENTS = {
    "store-order-c1": "store  POST /orders, 1 connection",
    "store-order-c64": "store  POST /orders, 64 connections",
    "store-read-c64": "store  GET /orders/0, 64 connections",
    "etcd-put-c1": "etcd   put, 1 connection",
    "etcd-put-c64": "etcd   put, 64 connections",
    "etcd-range-c1": "etcd   linearizable range, 1 connection",
    "etcd-range-c64": "etcd   linearizable range, 64 connections",
}

# The ratios: (description, store measurement, etcd measurement, which figure, unit).
RATIOS = [
    ("orders/s c64 / etcd puts/s c64", "store-order-c64", "etcd-put-c64", "rps", "x"),
    ("order p50 c1 / etcd put p50 c1", "store-order-c1", "etcd-put-c1", "p50", ""),
    ("order reads/s c64 / etcd linearizable ranges/s c64", "store-read-c64", "etcd-range-c64", "rps", "x"),
]


class Run:
    """The figures of one wrk run."""

    def __init__(self, text):
        total = re.search(r"(\d+) requests in ([\d.]+)(ms|s|m|h)\b", text)
        if not total:
            raise ValueError("no 'N requests in T' line: did wrk run?")
        self.requests = int(total.group(1))
        self.seconds = float(total.group(2)) * UNITS_S[total.group(3)]
        non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
        self.non2xx = int(non2xx.group(1)) if non2xx else 0
        errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
        self.errors = sum(int(n) for n in errors.groups()) if errors else 0
        self.rps = (self.requests - self.non2xx) / self.seconds if self.seconds > 0 else 0.0
        self.p50 = percentile(text, "50")
        self.p99 = percentile(text, "99")

    def failed(self):
        return self.non2xx + self.errors


def percentile(text, pct):
    """A latency percentile from wrk's "Latency Distribution", in ms (NaN when absent)."""
    m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s|m|h)\b", text, re.M)
    return float(m.group(1)) * UNITS_MS[m.group(2)] if m else float("nan")


def read_run(path):
    try:
        return Run(Path(path).read_text())
    except ValueError as e:
        raise SystemExit(f"wrk_report.py: {path}: {e}")


def line(path):
    run = read_run(path)
    failed = f", {run.non2xx} non-2xx, {run.errors} socket errors" if run.failed() else ""
    print(f"{run.rps:9.0f} req/s  p50 {run.p50:6.2f} ms  p99 {run.p99:6.2f} ms{failed}")


def spread(values, fmt):
    """'median (min–max)' of the values that are numbers."""
    values = [v for v in values if v == v]
    if not values:
        return "n/a"
    med = fmt.format(statistics.median(values))
    if len(values) == 1:
        return med
    return f"{med} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def table(directory):
    rounds = sorted(
        (p for p in Path(directory).glob("round-*") if p.is_dir() and re.fullmatch(r"round-\d+", p.name)),
        key=lambda p: int(p.name.split("-")[1]),
    )
    if not rounds:
        raise SystemExit(f"wrk_report.py: no round-* folders in {directory}")
    runs = {}  # (round index, measurement) -> Run
    for i, folder in enumerate(rounds):
        for stem in MEASUREMENTS:
            path = folder / f"{stem}.txt"
            if path.exists():
                runs[i, stem] = read_run(path)

    n = len(rounds)
    print(f"measurements: median (min–max) over {n} round{'s' if n > 1 else ''}")
    print(f"  {'':<42} {'requests/s':>22} {'p50 ms':>22} {'p99 ms':>22}  failed")
    for stem, name in MEASUREMENTS.items():
        mine = [runs[i, stem] for i in range(n) if (i, stem) in runs]
        if not mine:
            continue
        rps = spread([r.rps for r in mine], "{:.0f}")
        p50 = spread([r.p50 for r in mine], "{:.2f}")
        p99 = spread([r.p99 for r in mine], "{:.2f}")
        print(f"  {name:<42} {rps:>22} {p50:>22} {p99:>22}  {sum(r.failed() for r in mine)}")

    print()
    print("ratios (store / etcd), each within one round:")
    head = "".join(f"{'round ' + str(i + 1):>9}" for i in range(n))
    print(f"  {'':<52}{head}   {'median':>7}  range")
    missing = False
    for name, store, etcd, figure, unit in RATIOS:
        values = []
        for i in range(n):
            a, b = runs.get((i, store)), runs.get((i, etcd))
            x, y = (getattr(a, figure), getattr(b, figure)) if a and b else (float("nan"), 0)
            values.append(x / y if y and y == y else float("nan"))
        good = [v for v in values if v == v]
        cells = "".join(f"{v:9.2f}" if v == v else f"{'n/a':>9}" for v in values)
        if good:
            med = f"{statistics.median(good):.2f}{unit}"
            rng = f"{min(good):.2f}–{max(good):.2f}{unit}"
        else:
            med, rng, missing = "n/a", "n/a", True
        print(f"  {name:<52}{cells}   {med:>7}  {rng}")

    failed = sum(r.failed() for r in runs.values())
    if failed:
        print(f"\nwarning: {failed} requests failed (non-2xx answers or socket errors); "
              "throughput counts only the 2xx answers")
    return 1 if missing or failed else 0


def main(argv):
    if len(argv) == 3 and argv[1] == "line":
        line(argv[2])
        return 0
    if len(argv) == 3 and argv[1] == "table":
        return table(argv[2])
    print(__doc__.strip(), file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
