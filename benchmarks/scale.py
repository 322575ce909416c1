"""Scale: 10,000 sessions and ~1,000,000 transcript entries in PostgreSQL, then the latency of
resuming a random session (the store load of its transcript, and real resume turns through
``resume_session.fn``) and of the listings (SDK ``list_sessions`` / ``list_session_summaries``
and the sessions repository).

How the data gets there: one real session is made through the service against the stand-in
model (an init + enough resume turns for ~100 entries: real CLI transcript lines, ~1.3 KB each
on average), then cloned server-side with ``INSERT ... SELECT`` over ``generate_series`` into the
store's own tables (``sessions``, ``transcript_keys``, ``transcript_entries``), 1,000 sessions per
statement, each clone with its own session id (also rewritten inside the JSON bodies) and its
own summary sidecar row. So every clone is a resumable session, byte-identical to what the store
would have written; only the write path (the store's appends) is bypassed, and it is measured
by ``store_throughput.py``.

Baselines, in the same run: the same measurements on the same database before the bulk load
(one session), so each figure reads "x times slower at scale".

    .venv/bin/python benchmarks/scale.py            # 10,000 sessions, ~1,000,000 entries
    .venv/bin/python benchmarks/scale.py --quick    # 1,000 sessions, ~50,000 entries
"""

from __future__ import annotations

import asyncio
import math
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import (
    base_parser,
    close_default_pool,
    figure,
    loadavg,
    postgres_database,
    prefect_server,
    summary_ms,
    tempdir,
    worker_env,
    write_result,
)

CHUNK = 1_000


def _timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return out


