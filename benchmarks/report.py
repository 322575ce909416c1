"""Render the latest result files into a markdown table (the figures part of RESULTS.md).

    .venv/bin/python benchmarks/report.py            # full results -> benchmarks/results/FIGURES.md
    .venv/bin/python benchmarks/report.py --quick    # quick results -> benchmarks/results/quick/FIGURES.md

RESULTS.md itself is written by hand around these generated tables (analysis, fix proposals).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import RESULTS_DIR

ORDER = [
    "turn_overhead",
    "warm_sessions",
    "warm_service",
    "store_throughput",
    "fork_fanout",
    "fork_fanout_quick_unpatched",
    "fork_fanout_whatif",
    "triage_throughput",
    "scale",
    "turn_latency",
]


def _verdict(met: bool | None) -> str:
    return "" if met is None else ("**met**" if met else "**missed**")


def render(directory: Path) -> str:
    docs = {}
    for path in sorted(directory.glob("*.json")):
        doc = json.loads(path.read_text())
        docs[path.stem] = doc
    lines = []
    for name in sorted(docs, key=lambda n: ORDER.index(n) if n in ORDER else 99):
        doc = docs[name]
        load = doc.get("loadavg_before") or []
        lines += [
            f"### {name}",
            "",
            f"{doc['date']}, {doc.get('duration_s')} s, load average before/after "
            f"{' '.join(map(str, load))} / {' '.join(map(str, doc.get('loadavg_after') or []))}, "
            f"params `{json.dumps(doc['params'])}`",
            "",
            "| figure | value | baseline (same run) | ratio | target |",
            "|---|---|---|---|---|",
        ]
        for f in doc["figures"]:
            target = f"{f['target']} {_verdict(f['met'])}" if f.get("target") else ""
            lines.append(
                f"| {f['name']} | {f['value']:g} {f['unit']} | {f['baseline']}: "
                f"{f['baseline_value']:g} | {f['ratio']:g}x | {target} |"
            )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    directory = RESULTS_DIR / "quick" if args.quick else RESULTS_DIR
    text = render(directory)
    out = directory / "FIGURES.md"
    out.write_text(text + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
