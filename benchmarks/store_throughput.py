"""Throughput of SQLModelSessionStore: append and load of a 10,000-entry session.

Appends arrive in batches of ~100 entries (like the SDK's transcript mirror); each entry is a
realistic ~1.2 KB transcript line with a uuid. Runs on SQLite (a temp file) and on PostgreSQL
(a temporary database on CLAUDE_SESSIONS_TEST_POSTGRES, default postgres@127.0.0.1:5432).

    python benchmarks/store_throughput.py            # 10,000 entries, 3 load repeats
    python benchmarks/store_throughput.py --quick    # 2,000 entries, 1 repeat
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from storage import SQLModelSessionStore, dispose_engines

ADMIN_DSN = os.environ.get(
    "CLAUDE_SESSIONS_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def make_entry(i: int, session_id: str) -> dict:
    return {
        "type": "assistant" if i % 2 else "user",
        "uuid": str(uuid.uuid4()),
        "parentUuid": None,
        "sessionId": session_id,
        "timestamp": "2026-01-01T00:00:00.000Z",
        "cwd": "/work/project",
        "message": {
            "role": "assistant" if i % 2 else "user",
            "content": [
                {"type": "text", "text": f"line {i}: " + "lorem ipsum dolor sit amet " * 40}
            ],
        },
    }


async def measure(url: str, n: int, batch: int, repeats: int) -> dict[str, float]:
    store = SQLModelSessionStore(url)
    sid = str(uuid.uuid4())
    key = {"project_key": "-bench", "session_id": sid}
    entries = [make_entry(i, sid) for i in range(n)]
    await store.load(key)  # engine + schema set-up outside the timing
    started = time.perf_counter()
    for i in range(0, n, batch):
        await store.append(key, entries[i : i + batch])
    append_s = time.perf_counter() - started
    started = time.perf_counter()
    await store.append(key, entries[:batch])  # a retried batch: all duplicates
    dup_s = time.perf_counter() - started
    loads = []
    for _ in range(repeats):
        started = time.perf_counter()
        loaded = await store.load(key)
        loads.append(time.perf_counter() - started)
        assert loaded is not None and len(loaded) == n
    size = store.transcript_stats(sid)[1]
    return {
        "append_s": append_s,
        "append_entries_per_s": n / append_s,
        "append_ms_per_batch": append_s * 1000 / (n / batch),
        "dup_batch_ms": dup_s * 1000,
        "load_ms": statistics.median(loads) * 1000,
        "mb": size / 1e6,
    }


def report(name: str, n: int, r: dict[str, float]) -> None:
    print(
        f"{name:10s} {n:>6} entries ({r['mb']:.1f} MB): append {r['append_s']:.2f} s "
        f"({r['append_entries_per_s']:,.0f} entries/s, {r['append_ms_per_batch']:.1f} ms/batch), "
        f"duplicate batch {r['dup_batch_ms']:.1f} ms, load {r['load_ms']:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="2,000 entries, one load")
    parser.add_argument("--entries", type=int, default=None)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    n = args.entries or (2_000 if args.quick else 10_000)
    repeats = 1 if args.quick else 3

    with tempfile.TemporaryDirectory() as tmp:
        report(
            "sqlite", n, asyncio.run(measure(f"sqlite:///{tmp}/bench.db", n, args.batch, repeats))
        )
    dispose_engines()

    if not args.no_postgres:
        name = f"cs_bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        try:
            base = ADMIN_DSN.rsplit("/", 1)[0]
            report("postgresql", n, asyncio.run(measure(f"{base}/{name}", n, args.batch, repeats)))
        finally:
            dispose_engines()
            with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
