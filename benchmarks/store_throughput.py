"""Throughput of SQLModelSessionStore: append and load of a 10,000-entry session, and
``list_session_summaries`` / ``list_sessions`` over 10,000 sessions.

Appends arrive in batches of ~100 entries (like the SDK's transcript mirror); each entry is a
realistic ~1.2 KB transcript line with a uuid. Runs on SQLite (a temp file) and on PostgreSQL
(a temporary database on CLAUDE_SESSIONS_TEST_POSTGRES, default postgres@127.0.0.1:5432).

Baselines, measured in the same run on the same rows: the SDK's ``InMemorySessionStore`` (the
floor: no I/O at all) and raw ``sqlite3`` (one executemany per batch into a table shaped like
``transcript_entries``, same WAL/synchronous settings as the store; loads = one SELECT plus
``json.loads`` per row). Results: ``benchmarks/results/[quick/]store_throughput.json``.

    python benchmarks/store_throughput.py            # 10,000 entries, 10,000 sessions, 3 repeats
    python benchmarks/store_throughput.py --quick    # 2,000 entries, 1,000 sessions, 1 repeat
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from claude_agent_sdk import InMemorySessionStore
from prefect_claude_sessions.storage import SQLModelSessionStore, dispose_engines

from benchmarks.common import base_parser, figure, loadavg, write_result

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


async def measure(url: str | None, n: int, batch: int, repeats: int) -> dict[str, float]:
    """Append ``n`` entries in batches, re-append one batch (duplicates), load. ``url=None``
    measures the SDK's InMemorySessionStore."""
    store = SQLModelSessionStore(url) if url else InMemorySessionStore()
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
        # InMemorySessionStore does not dedup by uuid: it keeps the re-sent batch too
        assert loaded is not None and len(loaded) == (n if url else n + min(batch, n))
    size = (
        store.transcript_stats(sid)[1]
        if url
        else sum(len(json.dumps(e, separators=(",", ":"))) + 1 for e in entries)
    )
    return {
        "append_s": append_s,
        "append_entries_per_s": n / append_s,
        "append_ms_per_batch": append_s * 1000 / (n / batch),
        "dup_batch_ms": dup_s * 1000,
        "load_ms": statistics.median(loads) * 1000,
        "mb": size / 1e6,
    }


def raw_sqlite(path: str, n: int, batch: int, repeats: int) -> dict[str, float]:
    """The same rows through plain ``sqlite3``: the floor for the store's SQLite appends."""
    sid = str(uuid.uuid4())
    entries = [make_entry(i, sid) for i in range(n)]
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute(
        "CREATE TABLE entries (seq INTEGER PRIMARY KEY AUTOINCREMENT, key_id INTEGER NOT NULL,"
        " uuid TEXT, body TEXT NOT NULL, UNIQUE (key_id, uuid))"
    )
    started = time.perf_counter()
    for i in range(0, n, batch):
        rows = [
            (1, e["uuid"], json.dumps(e, separators=(",", ":"))) for e in entries[i : i + batch]
        ]
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT OR IGNORE INTO entries (key_id, uuid, body) VALUES (?, ?, ?)", rows
        )
        conn.execute("COMMIT")
    append_s = time.perf_counter() - started
    loads, selects, decodes = [], [], []
    for _ in range(repeats):
        started = time.perf_counter()
        rows = conn.execute("SELECT body FROM entries WHERE key_id = 1 ORDER BY seq").fetchall()
        selected = time.perf_counter()
        loaded = [json.loads(r[0]) for r in rows]
        done = time.perf_counter()
        loads.append(done - started)
        selects.append(selected - started)
        decodes.append(done - selected)
        assert len(loaded) == n
    conn.close()
    # the share of a load that is JSON decoding alone (one json.loads of the whole JSONL array,
    # as the store's codec does it), whatever the database
    texts = [r[0] for r in rows]
    started = time.perf_counter()
    json.loads("[" + ",".join(texts) + "]")
    one_shot_decode = time.perf_counter() - started
    return {
        "append_s": append_s,
        "append_entries_per_s": n / append_s,
        "append_ms_per_batch": append_s * 1000 / (n / batch),
        "load_ms": statistics.median(loads) * 1000,
        "select_only_ms": statistics.median(selects) * 1000,
        "decode_per_row_ms": statistics.median(decodes) * 1000,
        "decode_one_shot_ms": one_shot_decode * 1000,
    }


