"""A database created before the ``claude_sessions_`` prefix upgrades in place and keeps every row.

The legacy database is built with the frozen pre-prefix DDL (legacy_schema.py), filled with raw
SQL in every table, then opened by the current code. Checked on SQLite and PostgreSQL: every row
is still there, column for column; the plugin reads and extends it; the schema equals a fresh
one's name for name; the old ``alembic_version`` is gone.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from prefect_claude_sessions.storage import (
    SQLModelSessionStore,
    StorageError,
    checkpoints,
    claims,
    decisions,
    get_engine,
    open_db,
    sessions,
    turns,
)
from prefect_claude_sessions.storage.engine import create_engine_for
from prefect_claude_sessions.storage.metadata import TABLE_PREFIX, VERSION_TABLE
from prefect_claude_sessions.storage.schema import current_revision, head_revision

from ..conftest import drop_postgres_database, make_postgres_database
from .legacy_schema import LEGACY_TABLES, create_legacy_database
from .schema_compare import reflected_schema, schema_diff

PARENT = "6f1c9b8e-0000-4000-8000-000000000001"
CHILD = "6f1c9b8e-0000-4000-8000-000000000002"
PROJECT = "-work-legacy"
T0 = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)
ENTRIES = [
    {"type": "user", "uuid": f"e-{i}", "message": {"content": f"line {i} é"}} for i in range(5)
]
PRIMARY_KEYS = {
    "sessions": "id",
    "turns": "id",
    "checkpoints": "id",
    "decisions": "id",
    "session_claims": "session_id",
    "transcript_keys": "id",
    "transcript_entries": "seq",
}


@pytest.fixture
def fresh_url(database_url: str, tmp_path) -> Iterator[str]:
    """A second empty database of the same kind, for the fresh-install schema."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    name, url = make_postgres_database("cs_fresh")
    try:
        yield url
    finally:
        drop_postgres_database(name)


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


def fill_legacy(engine: sa.Engine) -> None:
    """Rows in every legacy table, written the way the old code stored them."""
    sqlite = engine.dialect.name == "sqlite"

    def ts(dt: datetime) -> object:  # SQLite held naive UTC text (see column_types.UTCDateTime)
        return dt.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite else dt

    t = {"created_at": ts(T0), "updated_at": ts(T0)}
    with engine.begin() as conn:
        run = conn.execute
        for sid, parent, origin in ((PARENT, None, "init"), (CHILD, PARENT, "fork")):
            run(
                sa.text(
                    "INSERT INTO sessions (id, project_key, agent_name, agent_profile, parent_id, "
                    "origin, fork_point, status, cwd, created_at, updated_at, turn_count, "
                    "cost_usd, input_tokens, output_tokens, transcript_bytes) VALUES (:id, :p, "
                    "'support', :prof, :parent, :origin, NULL, 'active', '/work', :created_at, "
                    ":updated_at, 2, 0.25, 1200, 340, 4096)"
                ),
                {"id": sid, "p": PROJECT, "prof": _json({"name": "support"}), "parent": parent}
                | {"origin": origin}
                | t,
            )
        for n in (1, 2, 3):
            run(
                sa.text(
                    "INSERT INTO turns (idempotency_key, session_id, flow_run_id, task_run_id, "
                    "operation, prompt_digest, status, result_text, error, cost_usd, usage, "
                    "duration_ms, num_turns, assistant_uuid, user_message_uuid, started_at, "
                    "finished_at) VALUES (:k, :s, 'flow-1', 'task-1', 'resume', :d, 'completed', "
                    ":r, NULL, 0.1, :u, 900, 1, :a, :m, :started, :finished)"
                ),
                {
                    "k": f"turn-key-{n}",
                    "s": PARENT,
                    "d": f"{n:064x}",
                    "r": f"answer {n}",
                    "u": _json({"input_tokens": 10 * n}),
                    "a": f"e-{n}",
                    "m": f"e-{n - 1}",
                    "started": ts(T0 + timedelta(seconds=n)),
                    "finished": ts(T0 + timedelta(seconds=n, milliseconds=900)),
                },
            )
        run(
            sa.text(
                "INSERT INTO checkpoints (id, session_id, transcript_uuid, user_message_uuid, "
                "label, idempotency_key, created_at) VALUES ('c0000000-0000-4000-8000-000000000001',"
                " :s, 'e-2', 'e-1', 'after-two', 'cp-key', :created_at)"
            ),
            {"s": PARENT} | t,
        )
        run(
            sa.text(
                "INSERT INTO decisions (id, session_id, flow_run_id, key, payload, "
                "idempotency_key, created_at) VALUES ('d0000000-0000-4000-8000-000000000001', "
                ":s, 'flow-1', 'route', :payload, 'dec-key', :created_at)"
            ),
            {"s": PARENT, "payload": _json({"invoice": "INV-7", "amount": 12.5})} | t,
        )
        now = datetime.now(timezone.utc)
        run(
            sa.text(
                "INSERT INTO session_claims (session_id, holder, claimed_at, expires_at) "
                "VALUES (:s, 'worker-a', :c, :e)"
            ),
            {"s": PARENT, "c": ts(now), "e": ts(now + timedelta(hours=1))},
        )
        run(
            sa.text(
                "INSERT INTO transcript_keys (project_key, session_id, subpath, mtime_ms, "
                "entry_count, total_bytes, summary, created_at, updated_at) VALUES "
                "(:p, :s, '', 1764504000000, :n, 600, :summary, :created_at, :updated_at)"
            ),
            {"p": PROJECT, "s": PARENT, "n": len(ENTRIES), "summary": _json({"title": "t"})} | t,
        )
        key_id = run(sa.text("SELECT id FROM transcript_keys")).scalar_one()
        for e in ENTRIES:
            run(
                sa.text("INSERT INTO transcript_entries (key_id, uuid, body) VALUES (:k, :u, :b)"),
                {
                    "k": key_id,
                    "u": e["uuid"],
                    "b": json.dumps(e, ensure_ascii=False, separators=(",", ":")),
                },
            )


