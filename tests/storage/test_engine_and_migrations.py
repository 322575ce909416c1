"""Engine set-up (SQLite pragmas, URL config) and Alembic: fresh and upgraded schemas match the models."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
import time
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from prefect_claude_sessions.storage import SQLModelSessionStore, database_url, get_engine, open_db
from prefect_claude_sessions.storage import sessions as session_rows
from prefect_claude_sessions.storage.config import masked_url
from prefect_claude_sessions.storage.engine import create_engine_for
from prefect_claude_sessions.storage.metadata import VERSION_TABLE
from prefect_claude_sessions.storage.schema import alembic_config, current_revision, head_revision

from .schema_compare import schema_diff

EXPECTED_TABLES = {
    "claude_sessions_alembic_version",
    "claude_sessions_sessions",
    "claude_sessions_turns",
    "claude_sessions_checkpoints",
    "claude_sessions_decisions",
    "claude_sessions_session_claims",
    "claude_sessions_transcript_keys",
    "claude_sessions_transcript_entries",
}


def test_fresh_database_gets_head_and_matches_the_models(database_url) -> None:
    engine = get_engine(database_url)
    assert set(sa.inspect(engine).get_table_names()) == EXPECTED_TABLES
    with engine.connect() as conn:
        assert current_revision(conn) == head_revision()
    assert schema_diff(engine) == []


def test_downgraded_then_upgraded_database_matches_the_models(database_url) -> None:
    engine = create_engine_for(database_url)
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "head")
        command.downgrade(alembic_config(conn), "base")
    assert set(sa.inspect(engine).get_table_names()) == {VERSION_TABLE}
    engine.dispose()
    upgraded = get_engine(database_url)  # brings it back to head on first use
    assert schema_diff(upgraded) == []


def test_postgres_columns_are_jsonb_and_timestamptz(postgres_url) -> None:
    insp = sa.inspect(get_engine(postgres_url))
    cols = {c["name"]: c["type"] for c in insp.get_columns("claude_sessions_decisions")}
    assert type(cols["payload"]).__name__ == "JSONB"
    assert cols["created_at"].timezone is True
    index_columns = {
        tuple(i["column_names"]) for i in insp.get_indexes("claude_sessions_decisions")
    }
    assert {("session_id", "created_at"), ("key", "created_at"), ("created_at",)} <= index_columns
    assert ("parent_id",) in {
        tuple(i["column_names"]) for i in insp.get_indexes("claude_sessions_sessions")
    }
    assert ("session_id", "started_at") in {
        tuple(i["column_names"]) for i in insp.get_indexes("claude_sessions_turns")
    }


def _start(url: str) -> str:
    from prefect_claude_sessions.storage import get_engine as ge

    with ge(url).connect() as conn:
        return conn.execute(
            sa.text("SELECT version_num FROM claude_sessions_alembic_version")
        ).scalar_one()


def test_several_processes_starting_on_an_empty_database_migrate_once(database_url) -> None:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(3) as pool:
        versions = pool.map(_start, [database_url] * 3)
    assert versions == [head_revision()] * 3
    with get_engine(database_url).connect() as conn:
        assert (
            conn.execute(
                sa.text("SELECT count(*) FROM claude_sessions_alembic_version")
            ).scalar_one()
            == 1
        )
    assert schema_diff(get_engine(database_url)) == []


def test_sqlite_runs_wal_with_busy_timeout_and_foreign_keys(sqlite_url) -> None:
    with get_engine(sqlite_url).connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_sqlite_writer_waits_for_another_process_lock_instead_of_failing(sqlite_url) -> None:
    path = sqlite_url.removeprefix("sqlite:///")
    get_engine(sqlite_url)
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock briefly

    threading.Timer(0.5, lambda: other.execute("COMMIT")).start()
    started = time.perf_counter()
    with open_db(sqlite_url) as db:
        from prefect_claude_sessions.storage import SessionOrigin, sessions

        sessions.create_session(
            db,
            id="6f1c9b8e-0000-4000-8000-0000000000aa",
            project_key="p",
            agent_name="a",
            origin=SessionOrigin.init,
        )
    assert time.perf_counter() - started >= 0.4  # it waited for the lock...
    with open_db(sqlite_url) as db:  # ...and then wrote
        assert session_rows.find_session(db, "6f1c9b8e-0000-4000-8000-0000000000aa") is not None
    other.close()


def test_get_engine_is_cached_per_url(sqlite_url, tmp_path) -> None:
    assert get_engine(sqlite_url) is get_engine(sqlite_url)
    assert get_engine(sqlite_url) is not get_engine(f"sqlite:///{tmp_path / 'other.db'}")


def test_in_memory_sqlite_keeps_one_database(tmp_path) -> None:
    engine = get_engine("sqlite://")
    with open_db(engine) as db:
        session_rows.create_session(
            db,
            id="6f1c9b8e-0000-4000-8000-0000000000bb",
            project_key="p",
            agent_name="a",
            origin="init",
        )
    with open_db("sqlite://") as db:
        assert session_rows.find_session(db, "6f1c9b8e-0000-4000-8000-0000000000bb") is not None


def test_database_url_comes_from_the_environment_or_the_home_folder(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("CLAUDE_SESSIONS_DATABASE_URL", "postgresql://u:p@db/x")
    assert database_url() == "postgresql://u:p@db/x"
    monkeypatch.delenv("CLAUDE_SESSIONS_DATABASE_URL")
    monkeypatch.setenv("CLAUDE_SESSIONS_HOME", str(tmp_path / "home"))
    assert database_url() == f"sqlite:///{tmp_path / 'home' / 'sessions.db'}"
    assert (tmp_path / "home").is_dir()
    monkeypatch.delenv("CLAUDE_SESSIONS_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert database_url() == f"sqlite:///{Path(tmp_path) / '.claude-sessions' / 'sessions.db'}"


def test_default_store_uses_the_configured_url(monkeypatch, sqlite_url) -> None:
    monkeypatch.setenv("CLAUDE_SESSIONS_DATABASE_URL", sqlite_url)
    store = SQLModelSessionStore()
    assert store.url == sqlite_url
    assert store.engine is get_engine(sqlite_url)


def test_masked_url_hides_only_the_password() -> None:
    assert (
        masked_url("postgresql+psycopg://me:hunter2@h:5/db") == "postgresql+psycopg://me:***@h:5/db"
    )
    assert "hunter2" not in repr(SQLModelSessionStore("postgresql://me:hunter2@h/db"))


def test_open_db_rolls_back_on_error(database_url) -> None:
    sid = "6f1c9b8e-0000-4000-8000-0000000000cc"
    try:
        with open_db(database_url) as db:
            session_rows.create_session(db, id=sid, project_key="p", agent_name="a", origin="init")
            raise KeyError("boom")
    except KeyError:
        pass
    with open_db(database_url) as db:
        assert session_rows.find_session(db, sid) is None