def summary_entries(session_id: str, i: int) -> list[dict]:
    """A two-entry session (prompt + answer) with the fields the SDK's summary fold reads."""
    user_uuid = str(uuid.uuid4())
    return [
        {
            "type": "user",
            "uuid": user_uuid,
            "parentUuid": None,
            "sessionId": session_id,
            "timestamp": "2026-01-01T00:00:00.000Z",
            "cwd": "/work/project",
            "gitBranch": "main",
            "message": {"role": "user", "content": f"customer e-mail number {i}: it is down"},
        },
        {
            "type": "assistant",
            "uuid": str(uuid.uuid4()),
            "parentUuid": user_uuid,
            "sessionId": session_id,
            "timestamp": "2026-01-01T00:00:01.000Z",
            "message": {"role": "assistant", "content": [{"type": "text", "text": "On it."}]},
        },
    ]


async def measure_listing(url: str | None, sessions: int, repeats: int) -> dict[str, float]:
    """Fill ``sessions`` two-entry sessions under one project key, then time the listings."""
    store = SQLModelSessionStore(url) if url else InMemorySessionStore()
    project = "-bench-listing"
    await store.list_sessions(project)  # engine + schema outside the timing
    started = time.perf_counter()
    for i in range(sessions):
        sid = str(uuid.uuid4())
        await store.append({"project_key": project, "session_id": sid}, summary_entries(sid, i))
    fill_s = time.perf_counter() - started
    summaries, listings = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        found = await store.list_session_summaries(project)
        summaries.append(time.perf_counter() - started)
        assert len(found) == sessions, (len(found), sessions)
        started = time.perf_counter()
        listed = await store.list_sessions(project)
        listings.append(time.perf_counter() - started)
        assert len(listed) == sessions
    return {
        "sessions": sessions,
        "fill_s": fill_s,
        "fill_ms_per_session": fill_s * 1000 / sessions,
        "list_session_summaries_ms": statistics.median(summaries) * 1000,
        "list_sessions_ms": statistics.median(listings) * 1000,
    }


def report(name: str, n: int, r: dict[str, float]) -> None:
    print(
        f"{name:10s} {n:>6} entries ({r.get('mb', 0):.1f} MB): append {r['append_s']:.2f} s "
        f"({r['append_entries_per_s']:,.0f} entries/s, {r['append_ms_per_batch']:.1f} ms/batch), "
        f"duplicate batch {r.get('dup_batch_ms', 0):.1f} ms, load {r['load_ms']:.1f} ms",
        file=sys.stderr,
    )


