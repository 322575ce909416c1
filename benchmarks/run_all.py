"""Run every benchmark, one process each (so memory, warm pools and Prefect state do not leak
from one into the next), then render ``benchmarks/RESULTS.md`` from the result files.

    .venv/bin/python benchmarks/run_all.py --quick    # a few minutes
    .venv/bin/python benchmarks/run_all.py            # the full sizes (~20-30 min on 2 cores)
    .venv/bin/python benchmarks/run_all.py --only store_throughput scale
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = [
    "store_throughput",
    "turn_latency",
    "turn_overhead",
    "warm_sessions",
    "fork_fanout",
    "triage_throughput",
    "scale",
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", nargs="*", default=None, choices=BENCHMARKS)
    parser.add_argument("--no-report", action="store_true")
    args = parser.parse_args()
    failed = []
    for name in args.only or BENCHMARKS:
        cmd = [sys.executable, str(HERE / f"{name}.py")] + (["--quick"] if args.quick else [])
        print(f"== {name}: {' '.join(cmd[1:])}", file=sys.stderr, flush=True)
        started = time.time()
        rc = subprocess.call(cmd, cwd=HERE.parent)
        print(f"== {name}: exit {rc} after {time.time() - started:.0f} s", file=sys.stderr)
        if rc:
            failed.append(name)
    if not args.no_report:
        subprocess.call(
            [sys.executable, str(HERE / "report.py")] + (["--quick"] if args.quick else [])
        )
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