def snapshot(engine: sa.Engine, name_of) -> dict[str, list[tuple]]:
    """Every row of every plugin table, raw, in primary-key order."""
    out = {}
    with engine.connect() as conn:
        for table in LEGACY_TABLES:
            pk = PRIMARY_KEYS[table]
            rows = conn.execute(sa.text(f"SELECT * FROM {name_of(table)} ORDER BY {pk}")).all()
            out[table] = [tuple(r) for r in rows]
    return out


def old_columns(after: dict[str, list[tuple]], before: dict[str, list[tuple]]) -> dict:
    """``after`` cut to the columns the legacy tables had (later revisions append columns)."""
    return {
        t: [r[: len(before[t][0])] for r in rows] if before[t] else rows
        for t, rows in after.items()
    }


def test_upgrade_keeps_every_row_and_matches_a_fresh_schema(database_url, fresh_url) -> None:
    legacy = create_engine_for(database_url)
    create_legacy_database(legacy)
    fill_legacy(legacy)
    before = snapshot(legacy, lambda t: t)
    legacy.dispose()
    assert sum(len(rows) for rows in before.values()) == 2 + 3 + 1 + 1 + 1 + 1 + len(ENTRIES)

    engine = get_engine(database_url)  # adopts, then upgrades to head

    names = set(sa.inspect(engine).get_table_names())
    assert names == {TABLE_PREFIX + t for t in LEGACY_TABLES} | {VERSION_TABLE}
    with engine.connect() as conn:
        assert current_revision(conn) == head_revision() == "0004"
    after = snapshot(engine, lambda t: TABLE_PREFIX + t)
    # Every old column keeps its value; revisions 0003 and 0004 appended their columns with
    # their defaults.
    assert old_columns(after, before) == before
    assert [r[-1:] for r in after["session_claims"]] == [(1,)]  # fence_token
    assert {r[-4:] for r in after["turns"]} == {
        (1, None, None, None)
    }  # attempts, error_kind, claim_token, pending_tool
    assert schema_diff(engine) == []
    assert reflected_schema(engine) == reflected_schema(get_engine(fresh_url))