def _postgres(fn, *args):
    """Run ``fn(url, *args)`` on a fresh PostgreSQL database, dropped afterwards."""
    name = f"cs_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        base = ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
        return asyncio.run(fn(f"{base}/{name}", *args))
    finally:
        dispose_engines()
        with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _figures(res: dict, n: int, sessions: int) -> list[dict]:
    sq, raw, mem = (
        res["append_load"]["sqlite"],
        res["append_load"]["raw_sqlite3"],
        res["append_load"]["in_memory"],
    )
    figs = [
        figure(
            f"SQLite load of a {n:,}-entry transcript",
            sq["load_ms"],
            "ms",
            baseline="raw sqlite3 SELECT + json.loads",
            baseline_value=raw["load_ms"],
            target="< 50 ms" if n >= 10_000 else None,
            met=sq["load_ms"] < 50 if n >= 10_000 else None,
        ),
        figure(
            f"SQLite appends of {n:,} entries (batches of 100)",
            sq["append_s"],
            "s",
            baseline="raw sqlite3 executemany",
            baseline_value=raw["append_s"],
            target="within 3x",
            met=sq["append_s"] <= 3 * raw["append_s"],
        ),
        figure(
            f"SQLite load of a {n:,}-entry transcript vs InMemorySessionStore",
            sq["load_ms"],
            "ms",
            baseline="InMemorySessionStore.load",
            baseline_value=mem["load_ms"],
        ),
    ]
    if "postgresql" in res["append_load"]:
        pg = res["append_load"]["postgresql"]
        figs += [
            figure(
                f"PostgreSQL load of a {n:,}-entry transcript",
                pg["load_ms"],
                "ms",
                baseline="raw sqlite3 SELECT + json.loads",
                baseline_value=raw["load_ms"],
            ),
            figure(
                f"PostgreSQL appends of {n:,} entries",
                pg["append_s"],
                "s",
                baseline="raw sqlite3 executemany",
                baseline_value=raw["append_s"],
            ),
        ]
    for backend in ("sqlite", "postgresql"):
        if backend in res["listing"]:
            lst = res["listing"][backend]
            figs.append(
                figure(
                    f"{backend} list_session_summaries over {sessions:,} sessions",
                    lst["list_session_summaries_ms"],
                    "ms",
                    baseline="InMemorySessionStore",
                    baseline_value=res["listing"]["in_memory"]["list_session_summaries_ms"],
                )
            )
    return figs


def main(argv: list[str] | None = None) -> dict:
    parser = base_parser(__doc__)
    parser.add_argument("--entries", type=int, default=None)
    parser.add_argument("--sessions", type=int, default=None, help="sessions for the listings")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args(argv)
    n = args.entries or (2_000 if args.quick else 10_000)
    sessions = args.sessions or (1_000 if args.quick else 10_000)
    repeats = 1 if args.quick else 3
    started, load = time.time(), loadavg()
    res: dict = {"append_load": {}, "listing": {}}

    res["append_load"]["in_memory"] = asyncio.run(measure(None, n, args.batch, repeats))
    res["listing"]["in_memory"] = asyncio.run(measure_listing(None, sessions, repeats))
    with tempfile.TemporaryDirectory() as tmp:
        res["append_load"]["raw_sqlite3"] = raw_sqlite(f"{tmp}/raw.db", n, args.batch, repeats)
        res["append_load"]["sqlite"] = asyncio.run(
            measure(f"sqlite:///{tmp}/bench.db", n, args.batch, repeats)
        )
        res["listing"]["sqlite"] = asyncio.run(
            measure_listing(f"sqlite:///{tmp}/listing.db", sessions, repeats)
        )
    dispose_engines()
    if not args.no_postgres:
        res["append_load"]["postgresql"] = _postgres(measure, n, args.batch, repeats)
        res["listing"]["postgresql"] = _postgres(measure_listing, sessions, repeats)
    for name, r in res["append_load"].items():
        report(name, n, r)
    for name, r in res["listing"].items():
        print(
            f"{name:10s} {sessions:>6} sessions: list_session_summaries "
            f"{r['list_session_summaries_ms']:.1f} ms, list_sessions {r['list_sessions_ms']:.1f} ms "
            f"(fill {r['fill_ms_per_session']:.2f} ms/session)",
            file=sys.stderr,
        )
    rounded = {
        part: {b: {k: round(v, 3) for k, v in r.items()} for b, r in by.items()}
        for part, by in res.items()
    }
    path = write_result(
        "store_throughput",
        quick=args.quick,
        params={
            "entries": n,
            "batch": args.batch,
            "sessions": sessions,
            "repeats": repeats,
            "postgres": not args.no_postgres,
            "entry_bytes": len(json.dumps(make_entry(1, str(uuid.uuid4())))),
        },
        figures=_figures(res, n, sessions),
        details=rounded,
        load_before=load,
        started=started,
        out=args.out,
    )
    return {"path": str(path), **rounded}


if __name__ == "__main__":
    main()
