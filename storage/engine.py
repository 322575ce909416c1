"""Engines (one per database URL, schema at head) and ``open_db`` sessions.

SQLite connections run in WAL mode with a busy timeout and foreign keys on, so several worker
processes can share one file. Write transactions on SQLite begin with ``BEGIN IMMEDIATE`` (take the
write lock up front, so a read-then-write never fails half-way with ``database is locked``);
read-only work opts out with the ``storage_read_only`` execution option.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.pool import StaticPool
from sqlmodel import Session

from . import models  # noqa: F401  (registers the tables on the plugin's metadata)
from .config import SQLITE_BUSY_TIMEOUT_MS, database_url, masked_url
from .db_errors import translated_errors
from .errors import DatabaseUnavailable
from .schema import upgrade_to_head

_engines: dict[str, sa.Engine] = {}
_engines_lock = threading.Lock()

READ_ONLY = {"storage_read_only": True}
"""Execution options for read-only work (a deferred ``BEGIN`` on SQLite)."""


def normalise_url(url: str) -> sa.URL:
    """Parse ``url``; plain ``postgresql://`` / ``postgres://`` get the psycopg 3 driver."""
    parsed = sa.make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _is_memory_sqlite(url: sa.URL) -> bool:
    db = url.database or ""
    return db in ("", ":memory:") or url.query.get("mode") == "memory"


def _sqlite_engine(url: sa.URL) -> sa.Engine:
    kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False}}
    if _is_memory_sqlite(url):
        kwargs["poolclass"] = StaticPool  # one connection, or every checkout sees a new database
    else:
        kwargs["connect_args"]["timeout"] = SQLITE_BUSY_TIMEOUT_MS / 1000
        if url.query.get("uri") is None and url.database:
            Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (see _on_begin)
        cur = dbapi_conn.cursor()
        try:
            cur.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cur.execute("PRAGMA foreign_keys = ON")
            cur.execute("PRAGMA secure_delete = ON")  # a purged transcript leaves no free pages
            try:
                cur.execute("PRAGMA journal_mode = WAL")
                cur.execute("PRAGMA synchronous = NORMAL")  # durable across app crashes in WAL
            except Exception:  # a read-only file cannot switch journal mode; reads still work
                pass
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        read_only = conn.get_execution_options().get("storage_read_only", False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


def _postgres_engine(url: sa.URL) -> sa.Engine:
    connect_args: dict[str, Any] = {}
    if "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = 10
    return sa.create_engine(url, pool_pre_ping=True, connect_args=connect_args)


def create_engine_for(url: str) -> sa.Engine:
    """A new engine for ``url`` with the connection settings above (no schema work)."""
    parsed = normalise_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed)
    if parsed.get_backend_name() == "postgresql":
        return _postgres_engine(parsed)
    return sa.create_engine(parsed, pool_pre_ping=True)


def get_engine(url: str | None = None) -> sa.Engine:
    """The engine for ``url`` (default: :func:`database_url`), cached; its schema is at Alembic head.

    The first call per URL in a process connects and runs any pending migrations; a database
    that cannot be reached raises DatabaseUnavailable (nothing is cached then).
    """
    url = url or database_url()
    with _engines_lock:
        engine = _engines.get(url)
        if engine is not None:
            return engine
        try:
            engine = create_engine_for(url)
        except OSError as exc:  # e.g. the SQLite file's folder cannot be created
            raise DatabaseUnavailable(masked_url(url), str(exc)) from exc
        try:
            with translated_errors(url):
                upgrade_to_head(engine)
        except BaseException:
            engine.dispose()
            raise
        _engines[url] = engine
        return engine


def dispose_engines() -> None:
    """Close every cached engine's connections and forget them (tests, process shutdown)."""
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


def engine_url(engine: sa.Engine) -> str:
    """The engine's URL as a string, password included (for error messages use masked_url)."""
    return engine.url.render_as_string(hide_password=False)


@contextmanager
def open_db(url_or_engine: str | sa.Engine | None = None) -> Iterator[Session]:
    """A SQLModel session: commits when the block succeeds, rolls back when it raises.

    Objects stay readable after the block (``expire_on_commit=False``). Database failures surface
    as StorageError subclasses naming the (masked) URL.
    """
    engine = url_or_engine if isinstance(url_or_engine, sa.Engine) else get_engine(url_or_engine)
    url = engine_url(engine)
    with translated_errors(url), Session(engine, expire_on_commit=False) as db:
        try:
            yield db
            db.commit()
        except BaseException:
            db.rollback()
            raise


__all__ = [
    "READ_ONLY",
    "create_engine_for",
    "dispose_engines",
    "engine_url",
    "get_engine",
    "masked_url",
    "normalise_url",
    "open_db",
]