def measure(store, project: str, session_ids: list[str], profile_name: str, rng, repeats: int):
    """Load and listing latencies over the current contents of the database."""
    from prefect_claude_sessions.storage import open_db, sessions

    picks = [rng.choice(session_ids) for _ in range(repeats)]
    it = iter(picks)
    loads = _timed(
        lambda: asyncio.run(store.load({"project_key": project, "session_id": next(it)})), repeats
    )
    it2 = iter(picks)
    entries = _timed(lambda: store.entries(next(it2)), repeats)

    def repo_list() -> None:
        with open_db(store.engine) as db:
            sessions.list_sessions(db, agent_name=profile_name, limit=100)

    def repo_get() -> None:
        with open_db(store.engine) as db:
            sessions.get_session(db, rng.choice(session_ids))

    list_repeats = max(3, repeats // 4)
    return {
        "store_load": summary_ms(loads),
        "store_entries_by_id": summary_ms(entries),
        "sdk_list_sessions": summary_ms(
            _timed(lambda: asyncio.run(store.list_sessions(project)), list_repeats)
        ),
        "sdk_list_session_summaries": summary_ms(
            _timed(lambda: asyncio.run(store.list_session_summaries(project)), list_repeats)
        ),
        "repo_list_sessions_newest_100": summary_ms(_timed(repo_list, repeats)),
        "repo_get_session": summary_ms(_timed(repo_get, repeats)),
    }


def resume_turns(session_ids: list[str], rng, n: int) -> list[float]:
    """Real resume turns on random sessions (each on a cold CLI: no warm client exists)."""
    from prefect_claude_sessions.tasks import resume_session

    out = []
    for i in range(n):
        sid = rng.choice(session_ids)
        started = time.perf_counter()
        turn = resume_session.fn(sid, f"scale resume {i}: what did we discuss?")
        out.append(time.perf_counter() - started)
        assert turn.session_id == sid
        close_default_pool()
    return out


def bulk_clone(engine, template_id: str, count: int) -> tuple[list[str], float]:
    """Clone the template session ``count`` times, server-side; returns (ids, seconds)."""
    import sqlalchemy as sa

    cols = {
        t: [
            r[0]
            for r in engine.connect()
            .execute(
                sa.text(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = :t "
                    "ORDER BY ordinal_position"
                ),
                {"t": "claude_sessions_" + t},
            )
            .all()
        ]
        for t in ("sessions", "transcript_keys")
    }
    s_cols = [c for c in cols["sessions"] if c not in ("id", "created_at", "updated_at")]
    k_cols = [
        c
        for c in cols["transcript_keys"]
        if c not in ("id", "session_id", "mtime_ms", "created_at", "updated_at")
    ]
    ids: list[str] = []
    started = time.perf_counter()
    for first in range(0, count, CHUNK):
        n = min(CHUNK, count - first)
        with engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE IF EXISTS clones"))
            conn.execute(
                sa.text(
                    "CREATE TEMP TABLE clones AS SELECT gen_random_uuid()::text AS sid, "
                    "g + :first AS n FROM generate_series(1, :n) AS g"
                ),
                {"first": first, "n": n},
            )
            conn.execute(
                sa.text(
                    "INSERT INTO claude_sessions_sessions "
                    f"(id, created_at, updated_at, {', '.join(s_cols)}) "
                    "SELECT c.sid, s.created_at - c.n * interval '1 second', "
                    "s.updated_at - c.n * interval '1 second', "
                    f"{', '.join('s.' + c for c in s_cols)} "
                    "FROM clones c CROSS JOIN claude_sessions_sessions s WHERE s.id = :tpl"
                ),
                {"tpl": template_id},
            )
            conn.execute(
                sa.text(
                    "INSERT INTO claude_sessions_transcript_keys "
                    "(session_id, mtime_ms, created_at, updated_at, "
                    f"{', '.join(k_cols)}) "
                    "SELECT c.sid, k.mtime_ms - c.n, k.created_at, k.updated_at, "
                    f"{', '.join('k.' + c for c in k_cols)} "
                    "FROM clones c CROSS JOIN claude_sessions_transcript_keys k "
                    "WHERE k.session_id = :tpl AND k.subpath = ''"
                ),
                {"tpl": template_id},
            )
            conn.execute(
                sa.text(
                    "INSERT INTO claude_sessions_transcript_entries (key_id, uuid, body) "
                    "SELECT nk.id, e.uuid, replace(e.body, :tpl, c.sid) "
                    "FROM clones c JOIN claude_sessions_transcript_keys nk ON nk.session_id = c.sid "
                    "CROSS JOIN claude_sessions_transcript_keys tk "
                    "JOIN claude_sessions_transcript_entries e ON e.key_id = tk.id "
                    "WHERE tk.session_id = :tpl AND tk.subpath = '' ORDER BY c.n, e.seq"
                ),
                {"tpl": template_id},
            )
            ids += conn.execute(sa.text("SELECT sid FROM clones ORDER BY n")).scalars().all()
        print(f"  cloned {first + n:,}/{count:,} sessions", file=sys.stderr)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("ANALYZE"))
    return ids, time.perf_counter() - started