def test_upgraded_database_is_read_and_extended_by_the_plugin(database_url) -> None:
    legacy = create_engine_for(database_url)
    create_legacy_database(legacy)
    fill_legacy(legacy)
    with legacy.connect() as conn:
        old_max_turn = conn.execute(sa.text("SELECT max(id) FROM turns")).scalar_one()
        old_max_seq = conn.execute(sa.text("SELECT max(seq) FROM transcript_entries")).scalar_one()
    legacy.dispose()

    with open_db(database_url) as db:
        parent = sessions.get_session(db, PARENT)
        assert (parent.agent_name, parent.turn_count, parent.created_at) == ("support", 2, T0)
        assert [s.id for s in sessions.children(db, PARENT)] == [CHILD]
        assert [t.result_text for t in turns.list_turns(db, PARENT)] == [
            "answer 1",
            "answer 2",
            "answer 3",
        ]
        assert [c.label for c in checkpoints.list_checkpoints(db, PARENT)] == ["after-two"]
        assert [d.payload for d in decisions.list_decisions(db, session_id=PARENT)] == [
            {"invoice": "INV-7", "amount": 12.5}
        ]
        assert claims.current_holder(db, PARENT) == "worker-a"
        new_turn = turns.begin_turn(
            db,
            idempotency_key="turn-key-new",
            session_id=PARENT,
            operation="resume",
            prompt_digest="f" * 64,
        )
    assert new_turn.id is not None and new_turn.id > old_max_turn  # the key sequence kept counting

    store = SQLModelSessionStore(database_url)
    key = {"project_key": PROJECT, "session_id": PARENT}
    assert asyncio.run(store.load(key)) == ENTRIES
    extra = {"type": "user", "uuid": "e-new", "message": {"content": "after the upgrade"}}
    asyncio.run(store.append(key, [extra]))
    assert asyncio.run(store.load(key)) == [*ENTRIES, extra]
    with get_engine(database_url).connect() as conn:
        new_seq = conn.execute(
            sa.text(f"SELECT seq FROM {TABLE_PREFIX}transcript_entries WHERE uuid = 'e-new'")
        ).scalar_one()
    assert new_seq > old_max_seq


def test_an_upgraded_database_opens_again_without_migrating(database_url) -> None:
    legacy = create_engine_for(database_url)
    create_legacy_database(legacy)
    fill_legacy(legacy)
    legacy.dispose()
    first = reflected_schema(get_engine(database_url))
    from prefect_claude_sessions.storage import dispose_engines

    dispose_engines()
    assert reflected_schema(get_engine(database_url)) == first


def test_unprefixed_tables_with_a_foreign_alembic_version_are_refused_untouched(
    database_url,
) -> None:
    legacy = create_engine_for(database_url)
    create_legacy_database(legacy)
    fill_legacy(legacy)
    with legacy.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = 'someone_elses'"))
    before = reflected_schema(legacy)
    rows = snapshot(legacy, lambda t: t)
    legacy.dispose()

    with pytest.raises(StorageError, match=r"unprefixed tables.*'someone_elses'"):
        get_engine(database_url)

    legacy = create_engine_for(database_url)
    assert reflected_schema(legacy) == before  # nothing created, renamed or dropped
    assert snapshot(legacy, lambda t: t) == rows
    legacy.dispose()


def _open_and_read_revision(url: str) -> str | None:
    from prefect_claude_sessions.storage import get_engine as open_engine

    with open_engine(url).connect() as conn:
        return current_revision(conn)


def test_several_processes_opening_a_legacy_database_upgrade_it_once(database_url) -> None:
    legacy = create_engine_for(database_url)
    create_legacy_database(legacy)
    fill_legacy(legacy)
    before = snapshot(legacy, lambda t: t)
    legacy.dispose()

    with multiprocessing.get_context("spawn").Pool(3) as pool:
        revisions = pool.map(_open_and_read_revision, [database_url] * 3)

    assert revisions == [head_revision()] * 3
    engine = get_engine(database_url)
    assert old_columns(snapshot(engine, lambda t: TABLE_PREFIX + t), before) == before
    with engine.connect() as conn:
        assert conn.execute(sa.text(f"SELECT count(*) FROM {VERSION_TABLE}")).scalar_one() == 1
    assert schema_diff(engine) == []