def run(sessions_total: int, entries_target: int, repeats: int, resumes: int) -> dict:
    from claude_agent_sdk import project_key_for_directory
    from prefect_claude_sessions.storage import open_db
    from prefect_claude_sessions.tasks import AgentProfile
    from prefect_claude_sessions.tasks.context import RunContext
    from prefect_claude_sessions.tasks.session_tasks import get_service

    rng = random.Random(7)
    per_session = math.ceil(entries_target / sessions_total)
    out: dict = {}
    with tempdir("bench-scale-") as tmp_name:
        tmp = Path(tmp_name)
        with postgres_database("cs_bench_scale") as url, worker_env(tmp, url), prefect_server(tmp):
            service = get_service(url)
            store = service.store
            project = project_key_for_directory(str(Path.cwd()))
            profile = AgentProfile(name="scale", system_prompt="You are a support agent.")
            ctx = RunContext(None, None)
            turn = service.init("Customer: the database is down!", profile, ctx=ctx)
            i = 0
            while store.transcript_stats(turn.session_id)[0] < per_session:
                turn = service.resume(turn.session_id, f"follow-up {i}", ctx=ctx)
                i += 1
            close_default_pool()
            template = turn.session_id
            count, size = store.transcript_stats(template)
            out["template"] = {"entries": count, "bytes": size, "turns": i + 1}
            print(f"template: {count} entries, {size:,} bytes, {i + 1} turns", file=sys.stderr)

            out["before"] = measure(store, project, [template], profile.name, rng, repeats)
            out["before"]["resume_turn"] = summary_ms(resume_turns([template], rng, resumes))

            ids, seconds = bulk_clone(store.engine, template, sessions_total - 1)
            ids.append(template)
            with open_db(store.engine) as db:
                import sqlalchemy as sa

                totals = db.execute(
                    sa.text(
                        "SELECT (SELECT count(*) FROM claude_sessions_sessions), "
                        "(SELECT count(*) FROM claude_sessions_transcript_entries), "
                        "pg_database_size(current_database())"
                    )
                ).one()
            out["bulk_load"] = {
                "method": "server-side INSERT ... SELECT clones of a real session, "
                f"{CHUNK} sessions per statement",
                "seconds": round(seconds, 1),
                "sessions": totals[0],
                "entries": totals[1],
                "database_mb": round(totals[2] / 1e6, 1),
            }
            print(f"bulk load: {out['bulk_load']}", file=sys.stderr)
            out["after"] = measure(store, project, ids, profile.name, rng, repeats)
            out["after"]["resume_turn"] = summary_ms(resume_turns(ids, rng, resumes))
            close_default_pool()
    return out


def main() -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--sessions", type=int, default=None)
    parser.add_argument("--entries", type=int, default=None)
    args = parser.parse_args()
    sessions_total = args.sessions or (1_000 if args.quick else 10_000)
    entries = args.entries or (50_000 if args.quick else 1_000_000)
    repeats = 10 if args.quick else 40
    resumes = 2 if args.quick else 5
    started, load = time.time(), loadavg()
    raw = run(sessions_total, entries, repeats, resumes)
    b, a = raw["before"], raw["after"]
    n = raw["bulk_load"]["sessions"]
    m = raw["bulk_load"]["entries"]
    figures = [
        figure(
            f"store load of a random session's transcript ({n:,} sessions, {m:,} entries)",
            a["store_load"]["median_ms"],
            "ms",
            baseline="same load with 1 session in the database",
            baseline_value=b["store_load"]["median_ms"],
        ),
        figure(
            f"resume turn (resume_session.fn, cold CLI) of a random session at {n:,} sessions",
            a["resume_turn"]["median_ms"],
            "ms",
            baseline="same resume with 1 session in the database",
            baseline_value=b["resume_turn"]["median_ms"],
        ),
        figure(
            f"SDK list_sessions over {n:,} sessions",
            a["sdk_list_sessions"]["median_ms"],
            "ms",
            baseline="list_sessions with 1 session",
            baseline_value=b["sdk_list_sessions"]["median_ms"],
        ),
        figure(
            f"SDK list_session_summaries over {n:,} sessions",
            a["sdk_list_session_summaries"]["median_ms"],
            "ms",
            baseline="list_session_summaries with 1 session",
            baseline_value=b["sdk_list_session_summaries"]["median_ms"],
        ),
        figure(
            f"sessions.list_sessions(agent_name, limit=100) over {n:,} sessions",
            a["repo_list_sessions_newest_100"]["median_ms"],
            "ms",
            baseline="same with 1 session",
            baseline_value=b["repo_list_sessions_newest_100"]["median_ms"],
        ),
    ]
    write_result(
        "scale",
        quick=args.quick,
        params={"sessions": sessions_total, "entries_target": entries, "repeats": repeats},
        figures=figures,
        details=raw,
        load_before=load,
        started=started,
        out=args.out,
    )


if __name__ == "__main__":
    main()
